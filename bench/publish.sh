#!/usr/bin/env bash
# Small-release publish throughput with concurrent publishers, Agora on each backend beside
# Verdaccio on the same machine. `agora-bench publish-rate`: PUBLISHERS publishers, each
# with its own connections, each publishing RELEASES new plugins one after another (a
# plugin.yaml and a SIZE_KIB module, signed by a registered key, uploaded, released and
# appended to the transparency log); then the same count of new npm packages into
# Verdaccio (one publish PUT each, as `npm publish` sends it). Releases per second over the
# wall time, and per-publish p50/p99, ROUNDS times each (the median round is reported).
#
#   bash bench/publish.sh                        # both backends, 8 publishers x 25
#   BACKENDS=sqlite PUBLISHERS=1 bash bench/publish.sh
set -euo pipefail
cd "$(dirname "$0")/.."

B=${B:-/tmp/agora-bench-publish}
PUBLISHERS=${PUBLISHERS:-8}
RELEASES=${RELEASES:-25}
SIZE_KIB=${SIZE_KIB:-4}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18098}
VERD_PORT=${VERD_PORT:-18099}
BACKENDS=${BACKENDS:-sqlite postgres}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
BUILD=${BUILD:-release}
. bench/lib.sh
trap 'cleanup; [[ -n ${VERD_PID:-} ]] && kill "$VERD_PID" 2>/dev/null; drop_schema' EXIT

check_backends
choose_build
rm -rf "$B" && mkdir -p "$B"
start_verdaccio "$B/verdaccio" "$VERD_PORT" "$B/verdaccio.out"
RATE=(--publishers "$PUBLISHERS" --releases "$RELEASES" --size-kib "$SIZE_KIB")

# median_of FILE FIELD: the median of a JSON-lines field, and the line it came from.
median_line() {
  python3 - "$1" <<'PY'
import json, sys
rows = sorted((json.loads(l) for l in open(sys.argv[1]) if l.strip()), key=lambda r: r["per_s"])
m = rows[len(rows) // 2]
print(f'{m["per_s"]:.0f} | {min(r["per_s"] for r in rows):.0f}–{max(r["per_s"] for r in rows):.0f} | {m["p50_ms"]:.1f} / {m["p99_ms"]:.1f}')
PY
}

ROWS=()
for backend in $BACKENDS; do
  mkdir -p "$B/$backend"
  if [[ $backend == postgres ]]; then
    pg_schema agora_bench_publish
  else
    unset AGORA_DATABASE_URL
  fi
  start_agora "$B/$backend/data" "$B/$backend/agora"
  cli publisher create bench >/dev/null
  : >"$B/$backend/rates.jsonl"
  for r in $(seq 1 "$ROUNDS"); do
    log "$backend: round $r, $PUBLISHERS publishers x $RELEASES releases"
    "$BENCH" publish-rate --registry "$A" --token "$TOKEN" "${RATE[@]}" >>"$B/$backend/rates.jsonl"
  done
  RSS=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status")
  ROWS+=("| Agora ($backend) | $(median_line "$B/$backend/rates.jsonl") | $RSS |")
  cleanup; PID=
  drop_schema
done

: >"$B/verdaccio.jsonl"
for r in $(seq 1 "$ROUNDS"); do
  log "verdaccio: round $r"
  "$BENCH" publish-rate "${RATE[@]}" --verdaccio "$V" --verdaccio-token "$VTOKEN" >>"$B/verdaccio.jsonl"
done
VRSS=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$VERD_PID/status")
ROWS+=("| Verdaccio $("$NODE" -e "console.log(require('$TOOLS/verdaccio/node_modules/verdaccio/package.json').version)") (Node $("$NODE" --version)) | $(median_line "$B/verdaccio.jsonl") | $VRSS |")

cat <<REPORT
### Publish throughput, $(date -u +%Y-%m-%dT%H:%MZ) — \`PUBLISHERS=$PUBLISHERS RELEASES=$RELEASES SIZE_KIB=$SIZE_KIB ROUNDS=$ROUNDS bash bench/publish.sh\`

$PUBLISHERS concurrent publishers, $((PUBLISHERS * RELEASES)) new releases of $SIZE_KIB KiB per round; median of $ROUNDS rounds.

| server | releases/s (median) | min–max | per publish p50 / p99 ms (median round) | server peak RSS MiB |
|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")
REPORT

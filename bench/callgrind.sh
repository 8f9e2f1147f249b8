#!/usr/bin/env bash
# Instructions per request on the server's hot paths, counted by valgrind's callgrind:
# figures that do not move with the machine's load, so a regression shows on a busy
# machine where wall-clock times drown it. One `agora serve` (release build, SQLite,
# COUNT seeded plugins, the in-process worker off) runs under callgrind; for each path
# the counters are zeroed, REQUESTS requests are sent one at a time, and the counters
# dumped: instructions (Ir) per request, all of the server's threads included (its
# background loops too, a few thousand instructions a second).
#
#   bash bench/callgrind.sh                  # COUNT=10000 REQUESTS=200
#   COUNT=100000 bash bench/callgrind.sh
#   BUILD=profiling bash bench/callgrind.sh  # with symbols: where the instructions go,
#       callgrind_annotate --inclusive=yes $B/results/callgrind.out.N (one dump per path)
set -euo pipefail
cd "$(dirname "$0")/.."

B=${B:-/tmp/agora-bench-callgrind}
COUNT=${COUNT:-10000}
REQUESTS=${REQUESTS:-200}
PORT=${PORT:-18098}
BUILD=${BUILD:-release}
. bench/lib.sh

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends valgrind >/dev/null; }
choose_build
rm -rf "$B" && mkdir -p "$B/agora" "$B/results" "$B/cfg"
R=$B/results

log "seeding $COUNT plugins"
"$BENCH" seed --database "sqlite://$B/agora/agora.db" --count "$COUNT" 2>"$R/seed.log"

log "starting agora serve under callgrind"
TOKEN=agora_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
AGORA_ADMIN_TOKEN=$TOKEN AGORA_LOG__LEVEL=warn AGORA_RATE_LIMITS__ENABLED=false \
  AGORA_WORKER__IN_PROCESS=false \
  valgrind --tool=callgrind --callgrind-out-file="$R/callgrind.out" \
  "$AGORA" serve --data-dir "$B/agora" --listen "127.0.0.1:$PORT" >"$R/agora.out" 2>"$R/agora.err" &
PID=$!
A=http://127.0.0.1:$PORT
for _ in $(seq 1200); do curl -sf -o /dev/null -m 2 "$A/ready" && break; sleep 0.5; done
curl -sf -o /dev/null "$A/ready" || { log "the server did not start; see $R/agora.err"; exit 1; }

# A 1 MiB signed release, whose module is the blob download.
cli() { AGORA_REGISTRY=$A AGORA_TOKEN=$TOKEN XDG_CONFIG_HOME=$B/cfg HOME=$B "$AGORA" "$@"; }
cli publisher create bench >/dev/null
mkdir -p "$B/mid"
printf 'api_version: agora/v1\npublisher: bench\nname: mid\nversion: 1.0.0\ndescription: A 1 MiB plugin for the download path\nlicense: MIT\ntags: [bench]\ncategories: [testing]\nruntime: { type: wasm, module: plugin.wasm }\n' >"$B/mid/plugin.yaml"
head -c $((1024 * 1024)) /dev/urandom >"$B/mid/plugin.wasm"
cli keygen --out "$B/bench_ed25519" >/dev/null
cli key add bench "$B/bench_ed25519.pub" >/dev/null
AGORA_SIGNING_KEY=$B/bench_ed25519 cli publish "$B/mid" >/dev/null
MID_DIGEST=sha256:$(sha256sum "$B/mid/plugin.wasm" | cut -d' ' -f1)

declare -a NAMES=(version_detail search_narrow search_word blob_1mib home)
declare -A PATHS=(
  [version_detail]="/api/v1/plugins/pub-1/plugin-1/versions/1.0.0"
  [search_narrow]="/api/v1/plugins?q=network%20scanner&category=security&runtime=wasm"
  [search_word]="/api/v1/plugins?q=network"
  [blob_1mib]="/api/v1/blobs/$MID_DIGEST"
  [home]="/"
)
: >"$R/ir.tsv"
for name in "${NAMES[@]}"; do
  url=$A${PATHS[$name]}
  curl -sf -o /dev/null "$url" || { log "$name: $url does not answer 200"; exit 1; }
  callgrind_control -z "$PID" >/dev/null 2>&1
  "$BENCH" latency --url "$url" --requests "$REQUESTS" >"$R/$name.json"
  callgrind_control -d "$name" "$PID" >/dev/null 2>&1
  dump=$(ls -t "$R"/callgrind.out.* | head -1)
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  printf '%s\t%s\t%s\n' "$name" "$total" "$((total / REQUESTS))" >>"$R/ir.tsv"
  log "$name: $((total / REQUESTS)) instructions per request"
done

cat <<REPORT
### Instructions per request, $(date -u +%Y-%m-%dT%H:%MZ) — \`COUNT=$COUNT REQUESTS=$REQUESTS bash bench/callgrind.sh\`

$(valgrind --version), $BUILD build of $(git rev-parse --short HEAD), SQLite with $COUNT seeded plugins; $REQUESTS sequential requests per path, counters zeroed before and dumped after; every thread of the server counted.

| path | request | instructions per request |
|---|---|---|
REPORT
while IFS=$'\t' read -r name total per; do
  printf '| %s | `%s` | %s |\n' "$name" "${PATHS[$name]/$MID_DIGEST/sha256:…}" "$(python3 -c "print(f'{$per:,}')")"
done <"$R/ir.tsv"

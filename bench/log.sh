#!/usr/bin/env bash
# Log scale: how `agora serve` starts and proves with a transparency log of ENTRIES
# entries, on each backend of BACKENDS (SQLite, then PostgreSQL in a fresh schema of PG).
# For each backend:
#   1. a fresh server creates its database, administrator and log key, and is stopped;
#   2. ENTRIES entries (bodies of about 330 bytes, like a release entry) are appended in
#      one SQL statement (sqlite3 or psql: the bulk path, seconds for a million) without
#      their digests, as a log written before digests were stored (migration 0018) is;
#   3. the server is started STARTS times: the first start hashes those bodies once and
#      stores the digests (the upgrade's one-time cost), every later one builds the tree
#      from the stored digests. Each start is timed from the process's launch to its
#      first answer to /ready (polled every 10 ms), with its RSS then;
#   4. on the last start, REQUESTS inclusion proofs (`/api/v1/log/proof/inclusion`, an
#      index spread over the whole log for each request) and REQUESTS consistency proofs
#      (`/api/v1/log/proof/consistency`, a size spread likewise), one at a time: p50/p99
#      (`agora-bench latency`), and the server's RSS afterwards;
#   5. then PUBLISH_SECS seconds of signed publishes (new versions of 8 plugins, 8 a
#      second at most, beside one reading client: `agora-bench load`), each appending to
#      the log with the in-process worker's verdicts: publish p50/p99 and releases/s.
# Prints a Markdown report (also $RESULTS/report.md).
#
#   bash bench/log.sh                                   # 1,000,000 entries, both backends
#   ENTRIES=100000 BACKENDS=sqlite bash bench/log.sh    # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=${ENTRIES:-1000000}
STARTS=${STARTS:-3}
REQUESTS=${REQUESTS:-2000}
PUBLISH_SECS=${PUBLISH_SECS:-60}
BACKENDS=${BACKENDS:-sqlite postgres}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
B=${B:-/tmp/agora-bench-log}
RESULTS=${RESULTS:-$B/results}
PORT=${PORT:-18106}
BUILD=${BUILD:-auto}
source bench/lib.sh

choose_build
check_backends
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends sqlite3 >/dev/null; }
rm -rf "$B" && mkdir -p "$B" "$RESULTS"
R=$RESULTS
trap 'cleanup; drop_schema' EXIT

# sql STATEMENT: runs it on the backend's database.
sql() {
  if [[ $backend == postgres ]]; then psql "$db" -qAtc "$1"; else sqlite3 "$B/$backend/data/agora.db" "$1"; fi
}

# timed_start N: starts the server, waits for /ready; records the time and RSS.
timed_start() {
  local t0 t1 rss
  TOKEN=agora_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  t0=$(date +%s%N)
  AGORA_ADMIN_TOKEN=$TOKEN AGORA_LOG__LEVEL=info AGORA_RATE_LIMITS__ENABLED=false \
    "$AGORA" serve --data-dir "$B/$backend/data" --listen "127.0.0.1:$PORT" \
    >>"$R/$backend-agora.out" 2>>"$R/$backend-agora.err" &
  PID=$!
  A=http://127.0.0.1:$PORT
  until curl -sf -o /dev/null -m 5 "$A/ready"; do
    kill -0 "$PID" 2>/dev/null || { log "$backend: agora did not start"; tail -5 "$R/$backend-agora.err" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(date +%s%N)
  rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$PID/status")
  printf '%s\t%s\t%s\n' "$1" "$(( (t1 - t0) / 1000000 ))" "$rss" >>"$R/$backend-starts.tsv"
  log "$backend: start $1 ready after $(( (t1 - t0) / 1000000 )) ms, RSS $rss MiB"
}

run_backend() {
  mkdir -p "$B/$backend/data"
  : >"$R/$backend-starts.tsv"
  if [[ $backend == postgres ]]; then
    pg_schema agora_bench_log_$$
  else
    unset AGORA_DATABASE_URL
    db=
  fi
  start_agora "$B/$backend/data" "$R/$backend-first"
  cleanup; PID=
  local first t0 t1
  first=$(sql "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries")
  log "$backend: appending $ENTRIES entries from index $first"
  t0=$(date +%s%N)
  if [[ $backend == postgres ]]; then
    sql "INSERT INTO log_entries (idx, body, created_at) SELECT i, '{\"kind\":\"bench\",\"index\":' || i || ',\"pad\":\"' || repeat('0', 300) || '\"}', 0 FROM generate_series($first, $first + $ENTRIES - 1) AS i; ANALYZE log_entries"
  else
    sql "WITH RECURSIVE n(i) AS (SELECT $first UNION ALL SELECT i + 1 FROM n WHERE i < $first + $ENTRIES - 1) INSERT INTO log_entries (idx, body, created_at) SELECT i, '{\"kind\":\"bench\",\"index\":' || i || ',\"pad\":\"' || hex(zeroblob(150)) || '\"}', 0 FROM n"
  fi
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 )) >"$R/$backend-seed-ms"
  log "$backend: appended in $(( (t1 - t0) / 1000 / 1000 )) ms"
  local n
  for n in $(seq 1 "$STARTS"); do
    timed_start "$n"
    if (( n < STARTS )); then cleanup; PID=; fi
  done
  local size=$((first + ENTRIES))
  # One index (size) per request, spread over the whole log: {n} runs over 0..REQUESTS-1.
  local step=$(( size / REQUESTS ))
  (( step > 0 )) || step=1
  "$BENCH" latency --url "$A/api/v1/log/proof/inclusion?index={n}" --requests "$REQUESTS" --vary "$REQUESTS" \
    --step "$step" >"$R/$backend-inclusion.json"
  "$BENCH" latency --url "$A/api/v1/log/proof/consistency?from={n}" --requests "$REQUESTS" --vary "$REQUESTS" \
    --step "$step" --offset 1 >"$R/$backend-consistency.json"
  awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$PID/status" >"$R/$backend-rss-after"
  log "$backend: publishing for $PUBLISH_SECS s"
  "$BENCH" load --registry "$A" --token "$TOKEN" --server-pid "$PID" --clients 1 \
    --duration-secs "$PUBLISH_SECS" --catalog 0 --plugins 8 --publish-per-sec 8 --module-kib 4 \
    >"$R/$backend-publish.json" 2>"$R/$backend-publish.err"
  echo "$size" >"$R/$backend-size"
  cleanup; PID=
  drop_schema
  unset AGORA_DATABASE_URL
}

for backend in $BACKENDS; do run_backend; done

{
  echo "### Log scale, $(date -u +%Y-%m-%dT%H:%MZ) — \`ENTRIES=$ENTRIES STARTS=$STARTS REQUESTS=$REQUESTS bash bench/log.sh\`"
  echo
  echo "Agora $(git describe --always --dirty 2>/dev/null || echo '?'), **$BUILD build**; 2 cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| backend | log entries | bulk append | first start (stores digests) | later starts | RSS after start | inclusion proof p50 / p99 | consistency proof p50 / p99 | RSS after proofs | publishes (8 plugins) | publish p50 / p99 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for backend in $BACKENDS; do
    later=$(awk -F'\t' '$1 > 1 {printf "%s%s ms", sep, $2; sep=", "}' "$R/$backend-starts.tsv")
    printf '| %s | %s | %s ms | %s ms | %s | %s MiB | %s / %s ms | %s / %s ms | %s MiB | %s | %s / %s ms |\n' \
      "$backend" "$(cat "$R/$backend-size")" "$(cat "$R/$backend-seed-ms")" \
      "$(awk -F'\t' '$1 == 1 {print $2}' "$R/$backend-starts.tsv")" "${later:--}" \
      "$(awk -F'\t' 'END {print $3}' "$R/$backend-starts.tsv")" \
      "$(jq -r ".p50_ms * 100 | round / 100" "$R/$backend-inclusion.json")" "$(jq -r ".p99_ms * 100 | round / 100" "$R/$backend-inclusion.json")" \
      "$(jq -r ".p50_ms * 100 | round / 100" "$R/$backend-consistency.json")" "$(jq -r ".p99_ms * 100 | round / 100" "$R/$backend-consistency.json")" \
      "$(cat "$R/$backend-rss-after")" \
      "$(jq -r '.kinds[] | select(.kind == "publish") | "\(.count) in \(.count / .per_s | round) s, \(.errors) failed"' "$R/$backend-publish.json"), $(jq -r '.releases_acknowledged_but_unlisted | length' "$R/$backend-publish.json") lost" \
      "$(jq -r '.kinds[] | select(.kind == "publish") | .p50_ms | round' "$R/$backend-publish.json")" \
      "$(jq -r '.kinds[] | select(.kind == "publish") | .p99_ms | round' "$R/$backend-publish.json")"
  done
  echo
  echo "Start: from the process's launch to its first 200 from /ready. Proofs: one request at a time over HTTP, to the last byte."
} | tee "$R/report.md"

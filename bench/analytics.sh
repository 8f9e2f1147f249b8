#!/usr/bin/env bash
# Analytics intake under load (issue 18: "a load test of 1,000,000 events shows intake
# throughput and download latency p99 with and without the load, as a ratio, in one run").
# One release `agora serve` on its embedded SQLite defaults, one small plugin published.
#   1. baseline: wrk downloads the release's manifest blob (GET /api/v1/blobs/DIGEST,
#      DL_CONNS connections) RUNS times for DUR, nothing else running;
#   2. load: SEARCHES searches (GET /api/v1/plugins?q=WORD, SEARCH_CONNS connections,
#      words cycling through QUERIES distinct ones: the per-day bound of distinct queries
#      kept) and REPORTS instance reports of EXECUTIONS executions each (POST
#      /api/v1/instance/report, fresh batch numbers, INSTANCES instances each posting one
#      report after the other) sent at once, as fast as the server answers; meanwhile the
#      same download wrk runs round after round of DUR, and only rounds that ran entirely
#      while both loads were running count;
#   3. when both loads are done and the intake has written everything it took, the rows of
#      analytics_events (by kind) are counted with sqlite3 and compared with what was sent.
# Searches go through the intake's buffer (`agora_analytics_events_total` on /metrics,
# sampled every 0.5 s); reports' runs are written in their own request. Downloads are
# counted once per client address and hour, so the download wrk adds one event, not load.
# wrk, the server and sqlite3 share this machine's cores.
#
#   bash bench/analytics.sh                                   # prints a Markdown report
#   SEARCHES=300000 REPORTS=700 EXECUTIONS=1000 RUNS=3 DUR=10s bash bench/analytics.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
SEARCHES=${SEARCHES:-300000}
REPORTS=${REPORTS:-700}
EXECUTIONS=${EXECUTIONS:-1000}
INSTANCES=${INSTANCES:-2}
SEARCH_THREADS=${SEARCH_THREADS:-2}
SEARCH_CONNS=${SEARCH_CONNS:-8}
DL_CONNS=${DL_CONNS:-8}
QUERIES=${QUERIES:-5000}
B=${B:-/tmp/agora-bench-analytics}
PORT=${PORT:-18104}
command -v wrk >/dev/null && command -v sqlite3 >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk sqlite3 curl >/dev/null
}
(( SEARCHES % SEARCH_THREADS == 0 && REPORTS % INSTANCES == 0 )) || {
  log "SEARCHES must be a multiple of SEARCH_THREADS, REPORTS of INSTANCES"; exit 1; }
(( EXECUTIONS >= 1 && EXECUTIONS <= 1000 )) || { log "EXECUTIONS: 1 to 1000 (a report's limit)"; exit 1; }
[[ -x $AGORA && ${SKIP_BUILD:-0} == 1 ]] || build_release
rm -rf "$B" && mkdir -p "$B/data" "$B/results" "$B/done"
R=$B/results
LOADS=()
stop_loads() { for p in "${LOADS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done; }
trap 'stop_loads; cleanup' EXIT
now_ms() { date +%s%3N; }

start_agora "$B/data" "$R/agora"
curl -sf -o /dev/null "$A/ready" || { log "agora did not start"; cat "$R/agora.err" >&2; exit 1; }
# A small plugin: its manifest is the blob every download asks for.
mkdir -p "$B/plugin"
printf 'api_version: agora/v1\npublisher: bench\nname: an\nversion: 1.0.0\ndescription: Analytics benchmark\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n' >"$B/plugin/plugin.yaml"
head -c 4096 /dev/urandom >"$B/plugin/plugin.wasm"
cli publisher create bench >/dev/null
cli keygen --out "$B/bench_ed25519" >/dev/null
cli key add bench "$B/bench_ed25519.pub" >/dev/null
AGORA_SIGNING_KEY=$B/bench_ed25519 cli publish "$B/plugin" >/dev/null
MANIFEST=$(curl -sf "$A/api/v1/plugins/bench/an/versions/1.0.0" | jq -r '.artifacts[] | select(.role == "manifest") | .digest')
[[ $MANIFEST == sha256:* ]] || { log "no manifest digest"; exit 1; }
DL_URL=$A/api/v1/blobs/$MANIFEST
# A tenant and INSTANCES instances, each with its own credential.
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
api -X POST "$A/api/v1/tenants" -d '{"name": "bench"}' >/dev/null
INSTANCE_TOKENS=
for i in $(seq 1 "$INSTANCES"); do
  t=$(api -X POST "$A/api/v1/tenants/bench/instances" -d "{\"name\": \"i$i\"}" | jq -r .token)
  [[ $t == agi_* ]] || { log "no instance credential"; exit 1; }
  INSTANCE_TOKENS+=${INSTANCE_TOKENS:+,}$t
done

# --------------------------------------------------------------------- wrk scripts
# Both stop themselves: each thread sends its share (QUOTA requests), waits for every
# answer, writes DONE_DIR/NAME-ID and stops; the caller then ends wrk with SIGINT (wrk
# otherwise sleeps out its -d). done() prints what was sent and answered.
cat >"$B/common.lua" <<'LUA'
local threads, n = {}, 0
function setup(thread)
  thread:set("id", n); n = n + 1; table.insert(threads, thread)
end
sent, answered, bad, extra, finished, armed = 0, 0, 0, 0, false, false
-- wrk asks every request after delay(); no request once the share is sent (a connection
-- waits an hour, then wrk is stopped).
function delay()
  armed = true
  if sent < quota then return 0 end
  return 3600000
end
function response(status, headers, body)
  answered = answered + 1
  if status ~= expected then
    bad = bad + 1
    if bad <= 3 then io.stderr:write(name, ": status ", status, " ", body:sub(1, 300), "\n") end
  end
  if not finished and sent >= quota and answered >= sent + extra then
    finished = true
    local f = io.open(done_dir .. "/" .. name .. "-" .. id, "w")
    f:write(sent, "\n"); f:close()
    wrk.thread:stop()
  end
end
-- A connection that asks once the share is sent (a race between connections) gets a
-- request that counts nothing; so does wrk's check of the script, a request() call on
-- the first thread before anything is sent (before any delay()).
function filler()
  if armed then extra = extra + 1 end
  return wrk.format("GET", "/ready")
end
function done(summary, latency, requests)
  local s, a, b, x = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent"); a = a + t:get("answered"); b = b + t:get("bad"); x = x + t:get("extra")
  end
  io.write(string.format("RESULT sent=%d answered=%d bad=%d filler=%d errors=%d\n", s, a, b, x,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
cat >"$B/searches.lua" <<'LUA'
dofile(script_dir .. "/common.lua")
function init(args)
  name, quota, words, done_dir, expected = "searches", tonumber(args[1]), tonumber(args[2]), args[3], 200
end
function request()
  if sent >= quota or not armed then return filler() end
  sent = sent + 1
  -- Thread t sends words t, t+T, t+2T, ... so every word is asked as often.
  local word = ((sent - 1) * nthreads + id) % words
  return wrk.format("GET", string.format("/api/v1/plugins?q=w%05d", word))
end
LUA
cat >"$B/reports.lua" <<'LUA'
dofile(script_dir .. "/common.lua")
function init(args)
  name, quota, done_dir, expected = "reports", tonumber(args[1]), args[4], 204
  local tokens = {}
  for t in string.gmatch(args[3], "[^,]+") do table.insert(tokens, t) end
  token = tokens[id + 1]
  local runs, at = {}, tonumber(args[5])
  for i = 1, tonumber(args[2]) do
    -- 1 to 3 calls each, at most a second apart: realistic deltas of one agent.
    local calls = 1 + i % 3
    table.insert(runs, string.format(
      '{"plugin":"bench/an","version":"1.0.0","at":%d,"calls":%d,"failures":0,"total_ms":%d,' ..
      '"durations":[0,0,%d,0,0,0,0,0,0,0,0,0,0,0,0,0],"errors":[]}', at - i, calls, 7 * calls, calls))
  end
  prefix = '{"core_version":"1.0.0","runner_version":"1.0.0","platform":"linux-x86_64","generation":0,' ..
    '"plugins":[],"executions":[' .. table.concat(runs, ",") .. '],"batch":'
end
function request()
  if sent >= quota or not armed then return filler() end
  sent = sent + 1
  return wrk.format("POST", "/api/v1/instance/report",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
    prefix .. sent .. "}")
end
LUA
# The path of the shared part and the thread count reach the scripts before init().
sed -i "1i script_dir = \"$B\"" "$B/searches.lua" "$B/reports.lua"
sed -i "1a nthreads = $SEARCH_THREADS" "$B/searches.lua"

# ------------------------------------------------------------------------ measuring
# dl_round NAME RUN: one wrk round of downloads into $R/wrk.tsv (the columns of wrk_rounds).
dl_round() {
  local out
  out=$(wrk -t2 -c"$DL_CONNS" -d"$DUR" --latency "$DL_URL")
  echo "$out" >"$R/raw_$1_$2.txt"
  grep -q "Non-2xx" <<<"$out" && { log "$1: non-2xx answers"; echo "$out" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(to_mib "$(awk '/Transfer\/sec/ {print $2}' <<<"$out")")" "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
    "$(awk '$1 == "99%" {print $2}' <<<"$out")" >>"$R/wrk.tsv"
  log "$1 run $2: $(tail -1 "$R/wrk.tsv" | cut -f3-6 | tr '\t' ' ')"
}
# metrics_line: "time_ms taken written dropped buffered" of the intake, from /metrics.
metrics_line() {
  curl -sf -m 2 "$A/metrics" | awk -v t="$(now_ms)" '
    /^agora_analytics_events_total\{outcome="taken"\}/ {k=$2}
    /^agora_analytics_events_total\{outcome="written"\}/ {w=$2}
    /^agora_analytics_events_total\{outcome="dropped"\}/ {d=$2}
    /^agora_analytics_events_buffered/ {b=$2}
    END {printf "%s\t%d\t%d\t%d\t%d\n", t, k, w, d, b}'
}
: >"$R/wrk.tsv"
curl -sf -o /dev/null "$DL_URL"
log "baseline: $RUNS download rounds of $DUR, $DL_CONNS connections"
for run in $(seq 1 "$RUNS"); do dl_round baseline "$run"; done
BEFORE=$(metrics_line)

# Load: both wrk at once; a watcher ends each when all its threads are done.
: >"$R/metrics.tsv"
( while :; do metrics_line >>"$R/metrics.tsv" || true; sleep 0.5; done ) &
SAMPLER=$!; LOADS+=("$SAMPLER")
# finish NAME THREADS WRK_PID: waits for THREADS markers, records the time, stops wrk.
finish() {
  while (( $(ls "$B/done" | grep -c "^$1-" || true) < $2 )); do
    kill -0 "$3" 2>/dev/null || return 0
    sleep 0.05
  done
  now_ms >"$R/$1.end"
  kill -INT "$3" 2>/dev/null || true
}
LOAD_START=$(now_ms)
log "load: $SEARCHES searches and $REPORTS reports × $EXECUTIONS executions"
wrk -t"$SEARCH_THREADS" -c"$SEARCH_CONNS" -d30m -s "$B/searches.lua" "$A" -- \
  "$((SEARCHES / SEARCH_THREADS))" "$QUERIES" "$B/done" >"$R/searches.txt" 2>"$R/searches.err" &
SW=$!; LOADS+=("$SW")
wrk -t"$INSTANCES" -c"$INSTANCES" -d30m --timeout 30s -s "$B/reports.lua" "$A" -- \
  "$((REPORTS / INSTANCES))" "$EXECUTIONS" "$INSTANCE_TOKENS" "$B/done" "$LOAD_START" >"$R/reports.txt" 2>"$R/reports.err" &
RW=$!; LOADS+=("$RW")
finish searches "$SEARCH_THREADS" "$SW" & LOADS+=("$!")
finish reports "$INSTANCES" "$RW" & LOADS+=("$!")
both_running() { kill -0 "$SW" 2>/dev/null && kill -0 "$RW" 2>/dev/null; }
sleep 1
run=0; partial=0
while both_running; do
  run=$((run + 1))
  dl_round loaded "$run"
  if ! both_running; then
    # This round ended after a load did: not a round under the whole load.
    sed -i '$d' "$R/wrk.tsv"; mv "$R/raw_loaded_$run.txt" "$R/partial_loaded_$run.txt"
    partial=1; run=$((run - 1)); log "round $((run + 1)) outlived a load: not counted"
  fi
done
wait "$SW" "$RW" || true
LOAD_END=$(now_ms)
grep -h '^RESULT' "$R/searches.txt" "$R/reports.txt" >&2 || true
(( run > 0 )) || { log "no download round ran entirely under load: make the load longer (more SEARCHES/REPORTS) or DUR shorter"; exit 1; }

# The intake writes what it took within a flush interval (1 s) or so.
for _ in $(seq 600); do
  read -r _ taken written dropped buffered <<<"$(metrics_line)"
  (( written + dropped >= taken && buffered == 0 )) && break
  sleep 0.1
done
kill "$SAMPLER" 2>/dev/null || true
AFTER=$(metrics_line)
RSS=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status")
sqlite3 "$B/data/agora.db" "SELECT kind, COUNT(*) FROM analytics_events GROUP BY kind ORDER BY kind" | tr '|' '\t' >"$R/rows.tsv"
rows() { awk -F'\t' -v k="$1" '$1 == k {n=$2} END {print n + 0}' "$R/rows.tsv"; }
CALLS=$(sqlite3 "$B/data/agora.db" "SELECT COALESCE(SUM(count), 0) FROM analytics_counts WHERE period = 'day' AND kind = 'run'")

# ------------------------------------------------------------------------ figures
field() { sed -n "s/^RESULT.* $2=\([0-9]*\).*/\1/p" "$R/$1.txt"; }
S_SENT=$(field searches sent); S_BAD=$(field searches bad); S_ERR=$(field searches errors)
R_SENT=$(field reports sent); R_BAD=$(field reports bad); R_ERR=$(field reports errors)
R_OK=$((R_SENT - R_BAD)); RUNS_SENT=$((R_OK * EXECUTIONS))
S_END=$(cat "$R/searches.end" 2>/dev/null || echo "$LOAD_END"); R_END=$(cat "$R/reports.end" 2>/dev/null || echo "$LOAD_END")
read -r _ TAKEN0 WRITTEN0 _ _ <<<"$BEFORE"
read -r _ TAKEN1 WRITTEN1 DROPPED1 BUFFERED1 <<<"$AFTER"
# When the intake had written everything (the first sample at the final count).
W_END=$(awk -F'\t' -v w="$WRITTEN1" '$3 >= w {print $1; exit}' "$R/metrics.tsv")
W_END=${W_END:-$(now_ms)}
PEAK_BUF=$(cut -f5 "$R/metrics.tsv" | sort -g | tail -1)
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }'; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
TOTAL=$((S_SENT + RUNS_SENT)); LAST=$(( S_END > R_END ? S_END : R_END )); WLAST=$(( W_END > R_END ? W_END : R_END ))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
ms() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u); printf "%.2f", (u == "us") ? n / 1000 : (u == "s") ? n * 1000 : n }'; }
median_ms() { col "$1" "$2" | while read -r v; do ms "$v"; echo; done | median; }
spread_ms() { col "$1" "$2" | while read -r v; do ms "$v"; echo; done | sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%s–%s", min, max}'; }
lrow() {
  local a g; a=$(median_ms loaded "$2"); g=$(median_ms baseline "$2")
  echo "| $1 | $g ($(spread_ms baseline "$2")) | $a ($(spread_ms loaded "$2")) | $(ratio "$a" "$g") |"
}
check() { [[ $1 == "$2" ]] && echo "$1 = $2 ✓" || echo "**$1 ≠ $2 ✗**"; }
OK=1
[[ $(rows search) == "$S_SENT" && $(rows run) == "$RUNS_SENT" && $DROPPED1 == 0 && $S_BAD == 0 && $R_BAD == 0 ]] || OK=0

cat <<REPORT
### Analytics intake, $(date -u +%Y-%m-%dT%H:%MZ) — \`SEARCHES=$SEARCHES REPORTS=$REPORTS EXECUTIONS=$EXECUTIONS RUNS=$RUNS DUR=$DUR bash bench/analytics.sh\`

Machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg). Agora $("$AGORA" --version | cut -d' ' -f2) (release build, SQLite); wrk and the server share the cores. Load: $TOTAL events — $S_SENT searches ($SEARCH_CONNS connections, $QUERIES distinct words) and $R_OK instance reports × $EXECUTIONS executions ($INSTANCES instances, one report after the other each) — sent at once.

| download of a manifest blob, $DL_CONNS connections | without load | with the analytics load | with / without |
|---|---|---|---|
$(lrow "p50 ms" 5)
$(lrow "p99 ms" 6)
| requests/s | $(col baseline 3 | median) ($(spread baseline 3)) | $(col loaded 3 | median) ($(spread loaded 3)) | $(ratio "$(col loaded 3 | median)" "$(col baseline 3 | median)") |

Medians of $RUNS rounds of $DUR without load and of the $run rounds of $DUR that ran entirely while both loads did (min–max)$( ((partial)) && echo "; a round that outlived a load is left out").

| intake | events | time, s | events/s taken | events/s written |
|---|---|---|---|---|
| searches (\`GET /api/v1/plugins?q=\`, buffered, written in batches) | $S_SENT | $(secs $((S_END - LOAD_START))) | $(rate "$S_SENT" $((S_END - LOAD_START))) | $(rate $((WRITTEN1 - WRITTEN0)) $((W_END - LOAD_START))) |
| runs (\`POST /api/v1/instance/report\`, $EXECUTIONS per report, written in the request) | $RUNS_SENT | $(secs $((R_END - LOAD_START))) | $(rate "$RUNS_SENT" $((R_END - LOAD_START))) | $(rate "$RUNS_SENT" $((R_END - LOAD_START))) |
| all | $TOTAL | $(secs $((LAST - LOAD_START))) | $(rate "$TOTAL" $((LAST - LOAD_START))) | $(rate "$TOTAL" $((WLAST - LOAD_START))) |

Searches: $(rate "$S_SENT" $((S_END - LOAD_START))) requests/s; reports: $(awk -v n="$R_OK" -v ms=$((R_END - LOAD_START)) 'BEGIN { printf "%.1f", n * 1000 / ms }') requests/s. The intake took $((TAKEN1 - TAKEN0)) events during the load and wrote the last of them $(secs $((W_END - S_END))) s after the last search was answered; at most $PEAK_BUF were waiting in its buffer (sampled every 0.5 s).

Every event stored? Rows of \`analytics_events\` after the last flush (sqlite3): searches $(check "$(rows search)" "$S_SENT"), runs $(check "$(rows run)" "$RUNS_SENT"), downloads $(rows download) (the download wrk's one client, counted once an hour); calls in the daily rollup: $CALLS. /metrics: taken $TAKEN1, written $WRITTEN1, dropped $DROPPED1, buffered $BUFFERED1. Non-2xx answers: searches $S_BAD, reports $R_BAD; socket errors: searches $S_ERR, reports $R_ERR.$( ((OK)) || echo " **Not every event sent was stored: see above.**")

Server peak RSS: $RSS MiB. Raw wrk output, /metrics samples and server logs in $R.
REPORT
((OK)) || log "NOT every event was stored (or some were refused): see the report"

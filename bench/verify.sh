#!/usr/bin/env bash
# The verification pipeline: a server that verifies nothing itself
# ([worker] in_process = false) takes COUNT signed releases (hello-wasm's component, so
# every stage does its real work), then an `agora worker` process drains that backlog
# while DURING more releases are published; `agora-bench verify` times each publish and
# reads every release's report. Prints a Markdown report: per-stage and total pipeline
# time per release (p50/p99, from the reports' stages[].duration_ms), releases audited
# per minute, and publish latency without and beside the busy worker.
#
#   bash bench/verify.sh                          # PostgreSQL (DB_URL), 200 + 100 releases
#   DB=sqlite COUNT=300 DURING=150 bash bench/verify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-/tmp/agora-bench-verify}
COUNT=${COUNT:-200}
DURING=${DURING:-100}
CONCURRENCY=${CONCURRENCY:-1}
PORT=${PORT:-18097}
DB=${DB:-postgres}
DB_URL=${DB_URL:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=agora_bench_verify
. bench/lib.sh

build_release
log "building hello-wasm"
cargo build --release --quiet --manifest-path examples/plugins/hello-wasm/Cargo.toml --target wasm32-wasip2
MODULE=$CARGO_TARGET_DIR/wasm32-wasip2/release/hello-wasm.wasm
rm -rf "$B" && mkdir -p "$B/data"
export AGORA_WORKER__IN_PROCESS=false AGORA_LOG__LEVEL=warn AGORA_RATE_LIMITS__ENABLED=false
if [[ $DB == postgres ]]; then
  psql "$DB_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA" 2>/dev/null
  sep='?'; [[ $DB_URL == *\?* ]] && sep='&'
  export AGORA_DATABASE_URL="$DB_URL${sep}options=-c%20search_path%3D$SCHEMA"
else
  unset AGORA_DATABASE_URL
fi
start_agora "$B/data" "$B/agora"
cli publisher create bench >/dev/null

log "publishing $COUNT releases, then $DURING beside the worker"
"$BENCH" verify --registry "$A" --token "$TOKEN" --agora "$AGORA" --data-dir "$B/data" \
  --count "$COUNT" --during "$DURING" --module "$MODULE" --concurrency "$CONCURRENCY" >"$B/verify.json"
[[ $DB == postgres ]] && psql "$DB_URL" -qc "DROP SCHEMA $SCHEMA CASCADE" 2>/dev/null

python3 - "$B/verify.json" "$DB" "$COUNT" "$DURING" "$CONCURRENCY" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys, datetime
r = json.load(open(sys.argv[1]))
db, count, during, conc, cores, load = sys.argv[2:]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
print(f"### Run of {now} — `DB={db} COUNT={count} DURING={during} CONCURRENCY={conc} bash bench/verify.sh`\n")
print(f"{cores} cores; load average at the end {load}; {r['releases']} signed releases of hello-wasm "
      f"({r['module_bytes']} bytes) on {'PostgreSQL' if db == 'postgres' else 'SQLite'}; one `agora worker` process, "
      f"concurrency {r['worker_concurrency']}; outcomes: "
      + ", ".join(f"{k} {v}" for k, v in r['outcomes'].items()) + ".\n")
print("| measure | p50 | p99 |\n|---|---|---|")
p = r['pipeline_per_release']
print(f"| pipeline per release (sum of the stages), ms | {p['p50_ms']:.0f} | {p['p99_ms']:.0f} |")
for name, s in r['stages'].items():
    print(f"| stage `{name}`, ms | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} |")
a, b = r['publish_without_worker'], r['publish_beside_busy_worker']
print(f"| publish, no worker running ({a['runs']} releases), ms | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} |")
print(f"| publish beside the worker draining the backlog ({b['runs']} releases), ms | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} |")
print(f"| publish latency ratio, busy / none | {r['publish_ratio_p50']:.2f} | {r['publish_ratio_p99']:.2f} |")
print(f"\nReleases audited per minute: **{r['audited_per_minute']:.0f}** "
      f"(first report to last, {r['releases']} releases). The worker was "
      + ("busy" if r['worker_busy_throughout'] else "**not** busy")
      + " for the whole second publishing phase. Stage times are whole milliseconds, as reports record them.")
PY

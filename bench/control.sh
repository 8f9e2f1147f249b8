#!/usr/bin/env bash
# The control plane: simulated agents (tokio tasks in `agora-bench control-plane`, each
# with its own instance credential and connections) against a real `agora serve` on its
# embedded SQLite defaults. Prints a Markdown report:
#   1. convergence: INSTANCES agents long-poll (wait 30 s); ROUNDS approvals (a plugin
#      approved, then its pin moved between two versions); time from the approval request
#      to every instance having the new generation, and to every instance having fetched
#      the release (detail, manifest and artifacts by digest, hashed) and reported;
#   2. polling load: K agents polling without long poll every 1 s (±10%) for each K of
#      LEVELS, until p99 passes STOP_P99_MS or errors appear: req/s, latency, errors,
#      server CPU and memory; "agents per server" = the largest K with p99 < BOUND_MS;
#      then the ceilings: 64 instances asking `desired`, then posting reports, back to back;
#   3. long polls held: N agents parked in a long poll for each N of LEVELS (same end
#      rule): server CPU, memory, sockets, a plain poll's latency beside them, and one
#      approval's fan-out to a tenant's parked instances (at most 1,000 per tenant).
# The server's connection caps are raised for the run (MAX_CONNECTIONS, PER_CLIENT: all
# agents connect from 127.0.0.1, and the per-address cap is 256 by default), so the
# figures are the server's, not the cap's.
#
#   bash bench/control.sh                      # defaults below
#   LEVELS=250,500 MEASURE=10 bash bench/control.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-/tmp/agora-bench-control}
PORT=${PORT:-18098}
INSTANCES=${INSTANCES:-100}
ROUNDS=${ROUNDS:-5}
LEVELS=${LEVELS:-250,500,1000,2000,3000,4000,6000,8000}
WARMUP=${WARMUP:-5}
MEASURE=${MEASURE:-20}
STOP_P99_MS=${STOP_P99_MS:-250}
BOUND_MS=${BOUND_MS:-100}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-16384}
PER_CLIENT=${PER_CLIENT:-$MAX_CONNECTIONS}
. bench/lib.sh

build_release
rm -rf "$B" && mkdir -p "$B/data"
# Every simulated agent holds its own connections, all from 127.0.0.1; the bench process
# needs a descriptor per connection too.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
AGORA_LIMITS__MAX_CONNECTIONS=$MAX_CONNECTIONS AGORA_LIMITS__MAX_CONNECTIONS_PER_CLIENT=$PER_CLIENT \
  start_agora "$B/data" "$B/agora"
cli publisher create bench >/dev/null

log "running (levels $LEVELS, $MEASURE s each; load average $(cut -d' ' -f1-3 /proc/loadavg))"
"$BENCH" control-plane --registry "$A" --token "$TOKEN" --server-pid "$PID" \
  --instances "$INSTANCES" --rounds "$ROUNDS" --levels "$LEVELS" \
  --warmup-secs "$WARMUP" --measure-secs "$MEASURE" --stop-p99-ms "$STOP_P99_MS" >"$B/control.json"

python3 - "$B/control.json" "$BOUND_MS" "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$MAX_CONNECTIONS" "$PER_CLIENT" \
  "INSTANCES=$INSTANCES ROUNDS=$ROUNDS LEVELS=$LEVELS MEASURE=$MEASURE" <<'PY'
import json, sys, datetime
r = json.load(open(sys.argv[1]))
bound, cores, load, cap, per_client, knobs = float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
f = lambda v, d=1: "–" if v is None else f"{v:.{d}f}"
# The busiest thread of each kind in the server (tokio workers, SQLite connections).
thread = lambda l: ", ".join(f"{n} {v:.0f}" for n, v in sorted((l.get("server_busiest_thread_cpu_percent") or {}).items(), key=lambda x: -x[1])[:2]) or "–"
c = r["convergence"]
print(f"### Control plane, {now} — `{knobs} bash bench/control.sh`\n")
print(f"{cores}; load average at the end {load}; `agora serve` on SQLite with "
      f"`AGORA_LIMITS__MAX_CONNECTIONS={cap}` and `AGORA_LIMITS__MAX_CONNECTIONS_PER_CLIENT={per_client}`; "
      f"the simulated agents run in `agora-bench` on the same cores.\n")
print(f"**Convergence after an approval**: {c['instances']} instances long-polling (wait {c['wait_secs']} s), "
      f"{len(c['rounds'])} approvals (approve, then the pin moved between two versions); each instance "
      f"fetches {c['bytes_fetched_per_instance']} bytes per round (detail, manifest, {r['module_kib']} KiB module, README; "
      f"every blob hashed) and reports. Agent errors: {c['errors']['count']}.\n")
print("| measure | median of rounds | max of rounds | per instance p50 | per instance p99 |\n|---|---|---|---|---|")
print(f"| approval request answered, ms | {f(c['approve_ms']['median'])} | {f(c['approve_ms']['max'])} | | |")
print(f"| every instance has the new generation, ms | {f(c['all_received_ms']['median'])} | {f(c['all_received_ms']['max'])} "
      f"| {f(c['per_instance_received']['p50_ms'])} | {f(c['per_instance_received']['p99_ms'])} |")
print(f"| every instance fetched the release and reported, ms | {f(c['all_reported_ms']['median'])} | {f(c['all_reported_ms']['max'])} "
      f"| {f(c['per_instance_reported']['p50_ms'])} | {f(c['per_instance_reported']['p99_ms'])} |")
print(f"\n**Polling load** (`desired` without long poll, each agent every {r['poll_interval_s']:.0f} s ±10%, "
      f"{r['warmup_s']:.0f} s warm-up, then {r['measure_s']:.0f} s measured; CPU in % of one core):\n")
print("| agents K | requests/s | p50 ms | p99 ms | max ms | errors | server CPU % | busiest server threads, CPU % | bench CPU % | server RSS / peak MiB | server sockets |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ok = None
for l in r["polling"]:
    print(f"| {l['agents']} | {f(l['requests_per_s'], 0)} | {f(l['p50_ms'], 2)} | {f(l['p99_ms'], 2)} | {f(l['max_ms'], 1)} "
          f"| {l['errors']} | {f(l['server_cpu_percent'], 0)} | {thread(l)} | {f(l['bench_cpu_percent'], 0)} "
          f"| {f(l['server_rss_mib'], 0)} / {f(l['server_peak_rss_mib'], 0)} | {l['server_sockets']} |")
    if l["errors"] == 0 and l["p99_ms"] is not None and l["p99_ms"] < bound:
        ok = l
errs = [l["first_error"] for l in r["polling"] if l["first_error"]]
if errs:
    print(f"\nFirst error: `{errs[0]}`")
if ok:
    print(f"\n**Agents per server**: {ok['agents']} agents polling every second held p99 < {bound:.0f} ms "
          f"({ok['p99_ms']:.1f} ms, {ok['requests_per_s']:.0f} req/s). At the agent's 30 s interval that is "
          f"the request rate of **{30 * ok['agents']:,} agents** (K at 1 s = 30·K at 30 s) on this machine.")
else:
    print(f"\n**Agents per server**: no level held p99 < {bound:.0f} ms without errors.")
b = r["back_to_back"]
print(f"\n**Ceilings**: {b['desired']['agents']} instances asking back to back (no pause), {r['measure_s']:.0f} s measured; "
      f"each request is one write through SQLite's single write connection (`desired` sets `last_seen_at`):\n")
print("| request | requests/s | p50 ms | p99 ms | errors | server CPU % | busiest server threads, CPU % | bench CPU % |")
print("|---|---|---|---|---|---|---|---|")
for what, label in [("desired", "`GET /api/v1/instance/desired`"), ("report", "`POST /api/v1/instance/report` (one plugin)")]:
    l = b[what]
    print(f"| {label} | {f(l['requests_per_s'], 0)} | {f(l['p50_ms'], 2)} | {f(l['p99_ms'], 2)} | {l['errors']} "
          f"| {f(l['server_cpu_percent'], 0)} | {thread(l)} | {f(l['bench_cpu_percent'], 0)} |")
print(f"\n**Long polls held** (agents parked in `desired?after=GEN&wait=30`, a probe instance polling "
      f"without long poll every 100 ms beside them, {r['measure_s']:.0f} s measured):\n")
print("| parked N | server sockets | server CPU % | busiest server threads, CPU % | bench CPU % | server RSS / peak MiB | probe p50 ms | probe p99 ms | errors | one approval reaches a tenant's parked instances: n, p50 / max ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
for l in r["long_polls_held"]:
    if "failed" in l:
        print(f"| {l['parked']} | not all parked: {l['failed']}; agent errors {l['agent_errors']['count']} (first: `{l['agent_errors']['first']}`) | | | | | | | | |")
        continue
    x = l["fan_out"]
    fan = x.get("failed") or f"{x['instances']}: {x['per_instance']['p50_ms']:.0f} / {x['per_instance']['max_ms']:.0f}"
    print(f"| {l['parked']} | {l['server_sockets']} | {f(l['server_cpu_percent'], 0)} | {thread(l)} | {f(l['bench_cpu_percent'], 0)} "
          f"| {f(l['server_rss_mib'], 0)} / {f(l['server_peak_rss_mib'], 0)} | {f(l['p50_ms'], 2)} | {f(l['p99_ms'], 2)} "
          f"| {l['errors'] + l['agent_errors']['count']} | {fan} |")
print(f"\nRegistering {r['registered_instances']} instances: {r['registrations_per_s']:.0f} per second. Raw JSON in {sys.argv[1]}.")
PY

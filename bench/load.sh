#!/usr/bin/env bash
# Load: a mixed workload held for DURATION seconds against one `agora serve`, on each
# backend of BACKENDS one after the other (SQLite, the embedded default; PostgreSQL in a
# fresh schema of PG). For each backend:
#   1. COUNT plugins (every fifth with reviews) seeded into the catalog by
#      `agora-bench seed` (on PostgreSQL then ANALYZEd), then the server started (rate
#      limits off, below) and left to write the OCI artifacts of those releases (its
#      one-time catch-up at start);
#   2. `agora-bench load` (bench/src/load.rs): CLIENTS tasks, each with its own
#      connections, asking one request after another for DURATION seconds, each picking
#      by weight: blob downloads of the releases it published, version and plugin details,
#      API searches (varied words, filters, sorts, page sizes, next pages) and the web
#      pages /, /search?... and /plugins/P/N; beside them signed publishes of new versions
#      of PLUGINS plugins (manifest, MODULE_KIB KiB module, README, CHANGELOG, uploaded and
#      released through the client library as `agora publish` does), PUBLISH_PER_SEC a
#      second at most. Every acknowledged release is then looked up in its version list;
#   3. the server stopped and its log (level warn) read for warnings, errors and panics.
# Prints a Markdown report (also in $RESULTS/report.md): per kind of request, count,
# requests/s, p50/p99/max and every answer outside 2xx/3xx by status with sample bodies;
# totals; per minute requests/s, p99, failures and server memory; the server's CPU and
# peak RSS; the load average of the machine while it ran. Exits 1 if any request got a 5xx
# or no answer, if an acknowledged release is missing, or if the server logged a panic.
#
# Rate limits: all clients connect from 127.0.0.1, one address, so the server runs with
# AGORA_RATE_LIMITS__ENABLED=false (the limits themselves are tested in
# crates/agora/tests/limits.rs). Build: BUILD=release or debug; by default the release
# binaries if both exist, else the debug ones (dependencies optimized, Agora's own crates
# not), and the report says which.
#
#   bash bench/load.sh                                    # 10 minutes on each backend
#   DURATION=60 BACKENDS=sqlite COUNT=2000 bash bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
CLIENTS=${CLIENTS:-12}
COUNT=${COUNT:-10000}
PLUGINS=${PLUGINS:-8}
PUBLISH_PER_SEC=${PUBLISH_PER_SEC:-2}
MODULE_KIB=${MODULE_KIB:-32}
BACKENDS=${BACKENDS:-sqlite postgres}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
B=${B:-/tmp/agora-bench-load}
RESULTS=${RESULTS:-$B/results}
PORT=${PORT:-18105}
BUILD=${BUILD:-auto}
source bench/lib.sh
CATCH_UP_WAIT=${CATCH_UP_WAIT:-1800}
# Warnings and errors, and the start-up lines of `agora serve` (the OCI catch-up's end).
export AGORA_RATE_LIMITS__ENABLED=false AGORA_LOG__LEVEL=warn,agora::commands::serve=info

choose_build
check_backends
rm -rf "$B" && mkdir -p "$B" "$RESULTS"
R=$RESULTS
trap 'cleanup; drop_schema' EXIT

# run_backend NAME: seeds, serves and loads one backend; $R/NAME.json, NAME-agora.err.
run_backend() {
  local backend=$1 db
  mkdir -p "$B/$backend"
  if [[ $backend == postgres ]]; then
    pg_schema agora_bench_load_$$
  else
    db="sqlite://$B/$backend/agora.db"
    unset AGORA_DATABASE_URL
  fi
  log "$backend: seeding $COUNT plugins"
  "$BENCH" seed --database "$db" --count "$COUNT" --reviews 2>"$R/$backend-seed.log"
  # Planner statistics, as autovacuum gathers them soon after a bulk insert; test servers
  # often run without it (a search's plan without them: 1.2 s under load instead of ms).
  if [[ $backend == postgres ]]; then psql "$db" -qAtc "ANALYZE"; fi
  start_agora "$B/$backend" "$R/$backend-agora"
  curl -sf -o /dev/null "$A/ready" || { log "$backend: agora did not start"; cat "$R/$backend-agora.err" >&2; exit 1; }
  # Seeded releases have no OCI artifacts: the server writes them in the background at
  # start (as after an upgrade). That one-time catch-up is not the load measured: wait.
  if (( COUNT > 0 )); then
    log "$backend: waiting for the OCI catch-up of the seeded releases"
    local t0=$SECONDS
    until grep -q "OCI artifacts of earlier releases" "$R/$backend-agora.err"; do
      (( SECONDS - t0 < CATCH_UP_WAIT )) || { log "$backend: no end of the OCI catch-up after $CATCH_UP_WAIT s"; exit 1; }
      sleep 1
    done
    echo $((SECONDS - t0)) >"$R/$backend-catch-up-s"
  fi
  log "$backend: $CLIENTS clients for $DURATION s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  local status=0
  "$BENCH" load --registry "$A" --token "$TOKEN" --server-pid "$PID" --clients "$CLIENTS" \
    --duration-secs "$DURATION" --catalog "$COUNT" --plugins "$PLUGINS" \
    --publish-per-sec "$PUBLISH_PER_SEC" --module-kib "$MODULE_KIB" >"$R/$backend.json" 2>"$R/$backend-load.err" || status=$?
  kill -0 "$PID" 2>/dev/null && echo alive >"$R/$backend-alive" || echo dead >"$R/$backend-alive"
  cleanup
  PID=
  drop_schema
  unset AGORA_DATABASE_URL
  if (( status != 0 )); then
    log "$backend: agora-bench load failed"; cat "$R/$backend-load.err" >&2; echo '{}' >"$R/$backend.json"
  fi
  log "$backend: done"
}

START=$(date -u +%Y-%m-%dT%H:%MZ)
for backend in $BACKENDS; do run_backend "$backend"; done

PG_VERSION=
[[ $BACKENDS == *postgres* ]] && PG_VERSION=$(psql "$PG" -qAtc 'show server_version' | cut -d' ' -f1)
TREE=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || TREE="$TREE, with uncommitted changes in the tree"
python3 - "$R" "$START" "$BUILD" "$("$AGORA" --version | cut -d' ' -f2) (commit $TREE)" "$(nproc)" \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)" "$PG_VERSION" \
  "DURATION=$DURATION CLIENTS=$CLIENTS COUNT=$COUNT PLUGINS=$PLUGINS PUBLISH_PER_SEC=$PUBLISH_PER_SEC MODULE_KIB=$MODULE_KIB" \
  $BACKENDS <<'PY' | tee "$R/report.md"
import json, os, re, sys
R, start, build, version, cores, mem, pg_version, knobs = sys.argv[1:9]
backends = sys.argv[9:]
label = {"sqlite": "SQLite (embedded)", "postgres": f"PostgreSQL {pg_version}"}
f = lambda v, d=1: "–" if v is None else f"{v:,.{d}f}"
failed = []
runs = {b: json.load(open(f"{R}/{b}.json")) for b in backends}
print(f"### Load, {start} — `{knobs} bash bench/load.sh`\n")
build_text = ("release build" if build == "release"
              else "**debug build** (`cargo build -p agora -p agora-bench`: dependencies at opt-level 2, "
                   "Agora's own crates unoptimized; a release build would be faster)")
print(f"Agora {version}, {build_text}. {cores} cores and {mem}, **shared with other engineers' builds and tests** "
      f"while this ran (load average below); `agora serve` with its defaults (in-process verification worker, "
      f"analytics on) and `AGORA_RATE_LIMITS__ENABLED=false`: every client connects from 127.0.0.1, one address, "
      f"so the per-address quotas would throttle the load itself (the limits are tested in `crates/agora/tests/limits.rs`). "
      f"The load generator runs on the same cores.\n")
any_run = next(iter(r for r in runs.values() if r), None)
if any_run:
    w = {k["kind"]: k["weight"] for k in any_run["kinds"]}
    total = sum(w.values())
    print(f"Mix: {any_run['clients']} clients, each with its own connections, one request after another with no pause, "
          f"for {any_run['window_s']:.0f} s per backend, each request picked by weight: "
          + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in w.items() if v)
          + f"; beside them a signed publish (a new version of one of {any_run['plugins']} plugins: manifest, "
          f"{any_run['module_kib']} KiB module, README, CHANGELOG; missing-blob checks, uploads and the release timed as one) "
          f"{any_run['publish_per_sec']:g} times a second at most. The catalog holds {any_run['catalog']:,} seeded plugins "
          f"(every fifth with reviews) plus those. Searches (API and page) vary words (description words, prefixes, names, "
          f"words nothing matches), filters, sorts and page sizes; a quarter of API searches with a next page follow it. "
          f"Latency is to the last byte of the answer.\n")
def listed(r):
    if r["release_check_error"]:
        return f"**not checked**: {r['release_check_error']}"
    missing = r["releases_acknowledged_but_unlisted"]
    return "yes" if not missing else "**NO**: " + ", ".join(missing[:10])
for b in backends:
    r = runs[b]
    print(f"**{label[b]}**\n")
    if not r:
        print("The load generator failed; see its log.\n")
        failed.append(f"{b}: load generator failed")
        continue
    t = r["total"]
    la = r.get("load_average_1min") or {}
    print(f"{t['count']:,} requests in {r['window_s']:.0f} s: **{t['per_s']:.0f} requests/s**, p50 {t['p50_ms']:.1f} ms, "
          f"**p99 {t['p99_ms']:.1f} ms**, max {t['max_ms']:.0f} ms; 2xx/3xx {t['ok_2xx_3xx']:,}, 4xx {t['client_errors_4xx']}, "
          f"**5xx {t['server_errors_5xx']}**, no answer {t['connection_errors']}. Server: CPU {f(r['server_cpu_percent'], 0)}% of one core, "
          f"peak RSS {f(r['server_peak_rss_mib'], 0)} MiB (RSS at the end {f(r['server_rss_end_mib'], 0)} MiB); load generator CPU "
          f"{f(r['bench_cpu_percent'], 0)}%. Machine load average (1 min) while it ran: mean {f(la.get('mean'), 1)}, "
          f"{f(la.get('min'), 1)}–{f(la.get('max'), 1)}. Releases published: {r['releases_published']} "
          f"(including the {r['plugins']} first ones before the window), each acknowledged one listed afterwards: "
          f"{listed(r)}.\n")
    print("| kind | requests | requests/s | p50 ms | p99 ms | max ms | answers outside 2xx/3xx | no answer |")
    print("|---|---|---|---|---|---|---|---|")
    for k in r["kinds"]:
        fails = ", ".join(f"{s}: {v['count']}" for s, v in k["failures"].items()) or "0"
        print(f"| {k['kind']} | {k['count']:,} | {k['per_s']:.1f} | {f(k.get('p50_ms'), 1)} | {f(k.get('p99_ms'), 1)} "
              f"| {f(k.get('max_ms'), 0)} | {fails} | {k['errors']} |")
    print()
    print("| minute | requests/s | p99 ms | failures | server RSS (max) MiB | load average (mean) |\n|---|---|---|---|---|---|")
    for m in r["minutes"]:
        print(f"| {m['minute'] + 1} | {m['per_s']:.0f} | {m['p99_ms']:.1f} | {m['failed']} | {f(m['server_rss_max_mib'], 0)} "
              f"| {f(m.get('load_average_mean'), 1)} |")
    print()
    samples = [(k["kind"], s, v["samples"]) for k in r["kinds"] for s, v in k["failures"].items()]
    samples += [(k["kind"], "no answer", k["error_samples"]) for k in r["kinds"] if k["errors"]]
    if samples:
        print("Sample answers outside 2xx/3xx:\n")
        for kind, status, texts in samples:
            for text in texts:
                print(f"- {kind}, {status}: `{text.replace('`', chr(39))[:300]}`")
        print()
    log = open(f"{R}/{b}-agora.err", errors="replace").read().splitlines()
    levels = {lvl: sum(1 for l in log if re.search(rf"\b{lvl}\b", l)) for lvl in ("WARN", "ERROR")}
    panics = [l for l in log if "panicked" in l]
    catch_up = f"{R}/{b}-catch-up-s"
    if os.path.exists(catch_up):
        print(f"Before the window, the server wrote the OCI artifacts of the {r['catalog']:,} seeded releases "
              f"(its catch-up at start) in {open(catch_up).read().strip()} s, on its own.\n")
    print(f"Server log (level warn): {levels['WARN']} warnings, {levels['ERROR']} errors, {len(panics)} panics; "
          f"server still running at the end: {'yes' if open(f'{R}/{b}-alive').read().strip() == 'alive' else '**no**'}.")
    distinct = []
    for l in log:
        if re.search(r"\b(WARN|ERROR)\b|panicked", l):
            key = re.sub(r"\d+", "N", re.sub(r"^\S+\s+", "", l))[:160]
            if key not in [d[0] for d in distinct]:
                distinct.append((key, l))
    for _, l in distinct[:8]:
        print(f"- `{l[:300].replace('`', chr(39))}`")
    print()
    if t["server_errors_5xx"]:
        failed.append(f"{b}: {t['server_errors_5xx']} answers 5xx")
    if t["connection_errors"]:
        failed.append(f"{b}: {t['connection_errors']} requests without an answer")
    if r["releases_acknowledged_but_unlisted"] or r["release_check_error"]:
        failed.append(f"{b}: acknowledged releases missing or not checked")
    if panics:
        failed.append(f"{b}: the server panicked")
    if open(f"{R}/{b}-alive").read().strip() != "alive":
        failed.append(f"{b}: the server died")
print(f"Raw JSON and server logs in `{R}`.")
if failed:
    print("\n**FAILED**: " + "; ".join(failed))
    open(f"{R}/failed", "w").write("\n".join(failed))
PY
[[ ! -e $R/failed ]] || exit 1

#!/usr/bin/env bash
# The whole benchmark suite in one run, and its report written into docs/benchmarks.md
# (between the "suite" markers; the rest of the file is kept):
#   1. bench/run.sh    — Agora vs nginx, docker-registry and Verdaccio: metadata GET at 64
#                        and 1 connections, 1 MiB and 50 MiB downloads, 50 MiB publish,
#                        search over COUNT plugins, install cost, peak RSS;
#   2. bench/web.sh    — search page and plugin page render with COUNT plugins;
#   3. bench/deps.sh   — install of a 20-plugin dependency tree, beside `npm install` of
#                        the same tree from Verdaccio;
#   4. bench/runner.sh — runner cold start and warm call (needs root);
#   5. bench/control.sh — the control plane: convergence of 100 simulated agents after an
#                        approval, polling load up to 8,000 agents, long polls held;
#   6. bench/oci.sh    — the OCI distribution endpoints beside docker-registry: manifest
#                        GETs at 64 and 1 connections, 1 MiB and 50 MiB blob pulls;
#   7. bench/scale.sh  — scale-out: publishes and downloads with blobs on S3 (moto) vs the
#                        filesystem, redirects to presigned URLs, two replicas vs one;
#   8. bench/analytics.sh — analytics intake: 1,000,000 events (searches and instance
#                        reports), download latency with and without them, rows stored;
#   9. bench/log.sh    — a transparency log of 1,000,000 entries on SQLite and PostgreSQL:
#                        server start, inclusion and consistency proofs, publishes;
#  10. bench/search.sh — every search shape and page at COUNT plugins on SQLite and
#                        PostgreSQL, the first facet counts of new filters, peak RSS;
#  11. bench/callgrind.sh — instructions per request on the hot paths (version detail,
#                        search, 1 MiB blob, home page), counted by callgrind: figures
#                        the machine's load does not move;
#  12. bench/publish.sh — small-release publish throughput with 8 concurrent publishers on
#                        both backends, beside Verdaccio's;
#  13. bench/load.sh   — only with LOAD=1 (20 more minutes): a mixed workload for 10
#                        minutes on SQLite, then on PostgreSQL; fails the suite on any 5xx;
#  14. bench/growth.sh — only with GROWTH=1 (about an hour more): search.sh at 10,000,
#                        100,000 and 1,000,000 plugins (bulk seeded) on both backends, and
#                        its charts of search and page p99, RSS and start time in docs/charts/.
# Each part runs its workloads round-robin or repeatedly and reports medians/percentiles;
# the load average is recorded beside each part.
#
#   bash bench/suite.sh          # RUNS, DUR, COUNT pass through to the parts
#   LOAD=1 bash bench/suite.sh   # and the load part (its own COUNT: 10,000 unless set)
#   GROWTH=1 bash bench/suite.sh # and the growth part (its own SIZES)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/agora-bench-suite}
mkdir -p "$OUT"
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
START=$(date -u +%Y-%m-%dT%H:%MZ)

log "1/12 registry and peers"; bash bench/run.sh >"$OUT/registry.md"
log "2/12 web pages";          bash bench/web.sh >"$OUT/web.md"
log "3/12 dependency tree";    bash bench/deps.sh >"$OUT/deps.md"
log "4/12 runner";             bash bench/runner.sh >"$OUT/runner.md"
log "5/12 control plane";      bash bench/control.sh >"$OUT/control.md"
log "6/12 OCI endpoints";      bash bench/oci.sh >"$OUT/oci.md"
log "7/12 scale-out";          bash bench/scale.sh >"$OUT/scale.md"
log "8/12 analytics intake";   bash bench/analytics.sh >"$OUT/analytics.md"
log "9/12 transparency log";   bash bench/log.sh >"$OUT/log.md"
log "10/12 search, both backends"; bash bench/search.sh >"$OUT/search.md"
log "11/12 instruction counts"; bash bench/callgrind.sh >"$OUT/callgrind.md"
log "12/12 publish throughput"; bash bench/publish.sh >"$OUT/publish.md"
PARTS="registry web deps runner control oci scale analytics log search callgrind publish"
if [[ ${LOAD:-0} == 1 ]]; then
  log "13/13 load";             COUNT=${COUNT:-10000} bash bench/load.sh >"$OUT/load.md"
  PARTS="$PARTS load"
fi
if [[ ${GROWTH:-0} == 1 ]]; then
  log "growth: 10k, 100k, 1M plugins"; env -u COUNT bash bench/growth.sh >"$OUT/growth.md"
  PARTS="$PARTS growth"
fi

{
  echo "<!-- suite:begin (written by bench/suite.sh; edits here are replaced) -->"
  echo "## Latest full run of the suite — $START"
  echo
  echo "\`bash bench/suite.sh\` (RUNS=${RUNS:-3} DUR=${DUR:-10s} COUNT=${COUNT:-100000}) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Servers and load generators share the two cores."
  echo
  for part in $PARTS; do
    sed 's/^### /#### /' "$OUT/$part.md"
    echo
  done
  echo "<!-- suite:end -->"
} >"$OUT/section.md"

python3 - "$OUT/section.md" docs/benchmarks.md <<'PY'
import re, sys
section = open(sys.argv[1]).read().rstrip("\n") + "\n"
path = sys.argv[2]
doc = open(path).read()
pattern = re.compile(r"<!-- suite:begin.*?<!-- suite:end -->\n", re.S)
if pattern.search(doc):
    doc = pattern.sub(lambda _: section, doc)
else:
    # First run: the latest figures go right after the introduction.
    cut = doc.index("\n## ") + 1
    doc = doc[:cut] + section + "\n" + doc[cut:]
open(path, "w").write(doc)
PY
log "wrote the report into docs/benchmarks.md (parts in $OUT)"

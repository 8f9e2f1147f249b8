#!/usr/bin/env bash
# Search at scale, on each backend: COUNT generated plugins (every fifth with reviews)
# seeded into SQLite and into PostgreSQL, then every search shape and page one request
# at a time on loopback, as the client sees them. Prints a Markdown table per backend.
#
#   bash bench/search.sh                          # COUNT=100000 REQUESTS=1000, both backends
#   BACKENDS=postgres COUNT=10000 bash bench/search.sh
#   PG=postgres://postgres@127.0.0.1:5432/test   # where PostgreSQL runs (its own schema)
#   SEED=bulk COUNT=1000000 bash bench/search.sh  # seeded by the store's bulk load
#
# SEED=publish (default) stores a release at a time, every fifth plugin with reviews;
# SEED=bulk stores the same releases, without reviews, 5,000 per transaction (the rows a
# publish writes, by multi-row inserts: a million plugins in minutes, for bench/growth.sh).
# Besides the Markdown, each backend's results/summary.tsv holds one "backend count
# metric value" line per figure (seed_s, start_ms, rss_mib, facet_first_max_ms,
# SHAPE_p50_ms, SHAPE_p99_ms), which bench/growth.sh draws.
#
# Shapes (API): narrow text + two filters; a word ~10% of plugins hold; the same word
# with two filters; two filters and no text; one filter sorted by downloads. Pages: the
# home page, a different plugin page on every request, a different text search on every
# request (nothing cached can answer it). Facets: the first count of 20 filter
# combinations never asked before (what the first visitor of a filter waits), each
# timed once. Server peak RSS at the end. Everything lives under $B.
set -euo pipefail
cd "$(dirname "$0")/.."

B=${B:-/tmp/agora-bench-search}
COUNT=${COUNT:-100000}
REQUESTS=${REQUESTS:-1000}
PORT=${PORT:-18096}
BACKENDS=${BACKENDS:-sqlite postgres}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
BUILD=${BUILD:-release}
SEED=${SEED:-publish}
. bench/lib.sh
trap 'cleanup; drop_schema' EXIT

check_backends
choose_build
case $SEED in
  publish) SEED_ARGS=(--reviews) SEEDED="with reviews, a publish each" ;;
  bulk) SEED_ARGS=(--bulk) SEEDED="by the store's bulk load, no reviews" ;;
  *) log "SEED: publish or bulk, not $SEED"; exit 1 ;;
esac

declare -a NAMES=(narrow word word_filters filters_only filter_downloads home plugin_page search_page)
declare -A PATHS=(
  [narrow]="/api/v1/plugins?q=network%20scanner&category=security&runtime=wasm"
  [word]="/api/v1/plugins?q=network"
  [word_filters]="/api/v1/plugins?q=network&category=security&tag=http"
  [filters_only]="/api/v1/plugins?category=security&tag=http"
  [filter_downloads]="/api/v1/plugins?runtime=wasm&sort=downloads"
  [home]="/"
  [plugin_page]="/plugins/pub-{n50}/plugin-{n}"
  [search_page]="/search?q=w{n4}"
)
declare -A VARY=([plugin_page]=$COUNT [search_page]=1000)
CATEGORIES=(ticketing monitoring security storage)
TAGS=(http grpc json yaml cli)

field() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]], 2))" "$1" "$2"; }

for backend in $BACKENDS; do
  rm -rf "$B/$backend" && mkdir -p "$B/$backend/agora" "$B/$backend/results"
  R=$B/$backend/results
  if [[ $backend == postgres ]]; then
    pg_schema agora_bench_search
  else
    unset AGORA_DATABASE_URL
    db="sqlite://$B/$backend/agora/agora.db"
  fi
  log "$backend: seeding $COUNT plugins $SEEDED"
  SEED_START=$(date +%s)
  "$BENCH" seed --database "$db" --count "$COUNT" "${SEED_ARGS[@]}" 2>"$R/seed.log"
  SEED_S=$(($(date +%s) - SEED_START))
  if [[ $backend == postgres ]]; then
    # Vacuumed, with fresh statistics, as autovacuum keeps a live catalog. Without it, a
    # seed leaves 1.5 dead row versions per plugin (each publish inserts, then refreshes
    # the row) and, where autovacuum is off, every scan wades through them.
    psql "$db" -qAtc "VACUUM ANALYZE" >/dev/null
  fi
  START_NS=$(date +%s%N)
  start_agora "$B/$backend/agora" "$R/agora"
  START_MS=$((($(date +%s%N) - START_NS) / 1000000))
  # The server counts the whole catalog's facets at boot; let that finish first.
  curl -s -o /dev/null "$A/search"
  for name in "${NAMES[@]}"; do
    log "$backend: $name"
    if [[ -n ${VARY[$name]:-} ]]; then
      "$BENCH" latency --url "$A${PATHS[$name]}" --requests "$REQUESTS" --vary "${VARY[$name]}" >"$R/$name.json"
    else
      "$BENCH" latency --url "$A${PATHS[$name]}" --requests "$REQUESTS" >"$R/$name.json"
    fi
  done
  : >"$R/facets_first.tsv"
  for c in "${CATEGORIES[@]}"; do
    for t in "${TAGS[@]}"; do
      curl -s -o /dev/null -w '%{time_total}\n' "$A/search?category=$c&tag=$t" |
        awk -v c="$c" -v t="$t" '{ printf "%s\t%s\t%.1f\n", c, t, 1000 * $1 }' >>"$R/facets_first.tsv"
    done
  done
  RSS=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status")
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  {
    printf '%s\t%s\t%s\t%s\n' "$backend" "$COUNT" seed_s "$SEED_S" "$backend" "$COUNT" start_ms "$START_MS" \
      "$backend" "$COUNT" rss_mib "$RSS" "$backend" "$COUNT" facet_first_max_ms "$(cut -f3 "$R/facets_first.tsv" | sort -g | tail -1)"
    for name in "${NAMES[@]}"; do
      printf '%s\t%s\t%s\t%s\n' "$backend" "$COUNT" "${name}_p50_ms" "$(field "$R/$name.json" p50_ms)" \
        "$backend" "$COUNT" "${name}_p99_ms" "$(field "$R/$name.json" p99_ms)"
    done
  } >"$R/summary.tsv"

  echo "#### $backend: $COUNT plugins — \`SEED=$SEED BACKENDS=$backend COUNT=$COUNT REQUESTS=$REQUESTS bash bench/search.sh\`, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Seeded ($SEEDED) in ${SEED_S} s; server ready ${START_MS} ms after its start; $REQUESTS sequential requests per shape; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $BUILD build."
  echo
  echo "| request | p50 ms | p99 ms | max ms |"
  echo "|---|---|---|---|"
  for name in "${NAMES[@]}"; do
    echo "| \`${PATHS[$name]}\` | $(field "$R/$name.json" p50_ms) | $(field "$R/$name.json" p99_ms) | $(field "$R/$name.json" max_ms) |"
  done
  echo
  echo "First facet count of 20 filter combinations never asked before (\`/search?category=C&tag=T\`, each timed once): median $(cut -f3 "$R/facets_first.tsv" | median) ms, max $(cut -f3 "$R/facets_first.tsv" | sort -g | tail -1) ms. Server peak RSS ${RSS} MiB. Raw JSON in $R."
  echo
  drop_schema
done

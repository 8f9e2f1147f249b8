#!/usr/bin/env bash
# Web page render benchmark: the search page and a plugin page with COUNT plugins (and
# reviews on every fifth) in the catalog, one request at a time on loopback, as the
# client sees them (so an upper bound on server time). Prints a Markdown table.
#
#   bash bench/web.sh                    # COUNT=100000 REQUESTS=1000
#
# Pages: the home page; /search with no query (facets over the whole catalog: counted
# once, then served from the facet cache until the catalog changes); /search with a different text query on
# every request (w0000..w0999: nothing cached can answer it); a category filter with
# a different text query each time; a category filter sorted by rating; and a different
# plugin page on every request. Everything lives under $B; the server is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

B=${B:-/tmp/agora-bench-web}
COUNT=${COUNT:-100000}
REQUESTS=${REQUESTS:-1000}
PORT=${PORT:-18095}
. bench/lib.sh

build_release
rm -rf "$B" && mkdir -p "$B/agora" "$B/results"
R=$B/results
log "seeding $COUNT plugins with reviews"
"$BENCH" seed --database "sqlite://$B/agora/agora.db" --count "$COUNT" --reviews 2>"$R/seed.log"

start_agora "$B/agora" "$R/agora"

# The very first broad search counts every facet over the whole catalog (no cache yet):
# what the first visitor of a broad filter waits, once until the catalog changes.
COLD_MS=$(curl -s -o /dev/null -w '%{time_total}' "$A/search" | awk '{ printf "%.1f", 1000 * $1 }')
COLD_CAT_MS=$(curl -s -o /dev/null -w '%{time_total}' "$A/search?category=ticketing" | awk '{ printf "%.1f", 1000 * $1 }')

declare -a NAMES=(home search_all search_text search_category_text search_category_rating plugin_page)
declare -A URL=(
  [home]="$A/"
  [search_all]="$A/search"
  [search_text]="$A/search?q=w{n4}"
  [search_category_text]="$A/search?q=w{n4}&category=ticketing"
  [search_category_rating]="$A/search?category=ticketing&sort=rating"
  [plugin_page]="$A/plugins/pub-{n50}/plugin-{n}"
)
declare -A VARY=([search_text]=1000 [search_category_text]=1000 [plugin_page]=$COUNT)
for name in "${NAMES[@]}"; do
  log "measuring $name"
  if [[ -n "${VARY[$name]:-}" ]]; then
    "$BENCH" latency --url "${URL[$name]}" --requests "$REQUESTS" --vary "${VARY[$name]}" >"$R/$name.json"
  else
    "$BENCH" latency --url "${URL[$name]}" --requests "$REQUESTS" >"$R/$name.json"
  fi
done
RSS=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status")
field() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]], 2))" "$R/$1.json" "$2"; }

echo "### Web pages, $(date -u +%Y-%m-%dT%H:%MZ) — \`COUNT=$COUNT REQUESTS=$REQUESTS bash bench/web.sh\`"
echo
echo "$COUNT plugins (every fifth with reviews), $REQUESTS sequential requests per page, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| page | p50 ms | p99 ms | max ms | bytes |"
echo "|---|---|---|---|---|"
for name in "${NAMES[@]}"; do
  echo "| \`${URL[$name]#"$A"}\` | $(field "$name" p50_ms) | $(field "$name" p99_ms) | $(field "$name" max_ms) | $(field "$name" response_bytes) |"
done
echo
echo "First (uncached) facet count of the whole catalog: \`/search\` ${COLD_MS} ms, \`/search?category=ticketing\` ${COLD_CAT_MS} ms; later requests reuse the counts until the catalog changes (results are always fresh). The first \`/search\` can overlap the count of the whole catalog the server starts at boot."
echo "Server peak RSS: ${RSS} MiB. Raw JSON in $R."

#!/usr/bin/env bash
# How cost grows with the catalog: bench/search.sh at each catalog size of SIZES on each
# backend of BACKENDS, every catalog seeded by the store's bulk load (SEED=bulk), then
# charts of search p99, page p99, server peak RSS and start time against the size, drawn
# by bench/charts.py (matplotlib, installed when missing) into CHARTS as SVG, beside the
# figures they are drawn from (CHARTS/growth.tsv). Prints
# search.sh's tables for every size, then where the charts are.
#
#   bash bench/growth.sh                                   # 10k, 100k, 1M; both backends
#   SIZES="10000 100000" BACKENDS=sqlite bash bench/growth.sh
#
# A million plugins take about 2 GiB of disk per backend under $B (removed before the
# next size), and the whole run about half an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

B=${B:-/tmp/agora-bench-growth}
SIZES=${SIZES:-10000 100000 1000000}
REQUESTS=${REQUESTS:-200}
CHARTS=${CHARTS:-docs/charts}
export BACKENDS=${BACKENDS:-sqlite postgres}
export BUILD=${BUILD:-release}
. bench/lib.sh

python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet 'matplotlib==3.11.2'
rm -rf "$B" && mkdir -p "$B"
for size in $SIZES; do
  log "growth: $size plugins"
  B=$B/run SEED=bulk COUNT=$size REQUESTS=$REQUESTS bash bench/search.sh
  cat "$B"/run/*/results/summary.tsv >>"$B/summary.tsv"
  # The next size builds nothing more and needs the disk.
  export SKIP_BUILD=1
  rm -rf "$B/run"
done
mkdir -p "$CHARTS"
cp "$B/summary.tsv" "$CHARTS/growth.tsv"
python3 bench/charts.py "$CHARTS/growth.tsv" "$CHARTS"
echo "Charts (\`python3 bench/charts.py $CHARTS/growth.tsv $CHARTS\` redraws them):"
echo
for chart in search-p99 pages-p99 rss start; do
  echo "![growth-$chart](charts/growth-$chart.svg)"
done

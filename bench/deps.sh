#!/usr/bin/env bash
# Install of a 20-plugin dependency tree: bench/dep-0 depends on dep-1 and dep-2, dep-1 on
# dep-3 and dep-4, ... (a binary tree of 20 signed releases, 64 KiB module each). Times
# `agora install bench/dep-0` into a fresh directory RUNS times: resolution, 20 signature
# checks, log proofs, downloads with digest checks and the lockfile, as a user runs it.
#
#   RUNS=5 bash bench/deps.sh            # prints a Markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-/tmp/agora-bench-deps}
RUNS=${RUNS:-5}
PORT=${PORT:-18096}
. bench/lib.sh

build_release
rm -rf "$B" && mkdir -p "$B/data" "$B/plugins"
start_agora "$B/data" "$B/agora"
cli publisher create bench >/dev/null
cli keygen --out "$B/key" >/dev/null
cli key add bench "$B/key.pub" >/dev/null

log "publishing 20 plugins"
for i in $(seq 0 19); do
  d=$B/plugins/dep-$i; mkdir -p "$d"
  deps=""
  for c in $((2 * i + 1)) $((2 * i + 2)); do
    (( c < 20 )) && deps="$deps bench/dep-$c: \"^1.0\","
  done
  printf 'api_version: agora/v1\npublisher: bench\nname: dep-%s\nversion: 1.0.0\ndescription: Dependency tree node %s\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\ndependencies: {%s}\n' \
    "$i" "$i" "${deps%,}" >"$d/plugin.yaml"
  head -c 65536 /dev/urandom >"$d/plugin.wasm"
done
# Leaves first, so every dependency exists when its dependent is published.
for i in $(seq 19 -1 0); do AGORA_SIGNING_KEY=$B/key cli publish "$B/plugins/dep-$i" >/dev/null; done

: >"$B/times"
for r in $(seq 1 "$RUNS"); do
  rm -rf "$B/install-$r"
  t0=$(date +%s.%N)
  cli install bench/dep-0 --dir "$B/install-$r" >/dev/null
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", 1000 * (b - a) }' >>"$B/times"
done
N=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['plugins']))" "$B/install-1/agora.lock")
MED=$(sort -g "$B/times" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
cat <<REPORT
### Dependency-tree install, $(date -u +%Y-%m-%dT%H:%MZ) — \`RUNS=$RUNS bash bench/deps.sh\`

| workload | median ms | min–max ms | plugins in agora.lock |
|---|---|---|---|
| \`agora install bench/dep-0\` (20 signed plugins, 64 KiB each, fresh directory) | $MED | $(sort -g "$B/times" | head -1)–$(sort -g "$B/times" | tail -1) | $N |
REPORT

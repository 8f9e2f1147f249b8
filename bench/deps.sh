#!/usr/bin/env bash
# Install of a 20-plugin dependency tree: bench/dep-0 depends on dep-1 and dep-2, dep-1 on
# dep-3 and dep-4, ... (a binary tree of 20 signed releases, 64 KiB module each). Times
# `agora install bench/dep-0` into a fresh directory RUNS times: resolution, 20 signature
# checks, log proofs, downloads with digest checks and the lockfile, as a user runs it.
# Beside it, the same tree as npm packages (bench-dep-0 ... bench-dep-19, one 64 KiB file
# each) in Verdaccio, and `npm install bench-dep-0` into a fresh directory with a fresh
# cache RUNS times: resolution, downloads, sha512 integrity checks and package-lock.json,
# and no signature or log to check. Node 22 and Verdaccio are installed once under TOOLS
# (bench/lib.sh); npm is the machine's.
#
#   RUNS=5 bash bench/deps.sh            # prints a Markdown table
#   NPM=0 bash bench/deps.sh             # Agora only
#   CLIENT=/path/to/agora bash bench/deps.sh   # time another build's `agora install`
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-/tmp/agora-bench-deps}
RUNS=${RUNS:-5}
PORT=${PORT:-18096}
VERD_PORT=${VERD_PORT:-18097}
NPM=${NPM:-1}
CLIENT=${CLIENT:-}
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

# Requests the server has answered, from its /metrics.
answered() { curl -sf "$A/metrics" | awk '/^agora_http_requests_total\{/ { n += $NF } END { printf "%d", n }'; }
: >"$B/times"
BEFORE=$(answered)
for r in $(seq 1 "$RUNS"); do
  rm -rf "$B/install-$r"
  t0=$(date +%s.%N)
  AGORA=${CLIENT:-$AGORA} cli install bench/dep-0 --dir "$B/install-$r" >/dev/null
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", 1000 * (b - a) }' >>"$B/times"
done
PER_INSTALL=$(( ($(answered) - BEFORE) / RUNS ))
N=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['plugins']))" "$B/install-1/agora.lock")
MED=$(median <"$B/times")

if [[ $NPM == 1 ]]; then
  command -v npm >/dev/null || { log "npm is missing (NPM=0 skips the comparison)"; exit 1; }
  start_verdaccio "$B/verdaccio" "$VERD_PORT" "$B/verdaccio.out"
  trap 'kill "$VERD_PID" 2>/dev/null; cleanup' EXIT
  log "publishing the same tree to Verdaccio"
  for i in $(seq 19 -1 0); do
    deps=""
    for c in $((2 * i + 1)) $((2 * i + 2)); do
      (( c < 20 )) && deps="$deps\"bench-dep-$c\": \"^1.0.0\","
    done
    deps="{${deps%,}}"
    # An npm tarball: package/package.json and the same 64 KiB file.
    python3 - "$B/plugins/dep-$i" "$i" "$deps" <<'PY'
import io, json, sys, tarfile
src, i, deps = sys.argv[1:]
pkg = json.dumps({"name": f"bench-dep-{i}", "version": "1.0.0", "description": f"Dependency tree node {i}",
                  "license": "MIT", "dependencies": json.loads(deps)}).encode()
with tarfile.open(f"{src}/npm.tgz", "w:gz") as tar:
    for name, data in [("package/package.json", pkg), ("package/plugin.wasm", open(f"{src}/plugin.wasm", "rb").read())]:
        info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
PY
    vpublish "bench-dep-$i" 1.0.0 "$B/plugins/dep-$i/npm.tgz" "$deps" >/dev/null
  done
  : >"$B/npm-times"
  for r in $(seq 1 "$RUNS"); do
    d=$B/npm-$r; rm -rf "$d" "$B/npm-cache-$r"; mkdir -p "$d"
    echo '{"name":"bench-app","version":"1.0.0","private":true}' >"$d/package.json"
    t0=$(date +%s.%N)
    (cd "$d" && npm install bench-dep-0 --registry "$V" --cache "$B/npm-cache-$r" \
      --no-audit --no-fund --no-update-notifier --loglevel=error >/dev/null)
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", 1000 * (b - a) }' >>"$B/npm-times"
  done
  NPM_N=$(find "$B/npm-1/node_modules" -maxdepth 1 -name 'bench-dep-*' | wc -l)
  NPM_MED=$(median <"$B/npm-times")
  NPM_V=$(npm --version)
fi

cat <<REPORT
### Dependency-tree install, $(date -u +%Y-%m-%dT%H:%MZ) — \`RUNS=$RUNS bash bench/deps.sh\`

| workload | median ms | min–max ms | packages installed |
|---|---|---|---|
| \`agora install bench/dep-0\` (20 signed plugins, 64 KiB each, fresh directory: signatures, log proofs, key histories, digests; $PER_INSTALL requests each) | $MED | $(sort -g "$B/times" | head -1)–$(sort -g "$B/times" | tail -1) | $N |
REPORT
if [[ $NPM == 1 ]]; then
  cat <<REPORT
| \`npm install bench-dep-0\` from Verdaccio (npm $NPM_V, the same tree, fresh directory and cache: sha512 integrity only) | $NPM_MED | $(sort -g "$B/npm-times" | head -1)–$(sort -g "$B/npm-times" | tail -1) | $NPM_N |

Agora / npm: $(awk -v a="$MED" -v n="$NPM_MED" 'BEGIN { printf "%.0f%%", 100 * a / n }') of npm's time.
REPORT
fi

#!/usr/bin/env bash
# The OCI distribution endpoints, side by side with docker-registry (the CNCF
# distribution registry, Debian's package) in one run: the same blobs in both, then, RUNS
# times round-robin, wrk on a manifest GET by digest (64 and 1 connections) and blob GETs
# of 1 MiB (16 connections) and 50 MiB (4 connections). Agora's manifest is a release's
# generated OCI artifact; the registry's the same shape, pushed.
#
#   RUNS=3 DUR=10s bash bench/oci.sh      # prints a markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
B=${B:-/tmp/agora-bench-oci}
PORT=${PORT:-18094}
REG_PORT=${REG_PORT:-18095}
command -v wrk >/dev/null && command -v docker-registry >/dev/null || {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk curl docker-registry >/dev/null
}
[[ -x $AGORA && -x $BENCH && ${SKIP_BUILD:-0} == 1 ]] || build_release
rm -rf "$B" && mkdir -p "$B/agora" "$B/registry/data" "$B/files"
R=$B

start_agora "$B/agora" "$B/agora"
log "agora up, PID $PID"
cli publisher create bench >/dev/null
cli keygen --out "$B/bench_ed25519" >/dev/null
cli key add bench "$B/bench_ed25519.pub" >/dev/null
release() { # NAME BYTES: publish bench/NAME@1.0.0 with a module of BYTES random bytes
  mkdir -p "$B/$1"
  printf 'api_version: agora/v1\npublisher: bench\nname: %s\nversion: 1.0.0\ndescription: OCI benchmark\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n' "$1" >"$B/$1/plugin.yaml"
  head -c "$2" /dev/urandom >"$B/$1/plugin.wasm"
  AGORA_SIGNING_KEY=$B/bench_ed25519 cli publish "$B/$1" >/dev/null
}
release small 4096
release mid $((1024 * 1024))
release big $((50 * 1024 * 1024))
sha() { sha256sum "$1" | cut -d' ' -f1; }
digest_of() { # the digest of an Agora release's OCI artifact
  curl -sf -D - -o /dev/null "$A/v2/bench/$1/manifests/1.0.0" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest" {print $2}'
}
A_MAN=$(digest_of small)
curl -sf "$A/v2/bench/small/manifests/$A_MAN" >"$B/files/agora_manifest.json"
[[ sha256:$(sha "$B/files/agora_manifest.json") == "$A_MAN" ]] || { log "agora manifest digest mismatch"; exit 1; }
MID=sha256:$(sha "$B/mid/plugin.wasm"); BIG=sha256:$(sha "$B/big/plugin.wasm")
cmp -s "$B/big/plugin.wasm" <(curl -sf "$A/v2/bench/big/blobs/$BIG") || { log "agora /v2/ blob differs"; exit 1; }

cat >"$B/registry/config.yml" <<CONF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: $B/registry/data }
http: { addr: 127.0.0.1:$REG_PORT }
CONF
docker-registry serve "$B/registry/config.yml" >"$B/registry.out" 2>&1 &
REG_PID=$!
trap 'kill $REG_PID 2>/dev/null; cleanup' EXIT
G=http://127.0.0.1:$REG_PORT
for _ in $(seq 200); do curl -sf -o /dev/null -m 1 "$G/v2/" && break; sleep 0.1; done
push_blob() { # FILE: a monolithic push (POST a session, PUT the bytes)
  local location
  location=$(curl -sSf -X POST -D - -o /dev/null "$G/v2/bench/plugin/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
  case $location in http*) ;; *) location=$G$location ;; esac
  case $location in *\?*) location="$location&digest=sha256:$(sha "$1")" ;; *) location="$location?digest=sha256:$(sha "$1")" ;; esac
  curl -sSf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$1" -o /dev/null "$location"
}
cp "$B/small/plugin.yaml" "$B/files/config.yaml"
for f in "$B/files/config.yaml" "$B/small/plugin.wasm" "$B/mid/plugin.wasm" "$B/big/plugin.wasm"; do push_blob "$f"; done
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.agora.release.v1","config":{"mediaType":"application/vnd.agora.plugin.manifest.v1+yaml","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.agora.plugin.file.v1","digest":"sha256:%s","size":%s}]}' \
  "$(sha "$B/files/config.yaml")" "$(stat -c %s "$B/files/config.yaml")" "$(sha "$B/small/plugin.wasm")" "$(stat -c %s "$B/small/plugin.wasm")" >"$B/files/registry_manifest.json"
curl -sSf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$B/files/registry_manifest.json" -o /dev/null "$G/v2/bench/plugin/manifests/1.0.0"
G_MAN=sha256:$(sha "$B/files/registry_manifest.json")
log "docker-registry up, PID $REG_PID"

ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
WORKLOADS=(
  "agora_manifest 2 64 $A/v2/bench/small/manifests/$A_MAN"
  "registry_manifest 2 64 $G/v2/bench/plugin/manifests/$G_MAN"
  "agora_manifest_c1 1 1 $A/v2/bench/small/manifests/$A_MAN"
  "registry_manifest_c1 1 1 $G/v2/bench/plugin/manifests/$G_MAN"
  "agora_blob1m 2 16 $A/v2/bench/mid/blobs/$MID"
  "registry_blob1m 2 16 $G/v2/bench/plugin/blobs/$MID"
  "agora_blob50m 2 4 $A/v2/bench/big/blobs/$BIG"
  "registry_blob50m 2 4 $G/v2/bench/plugin/blobs/$BIG"
)
wrk_rounds -H "$ACCEPT"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
cat <<REPORT
### OCI distribution endpoints, $(date -u +%Y-%m-%dT%H:%MZ) — \`RUNS=$RUNS DUR=$DUR bash bench/oci.sh\`

Machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg). Agora $("$AGORA" --version | cut -d' ' -f2) (release build, SQLite) against docker-registry $(docker-registry --version 2>&1 | awk '{print $NF}'), same machine, same run, the same bytes in both; medians of $RUNS runs (min–max).

| workload | Agora \`/v2/\` | docker-registry | Agora / docker-registry |
|---|---|---|---|
$(row "manifest GET by digest, 64 connections (req/s)" agora_manifest registry_manifest 3)
$(row "manifest GET by digest, 1 connection (req/s)" agora_manifest_c1 registry_manifest_c1 3)
$(row "blob GET 1 MiB, 16 connections (MiB/s)" agora_blob1m registry_blob1m 4)
$(row "blob GET 50 MiB, 4 connections (MiB/s)" agora_blob50m registry_blob50m 4)

Latency of the manifest GET at 64 connections, p50 / p99 (last run): Agora $(col agora_manifest 5 | tail -1) / $(col agora_manifest 6 | tail -1), docker-registry $(col registry_manifest 5 | tail -1) / $(col registry_manifest 6 | tail -1).
REPORT

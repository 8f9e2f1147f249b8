#!/usr/bin/env bash
# Runner benchmark: WASM cold start from the compiled cache, warm call, native start and
# warm call, OCI start under runc from cached layers and warm call, each p50/p99, on the
# example plugins built from source. Needs root (native and OCI plugins run in a
# namespace/cgroup sandbox), runc, and the wasm32-wasip2 and x86_64-unknown-linux-musl
# targets.
#
#   RUNS=200 bash bench/runner.sh        # prints a markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-200}
B=${B:-/tmp/agora-bench-runner}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
log() { echo "[runner-bench] $*" >&2; }

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >&2
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl >&2
rm -rf "$B" && mkdir -p "$B/hello-wasm" "$B/echo-native/bin"
log "building agora-bench and the example plugins (release)"
cargo build --release --quiet -p agora-bench
EX="$CARGO_TARGET_DIR/bench-examples"
cargo build --release --quiet --manifest-path examples/plugins/hello-wasm/Cargo.toml --target wasm32-wasip2 --target-dir "$EX"
cargo build --release --quiet --manifest-path examples/plugins/echo-native/Cargo.toml --target-dir "$EX"
cp examples/plugins/hello-wasm/plugin.yaml "$B/hello-wasm/"
cp "$EX/wasm32-wasip2/release/hello-wasm.wasm" "$B/hello-wasm/plugin.wasm"
cp examples/plugins/echo-native/plugin.yaml "$B/echo-native/"
cp "$EX/release/echo-native" "$B/echo-native/bin/echo-native"
# echo-native as an OCI image: a static binary alone in one layer (no base image), written
# as an image layout beside a plugin.yaml pinning it by digest.
cargo build --release --quiet --manifest-path examples/plugins/echo-native/Cargo.toml --target x86_64-unknown-linux-musl --target-dir "$EX"
mkdir -p "$B/echo-oci/root/bin" && cp "$EX/x86_64-unknown-linux-musl/release/echo-native" "$B/echo-oci/root/bin/"
tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$B/echo-oci/root" -cf "$B/echo-oci/layer.tar" bin
python3 - "$B/echo-oci" examples/plugins/echo-native/plugin.yaml <<'PY'
import hashlib, json, os, re, sys
d, yaml = sys.argv[1], open(sys.argv[2]).read()
blobs = os.path.join(d, "image/blobs/sha256"); os.makedirs(blobs, exist_ok=True)
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(os.path.join(blobs, h), "wb").write(b); return "sha256:" + h, len(b)
layer = put(open(os.path.join(d, "layer.tar"), "rb").read())
config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "65534:65534", "Entrypoint": ["/bin/echo-native"]}, "rootfs": {"type": "layers", "diff_ids": [layer[0]]}}).encode())
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer[0], "size": layer[1]}]}).encode())
open(os.path.join(d, "image/oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
open(os.path.join(d, "image/index.json"), "w").write(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest[0], "size": manifest[1]}]}))
start, end = yaml.index("runtime:"), yaml.index("entrypoints:")
open(os.path.join(d, "plugin.yaml"), "w").write(yaml[:start] + "runtime:\n  type: oci\n  image: localhost/examples/echo-native@" + manifest[0] + "\n" + yaml[end:])
PY
rm -rf "$B/echo-oci/root" "$B/echo-oci/layer.tar"

log "measuring ($RUNS runs; load average $(cut -d' ' -f1-3 /proc/loadavg))"
OUT=$(nice -n -5 "$CARGO_TARGET_DIR/release/agora-bench" runner --wasm "$B/hello-wasm" --native "$B/echo-native" --oci "$B/echo-oci" --runs "$RUNS")
echo "$OUT" >"$B/runner.json"
j() { python3 -c "import json,sys; d=json.load(open('$B/runner.json')); print('%.3f' % d['$1']['$2'])"; }
us() { python3 -c "import json,sys; d=json.load(open('$B/runner.json')); print('%.0f' % (d['$1']['$2']*1000))"; }
cat <<REPORT
### Runner, $(date -u +%Y-%m-%dT%H:%MZ) — \`RUNS=$RUNS bash bench/runner.sh\`

Machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg). wasmtime 48.0.8, release build; hello-wasm ($(stat -c %s "$B/hello-wasm/plugin.wasm") bytes) and echo-native, built from \`examples/plugins\`.

| measure | p50 | p99 | target |
|---|---|---|---|
| WASM load from the compiled cache (map + link), ms | $(j wasm_load_from_cache p50_ms) | $(j wasm_load_from_cache p99_ms) | |
| WASM cold start: load from cache + first call answered, ms | $(j wasm_cold_start_first_call p50_ms) | $(j wasm_cold_start_first_call p99_ms) | < 1 ms |
| WASM warm call (fresh instance, signed request, JSON answer), µs | $(us wasm_warm_call p50_ms) | $(us wasm_warm_call p99_ms) | < 50 µs |
| native start: fork, namespaces, cgroup, Landlock, seccomp, exec, first /healthz, ms | $(j native_start_to_ready p50_ms) | $(j native_start_to_ready p99_ms) | < 30 ms |
| native warm call (Unix socket, new connection), µs | $(us native_warm_call p50_ms) | $(us native_warm_call p99_ms) | |
| OCI cold start from cached layers: digests re-checked, runtime spec, \`runc run\`, first /healthz, ms | $(j oci_start_to_ready p50_ms) | $(j oci_start_to_ready p99_ms) | |
| OCI warm call (Unix socket, new connection), µs | $(us oci_warm_call p50_ms) | $(us oci_warm_call p99_ms) | |

Engine start and first compilation (once per process and digest): $(python3 -c "import json; print('%.0f' % json.load(open('$B/runner.json'))['wasm_engine_and_first_compile_ms'])") ms. OCI first start, layers unpacked into the root file system (once per image digest): $(python3 -c "import json; print('%.0f' % json.load(open('$B/runner.json'))['oci_first_start_with_unpack_ms'])") ms; $(runc --version | head -1).
REPORT

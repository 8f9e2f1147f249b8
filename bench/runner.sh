#!/usr/bin/env bash
# Runner benchmark: WASM cold start from the compiled cache, warm call, native start and
# warm call, each p50/p99, on the example plugins built from source. Needs root (native
# plugins run in a namespace/cgroup sandbox) and the wasm32-wasip2 target.
#
#   RUNS=200 bash bench/runner.sh        # prints a markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-200}
B=${B:-/tmp/agora-bench-runner}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
log() { echo "[runner-bench] $*" >&2; }

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >&2
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

log "measuring ($RUNS runs; load average $(cut -d' ' -f1-3 /proc/loadavg))"
OUT=$(nice -n -5 "$CARGO_TARGET_DIR/release/agora-bench" runner --wasm "$B/hello-wasm" --native "$B/echo-native" --runs "$RUNS")
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

Engine start and first compilation (once per process and digest): $(python3 -c "import json; print('%.0f' % json.load(open('$B/runner.json'))['wasm_engine_and_first_compile_ms'])") ms.
REPORT

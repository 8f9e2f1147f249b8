#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), two at a time, on a nightly
# toolchain with cargo-fuzz (both installed when missing), seeding the manifest target
# with the repository's plugin.yaml files. Prints each target's executions and coverage;
# exits non-zero when a target finds a crash (its input is in fuzz/artifacts/TARGET/).
#
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agora-fuzz-target}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/manifest
n=0
for f in $(git -C .. ls-files | grep -E '(^|/)plugin\.yaml$'); do
    cp "../$f" "corpus/manifest/seed-$n.yaml"
    n=$((n + 1))
done
cargo +nightly fuzz build -O
targets=$(cargo +nightly fuzz list)
failed=0
run() {
    local t="$1" log
    log="$(mktemp)"
    mkdir -p "corpus/$t"
    if cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
        echo "$t: $(grep -E '^#[0-9]+.*DONE' "$log" | tail -1)"
    else
        echo "$t: FOUND A CRASH; the input is in fuzz/artifacts/$t/" >&2
        grep -E 'panicked|SUMMARY|ERROR' "$log" | head -5 >&2
        return 1
    fi
}
set -- $targets
while [ $# -gt 0 ]; do
    run "$1" & a=$!
    b=""
    if [ $# -gt 1 ]; then run "$2" & b=$!; fi
    wait "$a" || failed=1
    if [ -n "$b" ]; then wait "$b" || failed=1; fi
    shift $(( $# > 1 ? 2 : 1 ))
done
exit "$failed"

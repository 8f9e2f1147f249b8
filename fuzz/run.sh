#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), two at a time, on a nightly
# toolchain with cargo-fuzz (both installed when missing). Each target starts from its
# corpus (fuzz/corpus/TARGET, or $FUZZ_CORPUS/TARGET) and its regression inputs
# (fuzz/regressions/TARGET, read only); the manifest target also from the repository's
# plugin.yaml files. Prints each target's executions, speed and coverage, and a Markdown
# table of them in fuzz/last-run.md. Builds go to $FUZZ_TARGET_DIR (default
# ~/.cache/agora-fuzz-target).
#
# Exits non-zero when a target crashes, panics, times out or runs out of memory: the input
# is left in fuzz/artifacts/TARGET/ and printed (base64) with the command that replays it.
#
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
# Its own target directory (sanitizer builds share nothing with the main one), whatever
# CARGO_TARGET_DIR the caller exported.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/agora-fuzz-target}"
corpus_root="${FUZZ_CORPUS:-corpus}"
# The bundle and OCI layer targets unpack into temporary directories: in memory if we can.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
mkdir -p "$corpus_root/manifest"
n=0
for f in $(git -C .. ls-files | grep -E '(^|/)plugin\.yaml$'); do
    cp "../$f" "$corpus_root/manifest/seed-$n.yaml"
    n=$((n + 1))
done
# Optimized, with debug assertions and overflow checks (cargo-fuzz's default; -O would
# turn them off), under AddressSanitizer.
started=$(date +%s)
cargo +nightly fuzz build
echo "fuzz build: $(($(date +%s) - started)) s"
targets=$(cargo +nightly fuzz list)
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

run() {
    local t="$1" log="$results/$1.log"
    mkdir -p "$corpus_root/$t" "artifacts/$t"
    # -timeout: one input taking 30 s is a finding (a parser must not hang).
    if cargo +nightly fuzz run "$t" "$corpus_root/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1; then
        local runs cov speed
        runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
        speed=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -1)
        cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -nE 's/.*cov: ([0-9]+).*/\1/p')
        echo "$t: ${runs:-?} executions, ${speed:-?}/s, coverage ${cov:-?} edges, no crash"
        echo "| \`$t\` | ${runs:-?} | ${speed:-?} | ${cov:-?} | 0 |" >"$results/$t.row"
    else
        echo "$t: FOUND A CRASH (log below; the input is in fuzz/artifacts/$t/)" >&2
        grep -E -A1 'panicked' "$log" | head -4 >&2
        grep -E 'SUMMARY|ERROR|Test unit written' "$log" | head -4 >&2
        local input
        input=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)
        if [ -n "$input" ] && [ -f "$input" ]; then
            echo "replay: (cd fuzz && cargo +nightly fuzz run $t $input)" >&2
            echo "once fixed, keep it as a regression: cp $input fuzz/regressions/$t/" >&2
            if [ "$(stat -c %s "$input")" -le 65536 ]; then
                echo "the input, base64 (base64 -d > input):" >&2
                base64 "$input" >&2
            fi
        fi
        echo "| \`$t\` | | | | crashed |" >"$results/$t.row"
        return 1
    fi
}

failed=0
set -- $targets
while [ $# -gt 0 ]; do
    run "$1" &
    a=$!
    b=""
    if [ $# -gt 1 ]; then
        run "$2" &
        b=$!
    fi
    wait "$a" || failed=1
    if [ -n "$b" ]; then wait "$b" || failed=1; fi
    shift $(($# > 1 ? 2 : 1))
done

{
    echo "Run of $(date -u +%Y-%m-%d), $seconds s per target, two at a time on $(nproc) cores."
    echo
    echo "| target | executions | exec/s | coverage (edges) | crashes |"
    echo "|---|---|---|---|---|"
    for t in $targets; do cat "$results/$t.row" 2>/dev/null || echo "| \`$t\` | | | | not run |"; done
} >last-run.md
exit "$failed"

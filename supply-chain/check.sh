#!/usr/bin/env bash
# The supply-chain check CI runs: cargo-deny with the policy in deny.toml over the
# workspace's Cargo.lock, without network access beyond crates.io:
#
# - licences: every crate's licence is on deny.toml's allow-list (or an exception there);
# - bans: no OpenSSL or native-tls; no `*` version requirement on a registry crate;
#   duplicate versions are listed as warnings;
# - sources: every crate comes from crates.io (no git, no other registry);
# - yanked: no crate is a release crates.io has yanked (read from crates.io today);
# - advisories: no crate matches an advisory (vulnerability, unsound, unmaintained
#   notice) of the RustSec advisory database *as of the snapshot below*, committed
#   in this directory because the database's own repository cannot be fetched here.
#   Older than MAX_AGE_DAYS, the check fails: refresh the snapshot (see README.md here).
#   Then the canary crate (canary/, a dependency on smallvec 1.6.0) must be found
#   vulnerable (RUSTSEC-2021-0003): proof that the snapshot loaded and matches.
#
# Where the network allows, `cargo deny check` runs the same policy against the live
# database (`--online` here does just that).
#
#   supply-chain/check.sh [--online]
set -euo pipefail
cd "$(dirname "$0")/.."

SNAPSHOT=supply-chain/rustsec-advisory-db.tar.xz
SNAPSHOT_COMMIT=bf5c0d245a92671908518d7e765914d437954ed6
SNAPSHOT_DATE=2026-08-21T06:28:40Z
MAX_AGE_DAYS=365
# The directory cargo-deny keeps the database of
# https://github.com/rustsec/advisory-db in (its name, then a hash of the URL).
DB_DIR=advisory-db-3157b0e258782691

command -v cargo-deny >/dev/null || cargo install cargo-deny --locked --version 0.20.2

if [ "${1:-}" = --online ]; then
    exec cargo deny check
fi

# cargo-deny reads `cargo metadata` offline: every crate of Cargo.lock (all platforms) must
# be in cargo's cache first. crates.io is reachable.
cargo fetch --locked --quiet
# Yanked releases are read from cargo's cached crates.io index entries: refresh them all
# (a resolution that writes nothing).
cargo update --dry-run --quiet
cargo fetch --locked --quiet --manifest-path supply-chain/canary/Cargo.toml

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
db="$work/dbs/$DB_DIR"
mkdir -p "$db/.git"
tar -xJf "$SNAPSHOT" -C "$db"
# cargo-deny dates a database by its last fetch: the snapshot's commit date, so its
# staleness limit counts from the day the data was taken.
printf '%s\t\tbranch '"'"'main'"'"' of https://github.com/rustsec/advisory-db\n' \
    "$SNAPSHOT_COMMIT" >"$db/.git/FETCH_HEAD"
touch -d "$SNAPSHOT_DATE" "$db/.git/FETCH_HEAD"
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$work/dbs\"\nmaximum-db-staleness = \"P${MAX_AGE_DAYS}D\"|" \
    deny.toml >"$work/deny.toml"

age=$(( ($(date +%s) - $(date -d "$SNAPSHOT_DATE" +%s)) / 86400 ))
echo "advisory data: RustSec advisory-db $SNAPSHOT_COMMIT of $SNAPSHOT_DATE ($age days old; at most $MAX_AGE_DAYS)"
if [ "$age" -gt 180 ]; then
    echo "WARNING: the advisory snapshot is $age days old; refresh it (supply-chain/README.md)" >&2
fi

deny() { cargo deny --offline --color never --config "$work/deny.toml" "$@"; }
# Duplicate versions are many and only warnings: listed without their inclusion graphs.
if ! deny check --hide-inclusion-graph --show-stats; then
    echo "the supply-chain check failed; the errors again, with what pulls each crate in:" >&2
    deny check --allow duplicate || true
    exit 1
fi

canary="$work/canary.log"
if deny --manifest-path supply-chain/canary/Cargo.toml check advisories >"$canary" 2>&1; then
    cat "$canary" >&2
    echo "the canary passed: the advisory snapshot detects nothing" >&2
    exit 1
fi
if ! grep -q RUSTSEC-2021-0003 "$canary"; then
    cat "$canary" >&2
    echo "the canary failed, but not on RUSTSEC-2021-0003" >&2
    exit 1
fi
echo "canary: smallvec 1.6.0 found vulnerable (RUSTSEC-2021-0003), as it must be"

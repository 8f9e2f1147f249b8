#!/usr/bin/env bash
# Replaces the advisory database snapshot with a newer checkout of the RustSec advisory
# database, on a machine that can clone it:
#
#   git clone --depth 1 https://github.com/rustsec/advisory-db /tmp/advisory-db
#   supply-chain/refresh-snapshot.sh /tmp/advisory-db
#
# It packs the advisories (crates/) and the database's licence files into
# rustsec-advisory-db.tar.xz, reproducibly (sorted, owned by root, dated by the commit),
# and writes the commit and its date into check.sh. Run check.sh, then commit all three.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:?usage: refresh-snapshot.sh ADVISORY_DB_CHECKOUT}"
commit="$(git -C "$src" rev-parse HEAD)"
date="$(TZ=UTC0 git -C "$src" show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
git -C "$src" archive HEAD crates LICENSE.txt LICENSES README.md | tar -x -C "$work"
tar --sort=name --mtime="$date" --owner=0 --group=0 --numeric-owner \
    -C "$work" -cJf "$here/rustsec-advisory-db.tar.xz" .
sed -i -e "s|^SNAPSHOT_COMMIT=.*|SNAPSHOT_COMMIT=$commit|" \
    -e "s|^SNAPSHOT_DATE=.*|SNAPSHOT_DATE=$date|" "$here/check.sh"
echo "snapshot: $commit of $date, $(find "$work/crates" -name '*.md' | wc -l) advisories," \
    "$(stat -c %s "$here/rustsec-advisory-db.tar.xz") bytes"

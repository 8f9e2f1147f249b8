#!/usr/bin/env bash
# Builds the Agora container image with buildah, from scratch: no base image, so nothing
# is pulled from a registry.
#
#   deploy/image/build.sh                           a static (musl) release build of agora,
#                                                   tagged localhost/agora:VERSION and :latest
#   deploy/image/build.sh --binary PATH [--tag T]   an agora binary built already; when it is
#                                                   dynamically linked, the libraries ldd
#                                                   lists and the loader go into the image
#
# --tag is repeatable (default: localhost/agora:VERSION and localhost/agora:latest).
# Needs buildah (Debian: apt-get install buildah) and, for the default build, rustup and a
# musl C compiler (apt-get install musl-tools). CARGO_TARGET_DIR is honoured. The image
# lands in the containers storage of the user running this (root's, as root): podman
# sees it at once; `buildah push TAG docker-archive:agora.tar` exports it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "error: $*" >&2
    exit 1
}

binary=""
tags=()
while [ $# -gt 0 ]; do
    case "$1" in
        --binary)
            [ $# -ge 2 ] || die "--binary needs the path of an agora executable"
            binary="$2"
            shift 2
            ;;
        --binary=*) binary="${1#*=}"; shift ;;
        --tag)
            [ $# -ge 2 ] || die "--tag needs an image name, such as localhost/agora:dev"
            tags+=("$2")
            shift 2
            ;;
        --tag=*) tags+=("${1#*=}"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see $0 --help)" ;;
    esac
done

command -v buildah >/dev/null ||
    die "buildah is not installed; install it (Debian: apt-get install buildah) and run this again"

# ---- the binary ----

if [ -z "$binary" ]; then
    target="$(uname -m)-unknown-linux-musl"
    command -v cargo >/dev/null && command -v rustup >/dev/null ||
        die "cargo and rustup are needed to build agora; install Rust (https://rustup.rs) or pass --binary PATH"
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" ||
        die "cannot add the Rust target $target (rustup target add $target); or pass --binary PATH"
    # C code in the dependency tree (SQLite, the TLS library) is compiled for musl too.
    cc_var="CC_${target//-/_}"
    if [ -z "${!cc_var:-}" ]; then
        command -v musl-gcc >/dev/null ||
            die "a static build needs a musl C compiler; install it (Debian: apt-get install musl-tools), set $cc_var to one, or pass --binary PATH"
        export "$cc_var=musl-gcc"
    fi
    echo "building a static agora for $target (a release build: many minutes)" >&2
    (cd "$root" && cargo build --release --locked --target "$target" -p agora) ||
        die "cargo build --release --target $target -p agora failed (see above)"
    binary="${CARGO_TARGET_DIR:-$root/target}/$target/release/agora"
    # `ldd` says so for a static executable, and fails on it with some libcs.
    if ldd "$binary" 2>&1 | grep -Eq '=>|ld-linux'; then
        die "$binary is dynamically linked although it was built for $target; check RUSTFLAGS (crt-static) and $cc_var"
    fi
fi

[ -f "$binary" ] && [ -x "$binary" ] || die "$binary is not an executable file; pass --binary the path of an agora executable"
version="$("$binary" --version 2>/dev/null)" ||
    die "$binary --version failed; is it an agora executable for this machine ($(uname -m))?"
case "$version" in
    "agora "*) version="${version#agora }" ;;
    *) die "$binary --version printed \"$version\"; expected \"agora VERSION\": is it the agora binary?" ;;
esac
if [ ${#tags[@]} -eq 0 ]; then
    tags=("localhost/agora:$version" "localhost/agora:latest")
fi

# ---- the root filesystem ----

work="$(mktemp -d "${TMPDIR:-/tmp}/agora-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$work/data"
cp "$binary" "$rootfs/usr/local/bin/agora"
chmod 0755 "$rootfs/usr/local/bin/agora"

# A dynamically linked binary (a debug build, say) runs from scratch with the libraries
# it was linked against and the loader, at the paths ldd shows.
libs="$(ldd "$binary" 2>/dev/null | grep -Eo '/[^ ]+' || true)"
for lib in $libs; do
    [ -e "$lib" ] || die "ldd lists $lib for $binary, but it does not exist"
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
if [ -n "$libs" ]; then
    echo "$binary is dynamically linked: its libraries and loader go into the image" >&2
fi

# CA certificates for HTTPS (an S3 endpoint, OCI registries, webhooks).
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] ||
    die "$ca is missing; install the CA certificates (Debian: apt-get install ca-certificates): the image needs them for HTTPS"
cp "$ca" "$rootfs$ca"

# The image's user, so tools that look uids up find a name.
printf 'root:x:0:0:root:/root:/sbin/nologin\nagora:x:65532:65532:agora:/data:/sbin/nologin\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nagora:x:65532:\n' >"$rootfs/etc/group"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs$ca"

# /tmp is for everyone, as usual (a tmpfs is mounted over it when the root filesystem is
# read-only); the Containerfile gives data/ (/data) to the image's user.
chmod 1777 "$rootfs/tmp"

cp "$here/Containerfile" "$work/Containerfile"

# ---- the image ----

tag_args=()
for tag in "${tags[@]}"; do
    tag_args+=(--tag "$tag")
done
buildah bud --quiet --format docker \
    --label "org.opencontainers.image.version=$version" \
    "${tag_args[@]}" --file "$work/Containerfile" "$work" >/dev/null ||
    die "buildah bud failed (see above)"
echo "built ${tags[*]} (agora $version)" >&2
printf '%s\n' "${tags[0]}"

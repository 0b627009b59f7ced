#!/usr/bin/env bash
# Builds the zerohop OCI image that deploy/ names (zerohop/zerohop:VERSION) on a machine
# with no Docker engine: Debian's mmdebstrap makes the base (bookworm minbase and
# tools/image-packages.txt), meson installs zerohop into it, umoci packs it as an OCI image
# layout. The Dockerfile builds the same image where there is a Docker engine.
#
#   tools/build-image.sh [--build-dir DIR] [--out DIR]
#     --build-dir: a configured meson build to install from (default: build-image, made
#                  here with -Dbuildtype=release --prefix=/usr)
#     --out:       where the image goes (default: build-image/oci)
#
# Then: skopeo copy oci:build-image/oci:0.1.0 docker://REGISTRY/zerohop/zerohop:0.1.0, or
# `tar -C build-image/oci -cf zerohop.tar .` and `ctr -n k8s.io images import zerohop.tar`.
# The Debian mirror is the host's (/etc/apt/sources.list.d/debian.sources if present).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

build_dir=""
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --build-dir) build_dir=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
    esac
done
version=$(sed -n "s/^  version : '\(.*\)',$/\1/p" meson.build)
[ -n "$version" ] || { echo "build-image: no version in meson.build" >&2; exit 1; }
if [ -z "$build_dir" ]; then
    build_dir=build-image
    [ -f "$build_dir/build.ninja" ] || meson setup "$build_dir" -Dbuildtype=release --prefix=/usr >/dev/null
fi
out=${out:-build-image/oci}
for tool in mmdebstrap umoci; do
    command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (tools/install-deps.sh)" >&2; exit 1; }
done
ninja -C "$build_dir" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/zerohop-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Comments and blank lines out; commas between.
packages=$(grep -v '^\s*\(#\|$\)' tools/image-packages.txt | paste -sd, -)
mirror=/etc/apt/sources.list.d/debian.sources
[ -f "$mirror" ] || mirror=http://deb.debian.org/debian
echo "build-image: base (mmdebstrap bookworm minbase)" >&2
mmdebstrap --quiet --variant=minbase --include="$packages" \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    bookworm "$work/rootfs.tar" "$mirror"

echo "build-image: zerohop $version into it (umoci)" >&2
rm -rf "$out"
mkdir -p "$(dirname "$out")"
umoci init --layout "$out"
umoci new --image "$out:$version"
umoci unpack --image "$out:$version" "$work/bundle" >/dev/null
tar -C "$work/bundle/rootfs" -xf "$work/rootfs.tar"
DESTDIR="$work/bundle/rootfs" meson install -C "$build_dir" --no-rebuild --quiet >/dev/null
# Where the build's prefix put the libraries, the loader must look.
prefix=$(meson introspect "$build_dir" --buildoptions | python3 -c \
    'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
echo "$prefix/lib/x86_64-linux-gnu" > "$work/bundle/rootfs/etc/ld.so.conf.d/zerohop.conf"
ldconfig -r "$work/bundle/rootfs"
# The Python binding where deploy/examples/python-socket-pod.yaml looks, whatever the prefix.
install -D -m 0644 examples/python/zerohop_ctypes.py "$work/bundle/rootfs/usr/share/zerohop/python/zerohop_ctypes.py"
mkdir -p "$work/bundle/rootfs/run/zerohop" "$work/bundle/rootfs/var/lib/zerohop" "$work/bundle/rootfs/csi"
umoci repack --image "$out:$version" "$work/bundle"
umoci config --image "$out:$version" \
    --config.env "PATH=$prefix/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --config.cmd zerohopd --config.cmd --config --config.cmd /etc/zerohop/zerohopd.yaml \
    --config.label "org.opencontainers.image.title=zerohop" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.description=zerohopd, zerohop-csi, zerohop-fuse, zh, libzerohop"
umoci gc --layout "$out"
echo "build-image: $out:$version ($(du -sh "$out" | cut -f1))" >&2

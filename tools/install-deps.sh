#!/usr/bin/env bash
# Installs every Debian package zerohop needs to build, test and run.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

packages=(
    build-essential pkg-config meson ninja-build python3
    clang libclang-rt-14-dev
    libabsl-dev librocksdb-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    liburing-dev libfuse3-dev fuse3 libssl-dev
    libhiredis-dev redis-server
    libibverbs-dev librdmacm-dev
    libyaml-cpp-dev
    util-linux procps
    attr git sqlite3 rsync tar fio diffutils
    nlohmann-json3-dev containernetworking-plugins iproute2 iputils-ping
    graphviz
    libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
    mmdebstrap umoci runc crun
    python3-dev pybind11-dev python3-pytest python3-pandas python3-redis
    golang-go
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

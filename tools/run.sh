#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs zerohop.
# Today that is the embedded store driven by zh-store on a store kept in $ZEROHOP_DATA
# (default ./var/store); the daemon and the FUSE mount take this place as they land.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build >/dev/null

data=${ZEROHOP_DATA:-$(pwd)/var/store}
mkdir -p "$(dirname "$data")"
build/tools/zh-store --dir "$data" demo
cat <<MSG

The store is at $data. Try:
  build/tools/zh-store --dir $data ls /demo/people
  build/tools/zh-store --dir $data kv-get /demo/people/alice
  echo hello | build/tools/zh-store --dir $data put /demo/hello && build/tools/zh-store --dir $data get /demo/hello
MSG

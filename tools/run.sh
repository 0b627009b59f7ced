#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts zerohopd on its embedded store
# and runs a short tour through zh. The daemon keeps running afterwards, ready to use.
#
# Everything lives in $ZEROHOP_DATA (default ./var): the configuration (written on first
# run: container "demo", access key "dev-key"), the store, the socket, the log, the pid.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

tools/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build >/dev/null

data=${ZEROHOP_DATA:-$top/var}
mkdir -p "$data"
data=$(cd "$data" && pwd)
config=$data/zerohopd.yaml
if [ ! -f "$config" ]; then
    cat > "$config" <<YAML
listen: $data/zerohop.sock
log_level: info
mounts:
  - {container: demo, backend: embedded, options: {dir: $data/store}}
credentials:
  - {key: dev-key, containers: {demo: rw}}
YAML
fi
export ZEROHOP_SOCKET=$data/zerohop.sock
export ZEROHOP_ACCESS_KEY=dev-key

if [ -f "$data/zerohopd.pid" ] && kill -0 "$(cat "$data/zerohopd.pid")" 2>/dev/null; then
    echo "zerohopd already running (pid $(cat "$data/zerohopd.pid"))"
else
    nohup build/daemon/zerohopd --config "$config" >>"$data/zerohopd.log" 2>&1 &
    echo $! > "$data/zerohopd.pid"
    for _ in $(seq 100); do
        [ -S "$ZEROHOP_SOCKET" ] && build/tools/zh ls / >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "zerohopd started (pid $(cat "$data/zerohopd.pid")), log in $data/zerohopd.log"
fi

build/tools/zh demo
cat <<MSG

zerohopd is serving $ZEROHOP_SOCKET. Try:
  export ZEROHOP_SOCKET=$ZEROHOP_SOCKET ZEROHOP_ACCESS_KEY=dev-key
  build/tools/zh ls /demo/people
  build/tools/zh --json kv-get /demo/people/alice
  echo hello | build/tools/zh put /demo/hello && build/tools/zh get /demo/hello
Stop it with: kill \$(cat $data/zerohopd.pid)
MSG

#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts zerohopd on its embedded store,
# mounts the namespace with zerohop-fuse at $ZEROHOP_DATA/mnt, and runs a short tour
# through zh and the mount. Both keep running afterwards, ready to use.
#
# Everything lives in $ZEROHOP_DATA (default ./var): the configuration (written on first
# run: container "demo", access key "dev-key"), the store, the socket, the mount point,
# the logs, the pids. Mounting needs root (or fusermount3 for the user) and /dev/fuse;
# without them the daemon still runs and the mount is skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

tools/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build >/dev/null

# A process that runs (a zombie does not).
alive() { [ -n "$(ps -o stat= -p "$1" 2>/dev/null | grep -v Z)" ]; }

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

if [ -f "$data/zerohopd.pid" ] && alive "$(cat "$data/zerohopd.pid")"; then
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

mnt=$data/mnt
mkdir -p "$mnt"
mounted=no
if grep -q " $mnt fuse.zerohop " /proc/self/mounts &&
   [ -f "$data/zerohop-fuse.pid" ] && alive "$(cat "$data/zerohop-fuse.pid")"; then
    echo "the namespace is already mounted at $mnt (zerohop-fuse pid $(cat "$data/zerohop-fuse.pid"))"
    mounted=yes
elif [ -c /dev/fuse ] && { [ "$(id -u)" -eq 0 ] || command -v fusermount3 >/dev/null; }; then
    # Mounted but nobody serving (zerohop-fuse was killed): the new one takes the mount over.
    nohup build/fuse/zerohop-fuse "$mnt" >>"$data/zerohop-fuse.log" 2>&1 &
    echo $! > "$data/zerohop-fuse.pid"
    for _ in $(seq 100); do
        grep -q " $mnt fuse.zerohop " /proc/self/mounts && mounted=yes && break
        sleep 0.1
    done
    if [ $mounted = yes ]; then
        echo "zerohop-fuse mounted the namespace at $mnt (pid $(cat "$data/zerohop-fuse.pid"))"
    else
        echo "zerohop-fuse did not mount $mnt: see $data/zerohop-fuse.log" >&2
    fi
else
    echo "no /dev/fuse or no permission to mount: the FUSE mount is skipped" >&2
fi
if [ $mounted = yes ]; then
    echo "hello from the mount" > "$mnt/demo/hello.txt"
    echo "\$ ls -l $mnt/demo"; ls -l "$mnt/demo"
    echo "\$ build/tools/zh get /demo/hello.txt"; build/tools/zh get /demo/hello.txt
fi

cat <<MSG

zerohopd is serving $ZEROHOP_SOCKET$( [ $mounted = yes ] && echo " and the namespace is mounted at $mnt" ). Try:
  export ZEROHOP_SOCKET=$ZEROHOP_SOCKET ZEROHOP_ACCESS_KEY=dev-key
  build/tools/zh ls /demo/people
  build/tools/zh --json kv-get /demo/people/alice
  echo hello | build/tools/zh put /demo/hello && build/tools/zh get /demo/hello
  ls $mnt/demo; cp -r docs $mnt/demo/; getfattr -d $mnt/demo/people/alice
Stop them with: fusermount3 -u $mnt; kill \$(cat $data/zerohopd.pid)
MSG

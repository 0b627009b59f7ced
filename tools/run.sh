#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts zerohopd on its embedded store,
# mounts the namespace with zerohop-fuse at $ZEROHOP_DATA/mnt, and runs a short tour
# through zh and the mount. Both keep running afterwards, ready to use.
#
# Everything lives in $ZEROHOP_DATA (default ./var): the configuration (written on first
# run: container "demo", access key "dev-key", metrics on a free port), the store, the
# socket, the mount point, the logs, the pids. Several instances run side by side, each
# with its own ZEROHOP_DATA. Mounting needs root (or fusermount3 for the user) and
# /dev/fuse; without them the daemon still runs and the mount is skipped with a message.
#
# A component is said to be started only once it answers (zerohopd: a request through its
# socket; zerohop-fuse: the mount). One that does not start is reported with the end of its
# own log, and the script exits non-zero.
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

# Prints why `what` did not start: the message, then what it logged since `from` (a byte
# offset of its log); exits 1.
failed() {  # what, log, from, why
    echo "$1 did not start: $4" >&2
    if [ -s "$2" ]; then
        echo "--- $2:" >&2
        tail -c +$(($3 + 1)) "$2" | tail -n 20 >&2
    fi
    exit 1
}
size() { if [ -f "$1" ]; then wc -c < "$1"; else echo 0; fi; }

data=${ZEROHOP_DATA:-$top/var}
mkdir -p "$data"
data=$(cd "$data" && pwd)
config=$data/zerohopd.yaml
if [ ! -f "$config" ]; then
    cat > "$config" <<YAML
listen: $data/zerohop.sock
log_level: info
metrics_port: auto   # 9464 if it is free, else any free port (zh status says which)
mounts:
  - {container: demo, backend: embedded, options: {dir: $data/store}}
credentials:
  - {key: dev-key, containers: {demo: rw}}
YAML
fi
export ZEROHOP_SOCKET=$data/zerohop.sock
export ZEROHOP_ACCESS_KEY=dev-key
zh=build/tools/zh

# ---- zerohopd ------------------------------------------------------------------------------

log=$data/zerohopd.log
if [ -f "$data/zerohopd.pid" ] && alive "$(cat "$data/zerohopd.pid")"; then
    $zh status >/dev/null 2>&1 || failed "zerohopd (pid $(cat "$data/zerohopd.pid"))" "$log" 0 \
        "it runs but does not answer on $ZEROHOP_SOCKET"
    echo "zerohopd already running (pid $(cat "$data/zerohopd.pid"))"
else
    from=$(size "$log")
    nohup build/daemon/zerohopd --config "$config" >>"$log" 2>&1 &
    pid=$!
    echo $pid > "$data/zerohopd.pid"
    answered=no
    # 30 s by the clock: a loaded machine (a test run beside it) may take a while.
    deadline=$(( $(date +%s) + 30 ))
    while [ "$(date +%s)" -lt $deadline ]; do
        alive $pid || failed zerohopd "$log" "$from" "it exited (configuration: $config)"
        if [ -S "$ZEROHOP_SOCKET" ] && $zh status >/dev/null 2>&1; then
            answered=yes
            break
        fi
        sleep 0.05
    done
    if [ $answered != yes ]; then
        kill $pid 2>/dev/null || true
        failed zerohopd "$log" "$from" "it did not answer on $ZEROHOP_SOCKET within 30 s"
    fi
    echo "zerohopd started (pid $pid), log in $log"
fi
metrics=$($zh status | sed -n 's/^metrics *//p')
echo "metrics: $metrics"

$zh demo

# ---- zerohop-fuse --------------------------------------------------------------------------

mnt=$data/mnt
mkdir -p "$mnt"
fuse_log=$data/zerohop-fuse.log
mounted=no
mount_answers() { grep -q " $mnt fuse.zerohop " /proc/self/mounts && stat "$mnt/demo" >/dev/null 2>&1; }
# Pods and users other than root use the namespace too: allow_other, with the kernel's
# permission checks (default_permissions). A user needs user_allow_other in /etc/fuse.conf.
allow_other=()
if [ "$(id -u)" -eq 0 ] || grep -qs '^user_allow_other' /etc/fuse.conf; then
    allow_other=(--allow-other)
else
    echo "the mount is for $(id -un) only: add user_allow_other to /etc/fuse.conf for others" >&2
fi
if [ -f "$data/zerohop-fuse.pid" ] && alive "$(cat "$data/zerohop-fuse.pid")" && mount_answers; then
    echo "the namespace is already mounted at $mnt (zerohop-fuse pid $(cat "$data/zerohop-fuse.pid"))"
    mounted=yes
elif [ -c /dev/fuse ] && { [ "$(id -u)" -eq 0 ] || command -v fusermount3 >/dev/null; }; then
    # Mounted but nobody serving (zerohop-fuse was killed): the new one takes the mount over.
    from=$(size "$fuse_log")
    nohup build/fuse/zerohop-fuse "${allow_other[@]}" "$mnt" >>"$fuse_log" 2>&1 &
    pid=$!
    echo $pid > "$data/zerohop-fuse.pid"
    deadline=$(( $(date +%s) + 30 ))
    while [ "$(date +%s)" -lt $deadline ]; do
        mount_answers && mounted=yes && break
        alive $pid || break
        sleep 0.05
    done
    if [ $mounted != yes ]; then
        kill $pid 2>/dev/null || true
        failed zerohop-fuse "$fuse_log" "$from" "$mnt does not answer"
    fi
    echo "zerohop-fuse mounted the namespace at $mnt (pid $pid)${allow_other:+ for every user}"
else
    echo "no /dev/fuse or no permission to mount: the FUSE mount is skipped" >&2
fi
if [ $mounted = yes ]; then
    echo "hello from the mount" > "$mnt/demo/hello.txt"
    echo "\$ ls -l $mnt/demo"; ls -l "$mnt/demo"
    echo "\$ build/tools/zh get /demo/hello.txt"; $zh get /demo/hello.txt
fi

cat <<MSG

zerohopd is serving $ZEROHOP_SOCKET$( [ $mounted = yes ] && echo " and the namespace is mounted at $mnt" ). Try:
  export ZEROHOP_SOCKET=$ZEROHOP_SOCKET ZEROHOP_ACCESS_KEY=dev-key
  build/tools/zh ls /demo/people
  build/tools/zh --json kv-get /demo/people/alice
  echo hello | build/tools/zh put /demo/hello && build/tools/zh get /demo/hello
  ls $mnt/demo; cp -r docs $mnt/demo/; getfattr -d $mnt/demo/people/alice
  build/tools/zh status     # metrics: $metrics
Stop them with: fusermount3 -u $mnt; kill \$(cat $data/zerohopd.pid)
MSG

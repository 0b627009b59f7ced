#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the debugoptimized build, the
# ASan+UBSan build (clang), the lock-free code under TSan (clang), and each libFuzzer
# target for a bounded time.
# Ends with one line "N passed, N failed[, N skipped]"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

fuzz_seconds=${ZH_FUZZ_SECONDS:-60}
# A fixed seed keeps the test command repeatable; longer runs with other seeds find more
# (ZH_FUZZ_SEED=0 asks libFuzzer for a random one).
fuzz_seed=${ZH_FUZZ_SEED:-1}
jobs=$(nproc)

build() {  # dir, then meson options
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || return 1
    fi
    ninja -C "$dir" >/dev/null || ninja -C "$dir"
}

status=0
build build -Dbuildtype=debugoptimized || status=1
CXX=clang++ build build-san -Dbuildtype=debugoptimized -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fno-sanitize-recover=all || status=1
# TSan only for code free of absl's locks: Debian's abseil is not built with TSan, so
# absl::Mutex synchronisation is invisible to it and code using it would report false races.
# The lock-free rings, the peer transport's loop and the simulated RDMA fabric (std::mutex
# and io_uring only).
tsan_tests="shmring_test peer_tcp_test sim_verbs_test peer_rdma_test"
if [ ! -f build-tsan/build.ninja ]; then
    CXX=clang++ meson setup build-tsan -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false >/dev/null \
        || status=1
fi
for t in $tsan_tests; do
    ninja -C build-tsan "tests/$t" >/dev/null || status=1
done
if [ $status -ne 0 ]; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

rm -f build/tests/*.json build-san/tests/*.json build-tsan/tests/*.json
echo "== tests (debugoptimized)"
meson test -C build --num-processes "$jobs" --print-errorlogs | grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):"
echo "== tests (ASan+UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ZH_HUGE_OBJECT_GIB=1 meson test -C build-san --num-processes "$jobs" --print-errorlogs \
    | grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):"

echo "== lock-free tests (TSan)"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 meson test -C build-tsan --no-rebuild --print-errorlogs \
    $tsan_tests | grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):"

echo "== fuzzers (${fuzz_seconds}s each)"
fuzz_results=build-san/fuzz-results.json
echo "[" > "$fuzz_results"
first=1
for target in build-san/tests/fuzz/*_fuzzer; do
    name=$(basename "$target")
    corpus=$(mktemp -d)
    seeds="$top/tests/fuzz/corpus/${name%_fuzzer}"
    [ -d "$seeds" ] || seeds=""
    # A target whose code runs threads of its own (an in-process zerohopd, zerohop-fuse's)
    # makes nearly every input's mallocs and frees differ, and libFuzzer then scans the whole
    # heap for leaks after each one: that scan was most of its time. Its leaks are still
    # found by LeakSanitizer at exit.
    leaks=""
    case "$name" in dispatch_fuzzer | fuse_request_fuzzer | csi_request_fuzzer) leaks="-detect_leaks=0" ;; esac
    # An input of the FUSE fuzzer may wait for a sync of the whole file system (its own hang
    # check allows 2 minutes for one).
    timeout=10
    [ "$name" = fuse_request_fuzzer ] && timeout=150
    if "$target" $leaks -max_total_time="$fuzz_seconds" -seed="$fuzz_seed" -timeout="$timeout" -rss_limit_mb=2048 -max_len=8192 \
        -artifact_prefix="build-san/$name-" \
        "$corpus" $seeds >"build-san/$name.log" 2>&1; then
        ok=true
        echo "   $name: $(grep -E '^Done [0-9]+ runs' "build-san/$name.log")"
    else
        ok=false
        echo "   $name: FAILED (build-san/$name.log)"
        tail -40 "build-san/$name.log"
    fi
    rm -rf "$corpus"
    [ $first -eq 1 ] || echo "," >> "$fuzz_results"
    first=0
    echo "{\"name\": \"fuzz/$name\", \"ok\": $ok}" >> "$fuzz_results"
done
echo "]" >> "$fuzz_results"

python3 tools/summarize-tests.py build build-san build-tsan "$fuzz_results"

#!/usr/bin/python3
"""zh-bench --suite python: the Python package against redis-py, in one run.

Starts its own zerohopd (embedded store, one worker) and redis-server (loopback TCP, no
persistence), then from Python: get_item of a 100-byte value from one thread (zerohop's
get_item against redis-py GET), asyncio at depth 16 (AsyncClient.get_item with 16 tasks
against redis-py pipelines of 16 GETs) and 1 MiB reads (get_view against redis-py GET of
1 MiB). Prints each with its baseline and the ratio, as zh-bench does (--json: one line each).

    tools/bench_python.py --zerohopd build/daemon/zerohopd [--duration-ms 2000] [--json]
(zh-bench --suite python runs it with the right paths.)
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_ns, q):
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


class Result:
    def __init__(self, name, ops, seconds, latencies_ns=None, bytes_per_op=0):
        self.name, self.ops_per_s, self.bytes_per_op = name, ops / seconds, bytes_per_op
        lat = sorted(latencies_ns or [0])
        self.p50, self.p99, self.p999 = percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.999)

    def as_json(self):
        d = {"ops_per_s": round(self.ops_per_s, 1), "p50_us": round(self.p50, 3), "p99_us": round(self.p99, 3),
             "p999_us": round(self.p999, 3)}
        if self.bytes_per_op:
            d["mb_per_s"] = round(self.ops_per_s * self.bytes_per_op / 1e6, 1)
        return d

    def row(self, name):
        mb = f"{self.ops_per_s * self.bytes_per_op / 1e6:9.1f} MB/s" if self.bytes_per_op else ""
        return (f"{name:<34} {self.ops_per_s:12.0f} ops/s  p50 {self.p50:9.3f} us  p99 {self.p99:9.3f} us  "
                f"p999 {self.p999:9.3f} us {mb}")


def report(ours, base, base_name, as_json):
    if as_json:
        print(json.dumps({"name": ours.name, **ours.as_json(), "baseline": {"name": base_name, **base.as_json()},
                          "ratio": round(ours.ops_per_s / base.ops_per_s, 3),
                          "p50_ratio": round(base.p50 / ours.p50, 3) if ours.p50 > 0 else None}))
        return
    print(ours.row(ours.name))
    print(base.row("  baseline: " + base_name))
    print(f"  ratio (ours / baseline throughput): {ours.ops_per_s / base.ops_per_s:.3f}"
          + (f"; p50 {base.p50 / ours.p50:.1f}x lower" if ours.p50 > 0 else ""))


def timed_loop(fn, seconds):
    """Calls fn() until `seconds` pass; each call's latency in ns."""
    lat = []
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        lat.append(t1 - t0)
        if t1 >= end:
            return lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zerohopd", required=True)
    ap.add_argument("--duration-ms", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    secs = args.duration_ms / 1000.0

    import redis  # Debian's python3-redis
    import zerohop

    root = tempfile.mkdtemp(prefix="zh-bench-py-")
    procs = []
    try:
        sock = os.path.join(root, "zh.sock")
        with open(os.path.join(root, "zerohopd.yaml"), "w") as f:
            f.write(f"listen: {sock}\nworkers: 1\nmetrics_port: 0\nlog_level: warning\nmounts:\n"
                    f"  - {{container: bench, options: {{dir: {root}/store}}}}\n"
                    "credentials:\n  - {key: bench, containers: {bench: rw}}\n")
        procs.append(subprocess.Popen([args.zerohopd, "--config", os.path.join(root, "zerohopd.yaml")]))
        port = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        for _ in range(500):
            try:
                z = zerohop.Client(sock, "bench")
                r = redis.Redis(host="127.0.0.1", port=port)
                r.ping()
                break
            except (zerohop.Unavailable, redis.ConnectionError):
                time.sleep(0.01)
        else:
            sys.exit("bench_python: zerohopd or redis-server did not come up")

        value = "v" * 100
        z.mkdir("/bench/t")
        z.put_item("/bench/t/k", {"v": value})
        r.set("k", value.encode())
        for _ in range(2000):  # warm both up
            z.get_item("/bench/t/k")
            r.get("k")

        # 1. One thread, one request at a time.
        lat = timed_loop(lambda: z.get_item("/bench/t/k"), secs)
        ours = Result("python_get_item_100b", len(lat), secs, lat)
        lat = timed_loop(lambda: r.get("k"), secs)
        report(ours, Result("", len(lat), secs, lat), "redis-py GET 100 B over loopback", args.json)

        # 2. asyncio at depth 16 against redis-py pipelines of 16.
        async def depth16():
            done = 0
            async with zerohop.AsyncClient(sock, "bench") as az:
                end = time.perf_counter() + secs

                async def worker():
                    nonlocal done
                    while time.perf_counter() < end:
                        await az.get_item("/bench/t/k")
                        done += 1

                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(16)))
                return done, time.perf_counter() - t0

        done, took = asyncio.run(depth16())
        ours = Result("python_asyncio_get_item_depth16", done, took)
        n = 0
        t0 = time.perf_counter()
        end = t0 + secs
        while time.perf_counter() < end:
            p = r.pipeline(transaction=False)
            for _ in range(16):
                p.get("k")
            p.execute()
            n += 16
        report(ours, Result("", n, time.perf_counter() - t0), "redis-py pipelined GETs (16)", args.json)

        # 3. 1 MiB reads: a zero-copy view against GET of 1 MiB.
        mib = os.urandom(1 << 20)
        z.put("/bench/mib", mib)
        r.set("mib", mib)

        def view():
            with z.get_view("/bench/mib") as v:
                memoryview(v)[-1]

        lat = timed_loop(view, secs)
        ours = Result("python_get_view_1mib", len(lat), secs, lat, 1 << 20)
        lat = timed_loop(lambda: r.get("mib"), secs)
        report(ours, Result("", len(lat), secs, lat, 1 << 20), "redis-py GET 1 MiB over loopback", args.json)
        z.close()
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

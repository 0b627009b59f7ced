#!/usr/bin/env python3
"""zh-bench --load: a workload from a file and flags, its report, its baseline, its errors.

usage: zh_bench_load_test.py ZH_BENCH   (ZEROHOPD in the environment names the daemon)
"""
import json
import os
import subprocess
import sys
import tempfile

bench = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


with tempfile.TemporaryDirectory() as tmp:
    workload = os.path.join(tmp, "mixed.load")
    with open(workload, "w") as f:
        f.write("# a read-mostly mix\nmix = get_item=70, put_item=10, update_item=5, get_object=5, put_object=5, nop=5\n"
                "value_size = 200\nkeys = 500\nthreads = 2\ndepth = 4\n")
    run = subprocess.run([bench, "--workload", workload, "--duration-ms", "300", "--json"],
                         capture_output=True, text=True, errors="replace", timeout=300)
    check(run.returncode == 0, f"the workload ran (exit {run.returncode}): {run.stderr}")
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    check(lines and "workload" in lines[0] and "threads=2" in lines[0]["workload"] and "duration_ms=300" in
          lines[0]["workload"], f"the first line describes the workload (flags over the file): {lines[:1]}")
    results = {r["name"]: r for r in lines[1:]}
    for op in ["get_item", "put_item", "update_item", "get_object", "put_object", "nop", "total"]:
        r = results.get("load_" + op)
        check(r is not None, f"a result for {op}")
        if r is None:
            continue
        check(all(k in r for k in ["ops_per_s", "p50_us", "p99_us", "p999_us"]), f"{op} has rate and percentiles")
        check(r["ops_per_s"] > 0 and 0 < r["p50_us"] <= r["p99_us"] <= r["p999_us"], f"{op} figures are sane: {r}")
        check("baseline" in r and "ratio" in r and r["baseline"]["ops_per_s"] > 0, f"{op} has its Redis baseline")

    # Flags alone, without a baseline.
    run = subprocess.run([bench, "--load", "--mix", "nop", "--duration-ms", "100", "--no-baseline", "--json"],
                         capture_output=True, text=True, errors="replace", timeout=300)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    check(run.returncode == 0 and any(r.get("name") == "load_nop" and "baseline" not in r for r in lines),
          f"--no-baseline runs ours alone: {run.stdout} {run.stderr}")

    # Bad workloads say where and what.
    bad = os.path.join(tmp, "bad.load")
    with open(bad, "w") as f:
        f.write("threads = 2\ndepht = 4\n")
    run = subprocess.run([bench, "--workload", bad], capture_output=True, text=True, errors="replace", timeout=60)
    check(run.returncode != 0 and "bad.load:2" in run.stderr and "unknown setting \"depht\"" in run.stderr,
          f"an unknown setting names its line: {run.stderr}")
    run = subprocess.run([bench, "--load", "--mix", "get_item=1,frobnicate=2"], capture_output=True, text=True, errors="replace",
                         timeout=60)
    check(run.returncode != 0 and "unknown operation \"frobnicate\"" in run.stderr,
          f"an unknown operation is named: {run.stderr}")

print(f"{'FAILED' if failures else 'OK'}: {len(failures)} failures")
sys.exit(1 if failures else 0)

#!/usr/bin/env python3
"""Counts test cases across meson builds and prints `N passed, N failed[, N skipped]`.

A gtest binary's cases come from the JSON it wrote (--gtest_output); a test without one
(or one that crashed before writing it) counts as one case with meson's verdict. A binary
whose cases all passed but that meson saw fail (a sanitizer report at exit, say) adds
one failure. Extra results (fuzzers) come from JSON lists of {"name", "ok"}.
Exit status: 1 if anything failed or nothing ran.
"""
import json
import os
import sys


def gtest_counts(path):
    with open(path) as f:
        doc = json.load(f)
    passed = failed = skipped = 0
    failures = []
    for suite in doc.get("testsuites", []):
        for case in suite.get("testsuite", []):
            if case.get("status") == "NOTRUN" or case.get("result") == "SUPPRESSED":
                continue
            if case.get("failures"):
                failed += 1
                # The first lines of each assertion's message: CI shows only the output's tail.
                why = []
                for f in case["failures"][:3]:
                    why += f.get("failure", "").splitlines()[:6]
                detail = "".join(f"\n    {line[:200]}" for line in why)
                failures.append(f'{suite["name"]}.{case["name"]}{detail}')
            elif case.get("result") == "SKIPPED":
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped, failures


def sanitizer_lines(run):
    """A sanitizer's verdict from a test's output, indented, for the summary."""
    marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY:", "WARNING: ThreadSanitizer")
    lines = [l for l in run.get("stdout", "").splitlines() if any(m in l for m in marks)]
    return "".join(f"\n    {l[:200]}" for l in lines[:4])


def main(argv):
    passed = failed = skipped = 0
    failures = []
    for arg in argv[1:]:
        if arg.endswith(".json") and os.path.isfile(arg):
            with open(arg) as f:
                for r in json.load(f):
                    if r["ok"]:
                        passed += 1
                    else:
                        failed += 1
                        failures.append(r["name"])
            continue
        log = os.path.join(arg, "meson-logs", "testlog.json")
        if not os.path.isfile(log):
            print(f"summarize: no test log in {arg}", file=sys.stderr)
            failed += 1
            failures.append(f"{arg}: tests did not run")
            continue
        with open(log) as f:
            runs = [json.loads(line) for line in f if line.strip()]
        for run in runs:
            name = f'{os.path.basename(arg)}/{run["name"]}'
            verdict = run["result"]
            out = None
            for a in run.get("command", []):
                if a.startswith("--gtest_output=json:"):
                    out = a.split(":", 1)[1]
            if out and os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(log) - 86400:
                p, fl, s, names = gtest_counts(out)
                passed, failed, skipped = passed + p, failed + fl, skipped + s
                failures += [f"{name}: {n}" for n in names]
                if verdict not in ("OK", "SKIP", "EXPECTEDFAIL") and fl == 0:
                    failed += 1
                    failures.append(f"{name}: exited with {verdict} after its cases passed{sanitizer_lines(run)}")
            elif verdict == "OK":
                passed += 1
            elif verdict == "SKIP":
                skipped += 1
            else:
                failed += 1
                failures.append(f"{name}: {verdict}{sanitizer_lines(run)}")
    for f in failures:
        print(f"FAILED: {f}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

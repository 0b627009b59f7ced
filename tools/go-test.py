#!/usr/bin/env python3
"""Runs `go test -json` in Go modules and reports their cases the way the test command
counts gtest's: given --gtest_output=json:PATH, it writes them there in gtest's JSON shape
(tools/summarize-tests.py reads it).

    go-test.py [--race] [--gtest_output=json:PATH] MODULE_DIR...

A package that fails outside any test (it does not build, a test binary crashed) is one
failed case named after the package, with the end of its output. Exit status: 0 when
every package passed."""

import json
import subprocess
import sys

import gtest_json


def run_module(module, race):
    """The cases of one module's packages: (name, failure text or None, skipped)."""
    cmd = ["go", "test", "-json", "-count=1"] + (["-race"] if race else []) + ["./..."]
    proc = subprocess.run(cmd, cwd=module, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = {}    # (package, test) -> its lines
    verdicts = {}  # (package, test) -> pass | fail | skip
    stray = []     # lines that are not events (build errors)
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            stray.append(line)
            continue
        key = (event.get("Package", ""), event.get("Test"))
        if event["Action"] == "output":
            output.setdefault(key, []).append(event.get("Output", ""))
        elif event["Action"] in ("pass", "fail", "skip"):
            verdicts[key] = event["Action"]
    cases = []
    for (package, test), verdict in verdicts.items():
        if test is None:
            failed_tests = any(p == package and t is not None and v == "fail" for (p, t), v in verdicts.items())
            if verdict == "fail" and not failed_tests:
                text = "".join(output.get((package, None), []))
                cases.append((package, text[-3000:] or "failed", False))
            continue
        text = "".join(output.get((package, test), []))[-3000:] if verdict == "fail" else None
        cases.append((f"{package.rsplit('/', 1)[-1]}.{test}", text, verdict == "skip"))
    if proc.returncode != 0 and (stray or not any(text for _, text, _ in cases)):
        # What the go command says outside the events: packages that did not build.
        cases.append((f"{module} (build)", ("\n".join(stray) or "go test failed")[-3000:], False))
    return cases


def main(argv):
    race = "--race" in argv
    out = next((a.split("=", 1)[1] for a in argv if a.startswith("--gtest_output=")), "")
    modules = [a for a in argv[1:] if not a.startswith("--")]
    cases = []
    for module in modules:
        cases += run_module(module, race)
    failed = False
    suite = []
    for name, failure, skipped in cases:
        case = {"name": name}
        if failure is not None:
            case["failures"] = [{"failure": failure}]
            failed = True
            print(f"FAILED {name}:\n{failure}")
        elif skipped:
            case["result"] = "SKIPPED"
        suite.append(case)
    print(f"{len(suite)} Go cases, {'some failed' if failed else 'all passed or skipped'}")
    gtest_json.write(out, "go", suite)
    return 1 if failed or not suite else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

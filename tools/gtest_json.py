"""Test results in gtest's JSON shape, which the test command counts
(tools/summarize-tests.py), for the runners that are not gtest: pytest (tests/python),
go test (tools/go-test.py), the chaos drivers (tests/chaos).

A case is {"name": ...}, plus "failures": [{"failure": text}] when it failed, or
"result": "SKIPPED"."""

import json


def write(output, suite, cases):
    """Writes `cases` as gtest does when `output` is "json:PATH" (its --gtest_output);
    nothing otherwise."""
    if output.startswith("json:"):
        with open(output[len("json:"):], "w") as f:
            json.dump({"testsuites": [{"name": suite, "testsuite": cases}]}, f)

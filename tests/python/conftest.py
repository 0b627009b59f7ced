"""pytest reports its cases the way the test command counts gtest's: given
--gtest_output=json:PATH, it writes the cases there in gtest's JSON shape
(tools/summarize-tests.py reads it)."""

import json

_cases = []


def pytest_addoption(parser):
    parser.addoption("--gtest_output", default="", help="json:PATH: write the cases as gtest does")


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and not report.passed):
        case = {"name": report.nodeid.split("::")[-1]}
        if report.failed:
            case["failures"] = [{"failure": str(report.longrepr)[-2000:]}]
        elif report.skipped:
            case["result"] = "SKIPPED"
        _cases.append(case)


def pytest_sessionfinish(session):
    out = session.config.getoption("--gtest_output")
    if out.startswith("json:"):
        with open(out[len("json:"):], "w") as f:
            json.dump({"testsuites": [{"name": "python", "testsuite": _cases}]}, f)

"""The fixtures of the Python tests (a real zerohopd: ZEROHOPD names the binary), and the
report of their cases the way the test command counts gtest's: given
--gtest_output=json:PATH, pytest writes the cases there in gtest's JSON shape
(tools/summarize-tests.py reads it)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import zerohop

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import gtest_json  # noqa: E402

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
    gtest_json.write(session.config.getoption("--gtest_output"), "python", _cases)


class Daemon:
    def __init__(self, root):
        self.dir = root
        self.socket = os.path.join(root, "zh.sock")
        with open(os.path.join(root, "zerohopd.yaml"), "w") as f:
            f.write(f"listen: {self.socket}\nworkers: 2\nmetrics_port: 0\nlog_level: warning\n"
                    f"mounts:\n  - {{container: demo, options: {{dir: {root}/store}}}}\n"
                    "credentials:\n  - {key: rw-key, containers: {demo: rw}}\n"
                    "  - {key: ro-key, containers: {demo: r}}\n")
        self.proc = None

    def start(self):
        # (Under ASan this interpreter has the runtime preloaded; zerohopd has its own.)
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        self.proc = subprocess.Popen([os.environ["ZEROHOPD"], "--config", os.path.join(self.dir, "zerohopd.yaml")],
                                     env=env)
        for _ in range(500):
            try:
                zerohop.Client(self.socket, "rw-key").close()
                return
            except zerohop.Unavailable:
                time.sleep(0.01)
        raise RuntimeError("zerohopd did not come up")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait()
            self.proc = None


@pytest.fixture
def daemon():
    root = tempfile.mkdtemp(prefix="zh-py-")
    d = Daemon(root)
    d.start()
    yield d
    d.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def z(daemon):
    with zerohop.Client(daemon.socket, "rw-key") as c:
        yield c

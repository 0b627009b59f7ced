#!/usr/bin/python3
"""A faulty network between zerohopd and Redis: a TCP proxy in front of a real redis-server
that delays, blackholes, resets and drops replies on command, while a client writes through
zerohopd's redis backend and records every outcome in the ledger (tools/ledger.py).

    redis_faults.py --zerohopd PATH [--gtest_output=json:PATH]

Under each fault the daemon must answer every call within its timeouts with a clear error
(nothing hangs), never acknowledge a write Redis did not take, and serve again once the
fault clears; at the end the ledger checks that every acknowledged write is in Redis and
no counter went past what the outcomes allow.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))

import gtest_json  # noqa: E402
import ledger  # noqa: E402
import zerohop  # noqa: E402

KEY = "faults-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultyProxy:
    """Forwards 127.0.0.1:port to the target; `mode` decides what happens to the bytes:
    pass, delay (each chunk waits delay_secs), blackhole (nothing moves, nothing closes),
    reset (every connection is closed, new ones too), drop_replies (requests reach Redis,
    its replies are thrown away)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.mode = "pass"
        self.delay_secs = 0.15
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode):
        self.mode = mode
        if mode == "reset":
            with self.lock:
                for c in self.conns:
                    for s in c:
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        s.close()
                self.conns = []

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            if self.mode == "reset":
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.append((client, server))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src, dst, replies):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.mode == "blackhole":
                    time.sleep(0.01)
                if self.mode == "delay":
                    time.sleep(self.delay_secs)
                if replies and self.mode == "drop_replies":
                    continue
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--zerohopd", required=True)
    ap.add_argument("--gtest_output", default="")
    args = ap.parse_args(argv[1:])
    root = tempfile.mkdtemp(prefix="zh-redis-faults-")
    procs = []
    cases = []

    def case(name, failure=None):
        c = {"name": name}
        if failure:
            c["failures"] = [{"failure": failure}]
            print(f"FAILED {name}: {failure}", file=sys.stderr)
        cases.append(c)

    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        proxy = FaultyProxy(redis_port)
        sock = os.path.join(root, "zh.sock")
        config = os.path.join(root, "zerohopd.yaml")
        with open(config, "w") as f:
            f.write(f"listen: {sock}\nworkers: 2\nmetrics_port: 0\nlog_level: error\nmounts:\n"
                    f"  - {{container: demo, backend: redis, options: {{url: \"redis://127.0.0.1:{proxy.port}\", "
                    "connect_timeout_ms: 500, command_timeout_ms: 1000, retry_window_ms: 2000}}\n"
                    f"credentials:\n  - {{key: {KEY}, containers: {{demo: rw}}}}\n")
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        daemon = subprocess.Popen([args.zerohopd, "--config", config], env=env)
        procs.append(daemon)
        z = ledger.connect(sock, KEY)
        book = ledger.Ledger(os.path.join(root, "ledger.jsonl"))
        z.mkdir("/demo/t")
        seq = [0]

        def writes(n, phase):
            """n puts and n increments; (seconds of the slowest call, outcomes)."""
            slowest, outcomes = 0.0, {}
            for _ in range(n):
                seq[0] += 1
                value = f"{phase}-{seq[0]}"
                for kind, path, call in (
                        ("put_item", f"/demo/t/k{seq[0] % 8}", lambda p, v: z.put_item(p, {"v": v})),
                        ("incr", "/demo/counter", lambda p, v: z.update_item(p, "n = if_not_exists(n, 0) + 1"))):
                    t0 = time.monotonic()
                    outcome, _ = book.run(kind, path, value, lambda: call(path, value))
                    slowest = max(slowest, time.monotonic() - t0)
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
            return slowest, outcomes

        def phase(name, mode, n, expect, max_secs):
            proxy.set(mode)
            slowest, outcomes = writes(n, name)
            proxy.set("pass")
            print(f"{name}: {outcomes}, slowest call {slowest:.2f} s")
            problems = []
            if slowest > max_secs:
                problems.append(f"a call took {slowest:.1f} s (at most {max_secs} s allowed)")
            if expect == "ack" and outcomes.get("ack", 0) != 2 * n:
                problems.append(f"expected every write acknowledged: {outcomes}")
            if expect == "errors" and outcomes.get("ack", 0) == 2 * n:
                problems.append(f"the fault hit nothing: {outcomes}")
            # Once the fault clears, the daemon serves again (within its retry window).
            deadline = time.monotonic() + 10
            while True:
                try:
                    z.put_item("/demo/t/probe", {"v": name})
                    break
                except zerohop.Error as e:
                    if time.monotonic() > deadline:
                        problems.append(f"no recovery 10 s after the fault cleared: {e}")
                        break
                    time.sleep(0.1)
            if daemon.poll() is not None:
                problems.append(f"zerohopd exited with {daemon.returncode}")
            case(f"{name}_then_recovers", "; ".join(problems) or None)

        phase("healthy", "pass", 100, "ack", 1.0)
        phase("delayed_150ms", "delay", 10, "ack", 5.0)
        phase("blackholed", "blackhole", 3, "errors", 8.0)
        phase("reset", "reset", 5, "errors", 8.0)
        phase("replies_dropped", "drop_replies", 3, "errors", 8.0)
        phase("healthy_again", "pass", 100, "ack", 1.0)
        book.close()
        verdict = ledger.check(z, [os.path.join(root, "ledger.jsonl")])
        print(verdict.summary())
        case("every_outcome_holds_in_redis", None if verdict.ok() else verdict.summary())
        z.close()
    except Exception as e:  # the run itself broke
        case("redis_faults_run", repr(e))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(root, ignore_errors=True)
    gtest_json.write(args.gtest_output, "redis_faults", cases)
    return 1 if any("failures" in c for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

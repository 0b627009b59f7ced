#!/usr/bin/python3
"""Chaos cycles of zerohopd: SIGKILL and restart it, again and again, under a mixed write
load from several client processes, then prove with the ledger (tools/ledger.py) that no
acknowledged write was lost, none was applied twice, and nothing that failed is there.

    daemon_chaos.py --zerohopd PATH [--cycles 100] [--clients 4] [--gtest_output=json:PATH]

Each client process runs ledger.write_load: it owns its objects and items and shares two
counters and a stream with the others: put_object (versions of 4 objects), append (a log),
put_item (4 items), update_item (an increment of a shared counter), put_records (a 2-shard
stream), rename (one object back and forth between two names), at random, recording each
outcome. The
daemon is killed at a random moment 60..250 ms into each cycle and started again on the
same store; the clients reconnect by themselves. After the last cycle the clients stop,
the daemon is killed once more and restarted, and the namespace is checked.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))

import gtest_json  # noqa: E402
import ledger  # noqa: E402
from soak import Daemon  # noqa: E402
import zerohop  # noqa: E402

KEY = "chaos-key"


def worker(args):
    """One client process: ledger.write_load until the stop file appears."""
    ledger.write_load(args.socket, KEY, args.worker, args.ledger, args.stop)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--zerohopd")
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gtest_output", default="")
    ap.add_argument("--worker", type=int, default=-1)
    ap.add_argument("--socket")
    ap.add_argument("--ledger")
    ap.add_argument("--stop")
    args = ap.parse_args(argv[1:])
    if args.worker >= 0:
        worker(args)
        return 0

    rng = random.Random(args.seed)
    root = tempfile.mkdtemp(prefix="zh-chaos-")
    stop = os.path.join(root, "stop")
    daemon = Daemon(args.zerohopd, root, KEY)
    cases = []
    try:
        daemon.start()
        with zerohop.Client(daemon.socket, KEY) as z:
            ledger.prepare(z, args.clients)
        ledgers = [os.path.join(root, f"ledger-{w}.jsonl") for w in range(args.clients)]
        workers = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(w),
                                     "--socket", daemon.socket, "--ledger", ledgers[w], "--stop", stop])
                   for w in range(args.clients)]
        t0 = time.perf_counter()
        for cycle in range(args.cycles):
            time.sleep(rng.uniform(0.06, 0.25))
            for p in workers:
                if p.poll() is not None:
                    raise RuntimeError(f"a client exited with {p.returncode} in cycle {cycle}")
            daemon.kill()
            daemon.start()
        chaos_secs = time.perf_counter() - t0
        open(stop, "w").close()
        for p in workers:
            if p.wait(timeout=120) != 0:
                raise RuntimeError(f"a client exited with {p.returncode}")
        daemon.kill()  # once more with nothing in flight: recovery alone
        daemon.start()
        with zerohop.Client(daemon.socket, KEY) as z:
            verdict = ledger.check(z, ledgers)
        total = sum(verdict.checked.values())
        outcomes, why_failed = {}, {}
        for e in ledger.read(ledgers):
            outcomes[e["outcome"]] = outcomes.get(e["outcome"], 0) + 1
            if e["outcome"] == "failed":
                why = f'{e["kind"]}: {e["error"][:100]}'
                why_failed[why] = why_failed.get(why, 0) + 1
        print(f"{args.cycles} SIGKILL-and-restart cycles of zerohopd in {chaos_secs:.1f} s under {args.clients} "
              f"client processes: {total} writes ({outcomes}); restart p50 "
              f"{sorted(daemon.starts)[len(daemon.starts) // 2] * 1e3:.0f} ms")
        for why, n in sorted(why_failed.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  failed x{n}: {why}")
        print(verdict.summary())
        for kind in ("put", "append", "put_item", "incr", "record", "rename"):
            case = {"name": f"{kind}_outcomes_hold_across_{args.cycles}_kills"}
            if verdict.violations.get(kind):
                case["failures"] = [{"failure": "\n".join(verdict.violations[kind][:20])}]
            elif verdict.checked[kind] == 0:
                case["failures"] = [{"failure": f"no {kind} was issued: the load did not run"}]
            cases.append(case)
        if outcomes.get("unknown", 0) == 0:
            cases.append({"name": "the_kills_hit_writes_in_flight",
                          "failures": [{"failure": "no write had an unknown outcome: the kills hit nothing"}]})
        else:
            cases.append({"name": "the_kills_hit_writes_in_flight"})
    except Exception as e:  # the run itself broke: one failed case that says how
        cases.append({"name": "chaos_run", "failures": [{"failure": repr(e)}]})
        print(f"daemon_chaos: {e!r}", file=sys.stderr)
    finally:
        open(stop, "w").close()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill(signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
    gtest_json.write(args.gtest_output, "daemon_chaos", cases)
    return 1 if any("failures" in c for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""zh-bench --soak MINUTES: a mixed load for a long time, with periodic kills of clients,
zerohop-fuse and zerohopd, reporting throughput, the daemon's RSS and descriptors over time,
and at the end the ledger's verdict.

    soak.py --minutes 30 --zerohopd build/daemon/zerohopd --fuse build/fuse/zerohop-fuse [--json]

What runs (its own zerohopd on the embedded store, in a temporary directory):
  - 4 writer processes (ledger.write_load: objects, appends, items, counters, stream
    records, renames, each outcome in a ledger), 250 writes a second each by default (the
    ledgers of a 30-minute run then hold 1.8 million writes, which the check reads back);
    one of them, at random, is SIGKILLed every 10 s and replaced by a new process that
    carries on with its own ledger;
  - zerohop-fuse mounting the namespace, under a shell that appends a numbered line to a
    file on the mount and compares a 256 KiB file, forever; zerohop-fuse is SIGKILLed
    every 60 s and a successor takes over;
  - zerohopd is SIGKILLed every 5 minutes and started again on the same store.
Every 10 s it samples the daemon's RSS and open descriptors and the writes acknowledged
since the last sample. At the end: the writers stop, the daemon is killed and restarted
once more, the ledger checks the namespace, and the mount's appended lines must be there
once each, with no error seen by the shell.
"""

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ledger  # noqa: E402
import zerohop  # noqa: E402

KEY = "soak-key"


class Daemon:
    """A zerohopd of its own on the embedded store in `root`: the container demo, one key."""

    def __init__(self, binary, root, key=KEY):
        self.binary, self.key = binary, key
        self.socket = os.path.join(root, "zh.sock")
        self.config = os.path.join(root, "zerohopd.yaml")
        with open(self.config, "w") as f:
            f.write(f"listen: {self.socket}\nworkers: 2\nmetrics_port: 0\nlog_level: error\n"
                    f"mounts:\n  - {{container: demo, options: {{dir: {root}/store}}}}\n"
                    f"credentials:\n  - {{key: {key}, containers: {{demo: rw}}}}\n")
        self.proc = None
        self.starts = []  # how long each start took until it served

    def start(self):
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # (an ASan runtime is ours)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([self.binary, "--config", self.config], env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                zerohop.Client(self.socket, self.key).close()
                self.starts.append(time.perf_counter() - t0)
                return
            except zerohop.Unavailable:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"zerohopd exited with {self.proc.returncode} while starting")
                if time.monotonic() > deadline:
                    raise RuntimeError("zerohopd did not come up in 30 s")
                time.sleep(0.005)

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait()

    def sample(self):
        """(RSS bytes, open descriptors) of the running daemon."""
        pid = self.proc.pid
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Mount:
    def __init__(self, binary, socket, mnt):
        self.binary, self.socket, self.mnt = binary, socket, mnt
        self.proc = None

    def spawn(self):
        self.proc = subprocess.Popen([self.binary, "--socket", self.socket, "--key", KEY, "--takeover-timeout", "10",
                                      self.mnt])

    def mounted(self):
        with open("/proc/mounts") as f:
            return any(line.split()[1] == self.mnt for line in f)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def unmount(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class Writers:
    """The writer processes, each with its ledgers (one per process it has been)."""

    def __init__(self, socket, root, count, rate):
        self.socket, self.root, self.stop, self.rate = socket, root, os.path.join(root, "stop"), rate
        self.counted = {}  # ledger -> (bytes read, acknowledgements in them)
        self.procs = [None] * count
        self.ledgers = [[] for _ in range(count)]
        for w in range(count):
            self.spawn(w)

    def spawn(self, w):
        path = os.path.join(self.root, f"ledger-{w}-{len(self.ledgers[w])}.jsonl")
        self.ledgers[w].append(path)
        self.procs[w] = subprocess.Popen([sys.executable, "-c",
                                          "import sys; sys.path.insert(0, sys.argv[1]); import ledger; "
                                          "ledger.write_load(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], "
                                          "sys.argv[6], float(sys.argv[7]))",
                                          os.path.dirname(os.path.abspath(__file__)), self.socket, KEY, str(w), path,
                                          self.stop, str(self.rate)])

    def kill_one(self, rng):
        w = rng.randrange(len(self.procs))
        self.procs[w].send_signal(signal.SIGKILL)
        self.procs[w].wait()
        self.spawn(w)

    def check_alive(self):
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"a writer exited by itself with {p.returncode}")

    def finish(self):
        open(self.stop, "w").close()
        for p in self.procs:
            if p.wait(timeout=120) != 0:
                raise RuntimeError(f"a writer ended with {p.returncode}")

    def files(self):
        return [path for per_worker in self.ledgers for path in per_worker]

    def acknowledged(self):
        """Writes acknowledged so far (counted in what the ledgers gained since last time)."""
        for path in self.files():
            done, n = self.counted.get(path, (0, 0))
            try:
                with open(path, "rb") as f:
                    f.seek(done)
                    more = f.read()
            except FileNotFoundError:
                continue
            more = more[:more.rfind(b"\n") + 1]  # whole lines only
            self.counted[path] = (done + len(more), n + more.count(b'"outcome": "ack"'))
        return sum(n for _, n in self.counted.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--zerohopd", required=True)
    ap.add_argument("--fuse", required=True)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--rate", type=float, default=250, help="writes a second per writer (0: unbounded)")
    ap.add_argument("--sample-secs", type=float, default=10)
    ap.add_argument("--client-kill-secs", type=float, default=10)
    ap.add_argument("--fuse-kill-secs", type=float, default=60)
    ap.add_argument("--daemon-kill-secs", type=float, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rng = random.Random(30)
    root = tempfile.mkdtemp(prefix="zh-soak-")
    mnt = os.path.join(root, "mnt")
    os.mkdir(mnt)
    daemon = Daemon(args.zerohopd, root)
    mount = None
    shell = None
    samples = []
    kills = {"client": 0, "fuse": 0, "daemon": 0}
    try:
        daemon.start()
        with ledger.connect(daemon.socket, KEY) as z:
            ledger.prepare(z, args.writers)
            z.mkdir("/demo/mount")
        writers = Writers(daemon.socket, root, args.writers, args.rate)
        mount = Mount(args.fuse, daemon.socket, mnt)
        mount.spawn()
        for _ in range(1000):
            if mount.mounted():
                break
            time.sleep(0.01)
        expected = "".join(chr(ord("a") + i % 23) for i in range(256 << 10))
        here = os.path.join(mnt, "demo", "mount")
        with open(os.path.join(here, "r"), "w") as f:
            f.write(expected)
        with open(os.path.join(root, "expected"), "w") as f:
            f.write(expected)
        shell = subprocess.Popen(
            ["sh", "-c", f"cd '{here}' && i=0; while [ ! -e '{writers.stop}' ]; do "
                         f"cmp -s r '{root}/expected' || {{ echo READ-ERROR $i; exit 1; }}; "
                         "echo $i >> w || { echo WRITE-ERROR $i; exit 1; }; i=$((i + 1)); done; echo DONE $i"],
            stdout=subprocess.PIPE, text=True)

        start = time.monotonic()
        end = start + args.minutes * 60
        next_sample = start + args.sample_secs
        next_client = start + args.client_kill_secs
        next_fuse = start + args.fuse_kill_secs
        next_daemon = start + args.daemon_kill_secs
        last_acks = 0
        last_t = start
        while time.monotonic() < end:
            time.sleep(0.1)
            now = time.monotonic()
            writers.check_alive()
            if shell.poll() is not None:
                raise RuntimeError(f"the shell on the mount stopped: {shell.stdout.read().strip()}")
            if now >= next_client:
                writers.kill_one(rng)
                kills["client"] += 1
                next_client += args.client_kill_secs
            if now >= next_fuse:
                mount.kill()
                mount.spawn()
                kills["fuse"] += 1
                next_fuse += args.fuse_kill_secs
            if now >= next_daemon:
                daemon.kill()
                daemon.start()
                kills["daemon"] += 1
                next_daemon += args.daemon_kill_secs
            if now >= next_sample:
                acks = writers.acknowledged()
                rss, fds = daemon.sample()
                samples.append({"t_secs": round(now - start), "writes_per_sec": round((acks - last_acks) / (now - last_t)),
                                "daemon_rss_mb": round(rss / 2**20, 1), "daemon_fds": fds, "kills": dict(kills)})
                if not args.json:
                    s = samples[-1]
                    print(f"{s['t_secs']:6d} s  {s['writes_per_sec']:7d} writes/s  RSS {s['daemon_rss_mb']:7.1f} MB  "
                          f"{s['daemon_fds']:4d} fds  kills so far: {kills}", flush=True)
                last_acks, last_t = acks, now
                next_sample += args.sample_secs

        writers.finish()
        out, _ = shell.communicate(timeout=60)
        daemon.kill()
        daemon.start()
        with ledger.connect(daemon.socket, KEY) as z:
            verdict = ledger.check(z, writers.files())
            lines = z.get("/demo/mount/w").decode()
        mount_ok = shell.returncode == 0 and out.startswith("DONE ")
        n = int(out.split()[1]) if mount_ok else -1
        mount_ok = mount_ok and lines == "".join(f"{i}\n" for i in range(n))
        entries = ledger.read(writers.files())
        outcomes = {}
        for e in entries:
            outcomes[e["outcome"]] = outcomes.get(e["outcome"], 0) + 1
        report = {"minutes": args.minutes, "kills": kills, "writes": outcomes, "samples": samples,
                  "ledger_ok": verdict.ok(), "mount_lines": n, "mount_ok": mount_ok}
        if args.json:
            print(json.dumps(report))
        else:
            print(f"\n{args.minutes:g} minutes: {sum(outcomes.values())} writes {outcomes}; kills {kills}")
            print(verdict.summary())
            print(f"mount: {n} appended lines, {'each once, no error' if mount_ok else 'FAILED: ' + out.strip()[:200]}")
            rss = [s["daemon_rss_mb"] for s in samples]
            fds = [s["daemon_fds"] for s in samples]
            if rss:
                print(f"daemon RSS {min(rss)}..{max(rss)} MB, descriptors {min(fds)}..{max(fds)}")
            print("soak: PASSED" if verdict.ok() and mount_ok else "soak: FAILED")
        return 0 if verdict.ok() and mount_ok else 1
    finally:
        if os.path.isdir(root):
            open(os.path.join(root, "stop"), "w").close()
        if shell is not None and shell.poll() is None:
            shell.kill()
        if mount is not None:
            mount.unmount()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill(signal.SIGTERM)
        for p in glob.glob(os.path.join(root, "*.jsonl")):
            os.unlink(p)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

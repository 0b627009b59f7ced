#!/usr/bin/python3
"""The ledger: every write a client issued and its outcome, and the check that the
namespace holds exactly what the outcomes allow.

Clients record each write as a JSON line when they issue it, and another with its outcome
(Ledger.run; a write whose client died in between counts as unknown):
  ack      the daemon acknowledged it: it must be there (or overwritten by a later write);
  failed   the daemon answered an error: it must not be there;
  unknown  no answer (the daemon died, a deadline passed): it may be there, at most once.

check(client, ledger_files) reads the namespace back and proves, per kind of write:
  put      (objects and items) the value is the last acknowledged one, or one written
           after it whose outcome is unknown; nothing that failed;
  append   every acknowledged record once, in order; unknown ones at most once; failed
           ones never; nothing else;
  incr     a counter (update expressions) equals the acknowledged increments plus at most
           the unknown ones;
  record   (stream records) every acknowledged record in its shard exactly once, unknown
           ones at most once, failed ones never, each shard's sequence numbers dense;
  rename   the object is at one of the places the outcomes allow, with its bytes.

    ledger.py --socket S --key K LEDGER...   prints the verdict; exit 1 on any violation
"""

import argparse
import collections
import json
import os
import random
import sys
import time

import zerohop

# A call whose outcome zerohop does not know: the daemon died with it in flight, or the
# caller stopped waiting.
UNKNOWN_ERRORS = (zerohop.Unavailable, zerohop.DeadlineExceeded)


class Ledger:
    """One client's ledger: a JSON line per operation, written as its outcome is known."""

    def __init__(self, path):
        self._f = open(path, "a", buffering=1)

    def record(self, kind, path, value, outcome, error=""):
        self._f.write(json.dumps({"kind": kind, "path": path, "value": value, "outcome": outcome,
                                  "error": error}) + "\n")

    def run(self, kind, path, value, call):
        """Records that the write is issued, runs call() and records its outcome; returns
        (outcome, result). A client killed in between leaves the write `issued`: unknown."""
        self.record(kind, path, value, "issued")
        try:
            result = call()
        except UNKNOWN_ERRORS as e:
            self.record(kind, path, value, "unknown", str(e))
            return "unknown", None
        except zerohop.Error as e:
            self.record(kind, path, value, "failed", str(e))
            return "failed", None
        self.record(kind, path, value, "ack")
        return "ack", result

    def close(self):
        self._f.close()


def write_load(socket, key, worker, ledger_path, stop_path, rate=0.0):
    """A client's random mixed writes, each recorded in its ledger, until stop_path exists.

    It owns /demo/w<worker>/ (made beforehand with prepare()): versions of 4 objects, appends
    to `log`, 4 items, and an object renamed back and forth between `r-a` and `r-b`; it
    shares with every client the counters /demo/counters/c0 and c1 and the stream
    /demo/events. Outcomes as Ledger.run records them. `rate`: at most this many
    writes a second (0: as fast as it can)."""
    rng = random.Random(f"{worker}-{os.getpid()}")
    book = Ledger(ledger_path)
    z = connect(socket, key)
    home = f"/demo/w{worker}"
    place = where(z, home)
    seq = 0
    start = time.monotonic()
    while not os.path.exists(stop_path):
        seq += 1
        if rate > 0:
            time.sleep(max(0.0, start + seq / rate - time.monotonic()))
        value = f"w{worker}-{os.getpid()}-{seq}"
        kind = rng.choice(["put", "append", "put_item", "incr", "record", "rename"])
        if kind == "put":
            path = f"{home}/obj-{seq % 4}"
            book.run("put", path, value, lambda: z.put(path, value))
        elif kind == "append":
            path = f"{home}/log"
            book.run("append", path, value, lambda: z.append(path, value + "\n"))
        elif kind == "put_item":
            path = f"{home}/items/i{seq % 4}"
            book.run("put_item", path, value, lambda: z.put_item(path, {"v": value}))
        elif kind == "incr":
            path = f"/demo/counters/c{worker % 2}"
            book.run("incr", path, value, lambda: z.update_item(path, "n = if_not_exists(n, 0) + 1"))
        elif kind == "record":
            path = "/demo/events"

            def put_record():
                [r] = z.put_records(path, [{"data": value, "partition_key": f"w{worker}"}])
                if r["error"]:
                    raise zerohop.Error(r["error"])
            book.run("record", path, value, put_record)
        else:
            other = f"{home}/r-b" if place.endswith("r-a") else f"{home}/r-a"
            op = {"object": f"w{worker}-renamed", "from": place, "to": other}
            book.record("rename", place, op, "issued")
            try:
                z.rename(place, other)
                book.record("rename", place, op, "ack")
                place = other
            except zerohop.Error as e:
                outcome = "unknown" if isinstance(e, UNKNOWN_ERRORS) else "failed"
                op["seen"] = place = where(z, home)
                book.record("rename", op["from"], op, outcome, str(e))
    book.close()
    z.close()


def connect(socket, key, patience=30.0):
    """A client, waiting for a daemon that may be restarting (libzerohop reconnects by
    itself once it has a session; the first one it does not wait for)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return zerohop.Client(socket, key)
        except zerohop.Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def prepare(z, workers):
    """What write_load expects to find."""
    z.mkdir("/demo/counters")
    z.create_stream("/demo/events", shards=2)
    for w in range(workers):
        z.mkdir(f"/demo/w{w}")
        z.mkdir(f"/demo/w{w}/items")
        z.put(f"/demo/w{w}/r-a", f"w{w}-renamed")
        z.put(f"/demo/w{w}/log", b"")


def where(z, home):
    """Where a client's renamed object is now (asked until the daemon answers)."""
    while True:
        try:
            for name in ("r-a", "r-b"):
                try:
                    z.stat(f"{home}/{name}")
                    return f"{home}/{name}"
                except zerohop.NotFound:
                    pass
            raise RuntimeError(f"{home}: the renamed object is at neither name")
        except UNKNOWN_ERRORS:
            time.sleep(0.05)


def read(files):
    """The writes of the ledgers, in each client's order (give the files of one client in
    the order they were written): each with its outcome, `unknown` for one issued by a
    client that was killed before it could record how it ended."""
    entries = []
    for name in files:
        issued = {}  # the write's identity -> its index in entries
        with open(name) as f:
            for line in f:
                if not line.strip():
                    continue
                e = json.loads(line)
                value = e["value"]
                if isinstance(value, dict):
                    value = {k: v for k, v in value.items() if k != "seen"}
                key = (e["kind"], e["path"], json.dumps(value, sort_keys=True))
                if e["outcome"] == "issued":
                    issued[key] = len(entries)
                    entries.append(dict(e, outcome="unknown", error="the client died before the outcome"))
                elif key in issued:
                    entries[issued.pop(key)] = e
                else:
                    entries.append(e)
    return entries


class Verdict:
    def __init__(self):
        self.checked = collections.Counter()  # kind -> operations accounted for
        self.violations = collections.defaultdict(list)  # kind -> messages

    def fail(self, kind, message):
        self.violations[kind].append(message)

    def ok(self):
        return not self.violations

    def summary(self):
        lines = []
        for kind in sorted(set(self.checked) | set(self.violations)):
            bad = self.violations.get(kind, [])
            lines.append(f"{kind}: {self.checked[kind]} operations, {len(bad)} violations")
            lines += [f"  {m}" for m in bad[:10]]
        return "\n".join(lines)


def _by(entries, kinds, key=lambda e: e["path"]):
    """The entries of these kinds, grouped by `key`, each group in the ledgers' order."""
    groups = collections.defaultdict(list)
    for e in entries:
        if e["kind"] in kinds:
            groups[key(e)].append(e)
    return groups


def _get(client, path):
    try:
        return client.get(path).decode()
    except zerohop.NotFound:
        return None


def check_puts(client, entries, verdict):
    """Objects: the value is the last acknowledged, or a later unknown one."""
    for (kind, path), ops in _by(entries, ("put", "put_item"), lambda e: (e["kind"], e["path"])).items():
        verdict.checked[kind] += len(ops)
        last_ack = max((i for i, op in enumerate(ops) if op["outcome"] == "ack"), default=-1)
        allowed = {ops[last_ack]["value"]} if last_ack >= 0 else {None}
        allowed |= {op["value"] for op in ops[last_ack + 1:] if op["outcome"] == "unknown"}
        if kind == "put":
            got = _get(client, path)
        else:
            try:
                got = client.get_item(path, ["v"]).get("v")
            except zerohop.NotFound:
                got = None
        if got not in allowed:
            failed = {op["value"] for op in ops if op["outcome"] == "failed"}
            why = "a write that failed" if got in failed else "no write that could be there"
            verdict.fail(kind, f"{path} holds {got!r}: {why} (allowed: {sorted(map(str, allowed))[:4]})")


def _once_each(kind, where, ops, found, verdict):
    """Records (appends, stream records): acknowledged once, unknown at most once, failed
    never, nothing unissued; `found` in the order the store keeps them."""
    outcome = {op["value"]: op["outcome"] for op in ops}
    counts = collections.Counter(found)
    for value, n in counts.items():
        if value not in outcome:
            verdict.fail(kind, f"{where}: {value!r} was never written")
        elif outcome[value] == "failed":
            verdict.fail(kind, f"{where}: {value!r} is there, but its write failed")
        elif n > 1:
            verdict.fail(kind, f"{where}: {value!r} is there {n} times ({outcome[value]})")
    for value, out in outcome.items():
        if out == "ack" and counts[value] == 0:
            verdict.fail(kind, f"{where}: acknowledged {value!r} is missing")


def check_appends(client, entries, verdict):
    for path, ops in _by(entries, ("append",)).items():
        verdict.checked["append"] += len(ops)
        text = _get(client, path) or ""
        found = [line for line in text.split("\n") if line]
        _once_each("append", path, ops, found, verdict)
        # One writer per object: what is there keeps the writer's order.
        order = {op["value"]: i for i, op in enumerate(ops)}
        positions = [order[v] for v in found if v in order]
        if positions != sorted(positions):
            verdict.fail("append", f"{path}: the appends are out of order")


def check_counters(client, entries, verdict):
    by_path = collections.defaultdict(collections.Counter)
    for e in entries:
        if e["kind"] == "incr":
            by_path[e["path"]][e["outcome"]] += 1
    for path, outcomes in by_path.items():
        verdict.checked["incr"] += sum(outcomes.values())
        try:
            n = client.get_item(path, ["n"]).get("n", 0)
        except zerohop.NotFound:
            n = 0
        low, high = outcomes["ack"], outcomes["ack"] + outcomes["unknown"]
        if not low <= n <= high:
            verdict.fail("incr", f"{path}: n = {n}, the outcomes allow {low}..{high} "
                                 f"({outcomes['ack']} acknowledged, {outcomes['unknown']} unknown, "
                                 f"{outcomes['failed']} failed)")


def check_records(client, entries, verdict):
    for stream, ops in _by(entries, ("record",)).items():
        verdict.checked["record"] += len(ops)
        found = []
        shards = client.describe_stream(stream)["shard_count"]
        for shard in range(shards):
            sequences = []
            for r in client.get_records(stream, client.seek(stream, shard=shard)):
                found.append(r["data"].decode())
                sequences.append(r["sequence"])
            if sequences and sequences != list(range(sequences[0], sequences[0] + len(sequences))):
                verdict.fail("record", f"{stream} shard {shard}: sequence numbers are not dense")
        _once_each("record", stream, ops, found, verdict)


def check_renames(client, entries, verdict):
    """An object renamed back and forth between two names: it is at a name the outcomes
    allow, once, with its bytes."""
    for obj, ops in _by(entries, ("rename",), lambda e: e["value"]["object"]).items():
        verdict.checked["rename"] += len(ops)
        places = {ops[0]["value"]["from"]}
        for op in ops:
            src, dst = op["value"]["from"], op["value"]["to"]
            if op["outcome"] == "ack":
                places = {dst}
            elif op["outcome"] == "unknown":
                places = places | {dst if p == src else p for p in places}
            if op["value"].get("seen"):  # where the client found it after a rename not acknowledged
                places = {op["value"]["seen"]}
        names = {ops[0]["value"]["from"], ops[0]["value"]["to"]}
        present = {p for p in names if _get(client, p) is not None}
        if len(present) != 1:
            verdict.fail("rename", f"{obj}: found at {sorted(present)}, not at exactly one name")
        elif not present <= places:
            verdict.fail("rename", f"{obj}: at {present.pop()}, the outcomes allow {sorted(places)}")
        elif _get(client, present.pop()) != obj:
            verdict.fail("rename", f"{obj}: the bytes changed")


def check(client, files):
    entries = read(files)
    verdict = Verdict()
    for fn in (check_puts, check_appends, check_counters, check_records, check_renames):
        fn(client, entries, verdict)
    return verdict


def main():
    ap = argparse.ArgumentParser(description="Checks ledgers against the namespace.")
    ap.add_argument("--socket", default=None)
    ap.add_argument("--key", default=None)
    ap.add_argument("ledgers", nargs="+")
    args = ap.parse_args()
    with zerohop.Client(args.socket, args.key) as client:
        verdict = check(client, args.ledgers)
    print(verdict.summary())
    print("ledger: every outcome holds" if verdict.ok() else "ledger: VIOLATIONS")
    return 0 if verdict.ok() else 1


if __name__ == "__main__":
    sys.exit(main())

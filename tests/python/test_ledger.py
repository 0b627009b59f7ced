"""The ledger checker (tools/ledger.py) catches each kind of violation: it is what the chaos
cycles rely on, so it must fail when the namespace breaks a promise."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import ledger  # noqa: E402


def write(tmp_path, entries):
    path = tmp_path / "ledger.jsonl"
    with open(path, "w") as f:
        for kind, p, value, outcome in entries:
            f.write(json.dumps({"kind": kind, "path": p, "value": value, "outcome": outcome, "error": ""}) + "\n")
    return [str(path)]


def test_a_namespace_that_keeps_every_promise_passes(z, tmp_path):
    z.put("/demo/o", "v2")
    z.put("/demo/log", "a\nc\n")
    z.update_item("/demo/n", "n = if_not_exists(n, 0) + 1")
    z.update_item("/demo/n", "n = n + 1")
    entries = [("put", "/demo/o", "v1", "ack"), ("put", "/demo/o", "v2", "unknown"), ("put", "/demo/o", "v3", "failed"),
               ("append", "/demo/log", "a", "ack"), ("append", "/demo/log", "b", "unknown"),
               ("append", "/demo/log", "c", "ack"),
               ("incr", "/demo/n", "1", "ack"), ("incr", "/demo/n", "2", "unknown"), ("incr", "/demo/n", "3", "unknown")]
    verdict = ledger.check(z, write(tmp_path, entries))
    assert verdict.ok(), verdict.summary()
    assert verdict.checked["put"] == 3 and verdict.checked["append"] == 3 and verdict.checked["incr"] == 3


@pytest.mark.parametrize("setup, entries, kind, says", [
    # an acknowledged put lost (an older value is there)
    (lambda z: z.put("/demo/o", "v1"), [("put", "/demo/o", "v1", "ack"), ("put", "/demo/o", "v2", "ack")],
     "put", "no write that could be there"),
    # a failed put visible
    (lambda z: z.put("/demo/o", "v2"), [("put", "/demo/o", "v1", "ack"), ("put", "/demo/o", "v2", "failed")],
     "put", "a write that failed"),
    # an acknowledged append missing
    (lambda z: z.put("/demo/log", "a\n"), [("append", "/demo/log", "a", "ack"), ("append", "/demo/log", "b", "ack")],
     "append", "acknowledged 'b' is missing"),
    # an append applied twice
    (lambda z: z.put("/demo/log", "a\na\n"), [("append", "/demo/log", "a", "unknown")],
     "append", "there 2 times"),
    # appends out of order
    (lambda z: z.put("/demo/log", "b\na\n"), [("append", "/demo/log", "a", "ack"), ("append", "/demo/log", "b", "ack")],
     "append", "out of order"),
    # a counter above its acknowledged and unknown increments
    (lambda z: z.put_item("/demo/n", {"n": 3}), [("incr", "/demo/n", "1", "ack"), ("incr", "/demo/n", "2", "unknown")],
     "incr", "allow 1..2"),
    # a stream record twice
    (lambda z: (z.create_stream("/demo/ev"), z.put_records("/demo/ev", [b"r1", b"r1"])),
     [("record", "/demo/ev", "r1", "ack")], "record", "there 2 times"),
    # a renamed object at neither name
    (lambda z: None, [("rename", "/demo/r-a", {"object": "x", "from": "/demo/r-a", "to": "/demo/r-b"}, "ack")],
     "rename", "not at exactly one name"),
])
def test_each_broken_promise_is_reported(z, tmp_path, setup, entries, kind, says):
    setup(z)
    verdict = ledger.check(z, write(tmp_path, entries))
    assert not verdict.ok()
    assert any(says in m for m in verdict.violations[kind]), verdict.summary()

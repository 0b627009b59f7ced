"""The Python package against a real zerohopd (ZEROHOPD names the binary; meson sets it and
PYTHONPATH). Every operation, the zero-copy view's lifetime, errors, threads, pandas, and a
daemon restart during use."""

import asyncio
import datetime
import os
import signal
import subprocess
import sys
import threading

import pytest

import zerohop


def test_objects_round_trip_with_ranges_appends_and_renames(z):
    info = z.put("/demo/o", b"hello world", attributes={"kind": "greeting"})
    assert info["size"] == 11 and info["type"] == "object"
    assert z.get("/demo/o") == b"hello world"
    assert z.get("/demo/o", offset=6) == b"world"
    assert z.get("/demo/o", offset=0, length=5) == b"hello"
    z.put("/demo/s", "text is utf-8")
    assert z.get("/demo/s") == b"text is utf-8"
    z.put("/demo/b", bytearray(b"\x00\x01\x02") + memoryview(b"\x03"))
    assert z.get("/demo/b") == b"\x00\x01\x02\x03"
    assert z.append("/demo/o", b"!")["size"] == 12
    assert z.write_at("/demo/o", 0, b"J")["size"] == 12
    assert z.get("/demo/o") == b"Jello world!"
    assert z.truncate("/demo/o", 5)["size"] == 5
    z.rename("/demo/o", "/demo/p")
    assert z.get("/demo/p") == b"Jello"
    with pytest.raises(zerohop.AlreadyExists):
        z.rename("/demo/s", "/demo/p", replace=False)
    z.mkdir("/demo/d")
    z.put("/demo/d/x", b"1")
    assert [e["name"] for e in z.list("/demo/d")] == ["x"]
    assert sorted(e["name"] for e in z.list("/demo", prefix="d")) == ["d"]
    z.delete("/demo/d/x")
    z.rmdir("/demo/d")
    assert z.stat("/demo/p")["size"] == 5
    assert "demo" in z.list_containers()
    big = os.urandom(3 << 20)  # streams through the client region in chunks
    z.put("/demo/big", big)
    assert z.get("/demo/big") == big


def test_a_view_reads_shared_memory_in_place_and_is_never_read_after_release(z):
    z.put("/demo/v", b"x" * 100000)
    with z.get_view("/demo/v") as v:
        m = memoryview(v)
        assert m.readonly and len(m) == 100000 and m[:3] == b"xxx"
        assert v.info["size"] == 100000
        m.release()
    assert v.released
    with pytest.raises(ValueError):
        memoryview(v)
    with pytest.raises(ValueError):
        len(v)
    # A memoryview alive at release keeps the memory until it goes: reading it is safe.
    v = z.get_view("/demo/v", offset=10, length=5)
    m = memoryview(v)
    v.release()
    assert bytes(m) == b"xxxxx"
    m.release()
    # Views left to the garbage collector give their memory back too.
    for _ in range(2000):
        z.get_view("/demo/v")
    assert z.get("/demo/v") == b"x" * 100000


def test_items_map_every_value_type_both_ways(z):
    when = datetime.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
    attrs = {"i": -5, "f": 2.5, "s": "x", "b": b"\x00\xff", "t": True, "when": when, "ints": [1, 2, 3],
             "floats": [0.5, 1.5]}
    z.mkdir("/demo/users")
    z.put_item("/demo/users/alice", attrs)
    got = z.get_item("/demo/users/alice")
    assert got["__name"] == "alice"
    for k, v in attrs.items():
        assert got[k] == v and type(got[k]) is type(v), k
    assert set(z.get_item("/demo/users/alice", ["i", "s"])) == {"__name", "i", "s"}
    z.update_item("/demo/users/alice", "SET i = i + 10")
    assert z.get_item("/demo/users/alice")["i"] == 5
    with pytest.raises(zerohop.ConditionFailed) as e:
        z.update_item("/demo/users/alice", "SET i = 0", condition="i > 100")
    assert isinstance(e.value, zerohop.FailedPrecondition) and e.value.code == "failed_precondition"
    with pytest.raises(zerohop.ConditionFailed):
        z.put_item("/demo/users/alice", {"i": 1}, condition="NOT exists(__name)")
    with pytest.raises(TypeError):
        z.put_item("/demo/users/bad", {"x": object()})
    with pytest.raises(TypeError):
        z.put_item("/demo/users/bad", {"x": [1, "two"]})
    z.delete_item("/demo/users/alice")
    with pytest.raises(zerohop.NotFound) as e:
        z.get_item("/demo/users/alice")
    assert "alice" in str(e.value)


def test_scans_page_filter_project_segment_and_make_dataframes(z):
    z.mkdir("/demo/t")
    z.put_items("/demo/t", [(f"k{i:03}", {"n": i, "even": i % 2 == 0}) for i in range(250)])
    assert len(list(z.scan("/demo/t", page_size=7))) == 250
    odd = list(z.scan("/demo/t", filter="even == false AND n < 20", attributes=["n"]))
    assert sorted(i["n"] for i in odd) == list(range(1, 20, 2))
    assert all(set(i) == {"__name", "n"} for i in odd)
    seen = []
    for seg in range(3):
        seen += [i["__name"] for i in z.scan("/demo/t", segment=seg, total_segments=3)]
    assert sorted(seen) == [f"k{i:03}" for i in range(250)]
    pandas = pytest.importorskip("pandas")
    frame = z.scan("/demo/t", filter="n < 10").to_pandas()
    assert list(frame.sort_index()["n"]) == list(range(10))
    z.mkdir("/demo/u")
    df = pandas.DataFrame({"name": ["a", "b"], "score": [1.5, 2.5], "count": [3, 4]})
    assert z.put_items("/demo/u", df, key="name") == 2
    assert z.get_item("/demo/u/b") == {"__name": "b", "score": 2.5, "count": 4}


def test_streams_take_records_and_give_them_back_in_order(z):
    z.create_stream("/demo/events", shards=2)
    assert z.describe_stream("/demo/events")["shard_count"] == 2
    results = z.put_records("/demo/events", [b"a", {"data": b"b", "shard": 1}, {"data": "c", "shard": 1,
                                                                                 "partition_key": "p"}])
    assert all(r["error"] is None for r in results)
    assert [r["shard"] for r in results[1:]] == [1, 1]
    records = list(z.get_records("/demo/events", z.seek("/demo/events", shard=1), limit=1))
    assert [r["data"] for r in records][-2:] == [b"b", b"c"]
    assert [r["sequence"] for r in records] == sorted(r["sequence"] for r in records)
    assert records[-1]["partition_key"] == "p"
    latest = z.seek("/demo/events", shard=1, type="latest")
    assert list(z.get_records("/demo/events", latest)) == []
    with pytest.raises(ValueError):
        z.seek("/demo/events", type="sideways")


def test_errors_are_one_hierarchy_with_the_daemons_message(daemon, z):
    with pytest.raises(zerohop.NotFound) as e:
        z.get("/demo/nope")
    assert isinstance(e.value, zerohop.Error) and isinstance(e.value, LookupError)
    assert "/demo/nope" in str(e.value) and e.value.code == "not_found"
    with pytest.raises(zerohop.InvalidArgument):
        z.get("relative/path")
    with pytest.raises(zerohop.InvalidArgument):
        z.update_item("/demo/x", "SET = 1")
    with zerohop.Client(daemon.socket, "ro-key") as ro:
        with pytest.raises(zerohop.PermissionDenied):
            ro.put("/demo/x", b"no")
    with pytest.raises(zerohop.PermissionDenied):
        zerohop.Client(daemon.socket, "no-such-key")
    with pytest.raises(zerohop.Unavailable):
        zerohop.Client(os.path.join(daemon.dir, "absent.sock"), "rw-key")
    z.close()
    with pytest.raises(ValueError):
        z.stat("/demo")


def test_threads_share_one_client_and_run_at_once(z):
    z.mkdir("/demo/c")
    z.put_item("/demo/c/n", {"n": 0})
    errors = []

    def work(t):
        try:
            for i in range(200):
                z.update_item("/demo/c/n", "SET n = n + 1")
                z.put(f"/demo/c/t{t}-{i % 5}", b"%d" % i)
        except Exception as e:  # noqa: BLE001 (the test reports it)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert z.get_item("/demo/c/n")["n"] == 1600


def test_a_daemon_restart_during_use_is_survived(daemon, z):
    z.put("/demo/r", b"before")
    daemon.stop(signal.SIGKILL)
    daemon.start()
    assert z.get("/demo/r") == b"before"  # the client reconnects by itself
    assert z.reconnects >= 1
    z.put("/demo/r", b"after")
    assert z.get("/demo/r") == b"after"


def test_asyncio_runs_many_requests_at_once_on_one_session(daemon):
    async def main():
        async with zerohop.AsyncClient(daemon.socket, "rw-key") as z:
            await asyncio.gather(*(z.put_item(f"/demo/cars-{i}", {"speed": i}) for i in range(200)))
            items = await asyncio.gather(*(z.get_item(f"/demo/cars-{i}") for i in range(200)))
            assert [it["speed"] for it in items] == list(range(200))
            await asyncio.gather(*(z.update_item("/demo/cars-0", "SET speed = speed + 1") for _ in range(100)))
            assert (await z.get_item("/demo/cars-0"))["speed"] == 100
            with pytest.raises(zerohop.NotFound):
                await z.get_item("/demo/none")
            with pytest.raises(zerohop.ConditionFailed):
                await z.update_item("/demo/cars-1", "SET speed = 0", condition="speed > 5")
            assert (await z.put("/demo/blob", b"abc"))["size"] == 3
            assert await z.get("/demo/blob") == b"abc"
            await z.delete("/demo/blob")
            with pytest.raises(zerohop.NotFound):
                await z.stat("/demo/blob")
            # Scans and stream reads as async iterators.
            names = [item["__name"] async for item in z.scan("/demo", filter="speed >= 190", page_size=3)]
            assert sorted(names) == [f"cars-{i}" for i in range(190, 200)]
            sync = zerohop.Client(daemon.socket, "rw-key")
            sync.create_stream("/demo/ev")
            await z.put_records("/demo/ev", [b"one", b"two"])
            start = sync.seek("/demo/ev")
            assert [r["data"] async for r in z.get_records("/demo/ev", start, limit=1)] == [b"one", b"two"]
            sync.close()
            # A cancelled call's late answer is dropped, not an error.
            task = asyncio.ensure_future(z.get_item("/demo/cars-3"))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await z.get_item("/demo/cars-3"))["speed"] == 3

    asyncio.run(main())


def test_a_put_buffer_is_filled_in_place_and_consumed_by_the_put(z):
    with z.put_buffer(1 << 20) as buf:
        assert buf.capacity == 1 << 20
        with memoryview(buf) as m:
            m[:5] = b"hello"
            m[5:11] = b" world"
        assert z.put("/demo/pb", buf, size=11, attributes={"k": 1})["size"] == 11
        assert buf.released
        with pytest.raises(ValueError):
            memoryview(buf)
    assert z.get("/demo/pb") == b"hello world"
    # A put while a memoryview of the buffer is alive would hand the daemon memory Python
    # still writes: refused, and the buffer stays usable.
    buf = z.put_buffer(16)
    m = memoryview(buf)
    m[:3] = b"abc"
    with pytest.raises(BufferError):
        z.put("/demo/pb", buf, size=3)
    m.release()
    z.put("/demo/pb", buf, size=3)
    assert z.get("/demo/pb") == b"abc"
    with pytest.raises(ValueError):
        z.put("/demo/pb", buf, size=3)  # consumed
    with pytest.raises(zerohop.InvalidArgument):
        z.put_buffer(1 << 30)  # more than half the region
    # Released unused: its room goes back (far more than the region holds in all).
    for _ in range(100):
        z.put_buffer(1 << 20).release()
    # size with ordinary bytes: the first `size` of them.
    assert z.put("/demo/pb", b"abcdef", size=2)["size"] == 2


def test_every_operation_has_an_async_form(daemon):
    async def main():
        async with zerohop.AsyncClient(daemon.socket, "rw-key") as z:
            assert await z.list_containers() == ["demo"]
            await z.mkdir("/demo/d", 0o750)
            assert (await z.stat("/demo/d"))["type"] == "directory"
            await asyncio.gather(*(z.put(f"/demo/d/f{i}", bytes([i])) for i in range(5)))
            assert [e["name"] async for e in z.list("/demo/d", page_size=2)] == [f"f{i}" for i in range(5)]
            await z.rename("/demo/d/f0", "/demo/d/g0")
            with pytest.raises(zerohop.AlreadyExists):
                await z.rename("/demo/d/f1", "/demo/d/g0", replace=False)
            assert (await z.append("/demo/d/g0", b"bc"))["size"] == 3
            assert (await z.write_at("/demo/d/g0", 1, b"B"))["size"] == 3
            assert (await z.truncate("/demo/d/g0", 2))["size"] == 2
            with await z.get_view("/demo/d/g0") as v:
                assert bytes(memoryview(v)) == b"\x00B"
            assert v.released
            for name in ["g0", "f1", "f2", "f3", "f4"]:
                await z.delete(f"/demo/d/{name}")
            await z.rmdir("/demo/d")
            with pytest.raises(zerohop.NotFound):
                await z.stat("/demo/d")
            await z.mkdir("/demo/t")
            assert await z.put_items("/demo/t", [(f"k{i}", {"n": i}) for i in range(10)]) == 10
            assert sorted([it["n"] async for it in z.scan("/demo/t", filter="n >= 5")]) == [5, 6, 7, 8, 9]
            await z.create_stream("/demo/ev", shards=2, retention_secs=3600)
            assert await z.describe_stream("/demo/ev") == {"shard_count": 2, "retention_secs": 3600}
            results = await z.put_records("/demo/ev", [b"a", {"data": b"b", "shard": 1}, {"data": b"c", "shard": 7}])
            assert results[1]["shard"] == 1 and results[0]["error"] is None and results[2]["error"]
            start = await z.seek("/demo/ev", shard=1)
            assert [r["data"] async for r in z.get_records("/demo/ev", start)][-1] == b"b"
            await z.delete_stream("/demo/ev")
            with pytest.raises(zerohop.NotFound):
                await z.describe_stream("/demo/ev")
            with pytest.raises(zerohop.InvalidArgument):
                await z.stat("relative")  # refused before anything is sent
            assert not z._pending

    asyncio.run(main())


def test_help_reads_like_documentation():
    assert "shared memory" in zerohop.__doc__
    assert "ZEROHOP_SOCKET" in zerohop.Client.__doc__
    assert "zero copy" in zerohop.Client.get_view.__doc__.lower() or "no copy" in zerohop.Client.get_view.__doc__


EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python")


@pytest.mark.parametrize("example, args, says", [
    ("connected_cars.py", ["--events", "300", "--concurrency", "16"], "every event counted once (300 trips)"),
    ("pandas_scan.py", ["--rows", "3000"], "drivers most often over 80 km/h"),
])
def test_the_examples_run_and_check_their_own_results(daemon, example, args, says):
    env = dict(os.environ, ZEROHOP_SOCKET=daemon.socket, ZEROHOP_ACCESS_KEY="rw-key")
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, example)] + args, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert says in out.stdout

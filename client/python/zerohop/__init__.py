"""zerohop: objects, items and streams on this node's zerohopd, over shared memory.

    import zerohop
    z = zerohop.Client()                      # $ZEROHOP_SOCKET, else /run/zerohop/zerohop.sock
    z.put("/demo/hello", b"hi")
    with z.get_view("/demo/hello") as v:      # zero copy: the bytes in shared memory
        print(bytes(memoryview(v)))
    z.put_item("/demo/users/alice", {"age": 31, "tags": [1, 2]})
    z.update_item("/demo/users/alice", "SET age = age + 1", condition="age < 100")
    for item in z.scan("/demo/users", filter="age > 30"):
        print(item["__name"], item["age"])

Every call waits for the daemon without holding the GIL: threads share one client. Errors
are exceptions of one hierarchy (zerohop.Error): NotFound, AlreadyExists, ConditionFailed,
PermissionDenied, InvalidArgument, FailedPrecondition, ResourceExhausted, Unavailable, ...
each carrying the daemon's message.

Values map both ways: bool, int (64-bit), float, str, bytes (any buffer in), datetime
(naive ones are taken as UTC; out: aware, UTC), lists of int and lists of float.
"""

import asyncio
import os
import time as _time

from . import _zerohop
from ._zerohop import ObjectView, PutBuffer

__all__ = [
    "Client", "AsyncClient", "ObjectView", "PutBuffer", "Error", "NotFound", "AlreadyExists", "ConditionFailed", "PermissionDenied",
    "InvalidArgument", "FailedPrecondition", "ResourceExhausted", "Unavailable", "DeadlineExceeded",
    "Unimplemented", "DataLoss", "Internal",
]


class Error(Exception):
    """A zerohop error: str(e) is the daemon's message, e.code its status code name."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        self.code = _CODE_NAMES.get(code, "unknown")


class NotFound(Error, LookupError):
    """The path (or a parent of it) does not exist."""


class AlreadyExists(Error):
    """Something is already there (mkdir, rename without replacing, a create)."""


class FailedPrecondition(Error):
    """The entry's type or state does not allow it (a directory not empty, say)."""


class ConditionFailed(FailedPrecondition):
    """A condition expression was false: nothing was changed."""


class PermissionDenied(Error, PermissionError):
    """The access key lacks the right for this container."""


class InvalidArgument(Error, ValueError):
    """A bad path, expression (with its position) or value."""


class ResourceExhausted(Error):
    """Disk full, a quota, the in-flight limit."""


class Unavailable(Error):
    """zerohopd is not there (or restarted with the call in flight): try again."""


class DeadlineExceeded(Error, TimeoutError):
    pass


class Unimplemented(Error):
    pass


class DataLoss(Error):
    pass


class Internal(Error):
    pass


_CODE_NAMES = {code: name for name, code in _zerohop.STATUS_CODES.items()}
_CLASSES = {
    "not_found": NotFound, "already_exists": AlreadyExists, "failed_precondition": FailedPrecondition,
    "permission_denied": PermissionDenied, "invalid_argument": InvalidArgument,
    "resource_exhausted": ResourceExhausted, "unavailable": Unavailable,
    "deadline_exceeded": DeadlineExceeded, "unimplemented": Unimplemented, "data_loss": DataLoss,
    "internal": Internal,
}
_error_classes = {code: _CLASSES.get(name, Error) for name, code in _zerohop.STATUS_CODES.items()}
_error_classes["condition_failed"] = ConditionFailed
_zerohop._set_error_classes(_error_classes)


def _default_socket():
    return os.environ.get("ZEROHOP_SOCKET", "")


class Client:
    """A session with this node's zerohopd. Thread-safe; close() (or `with`) ends it.

    Client() finds the daemon as libzerohop does: $ZEROHOP_SOCKET, else
    /run/zerohop/zerohop.sock (where a CSI volume with publish: socket puts its pod's
    socket, scoped to the volume: no key needed); the key is
    $ZEROHOP_ACCESS_KEY unless given (a volume's socket needs none).
    """

    def __init__(self, socket=None, key=None):
        self._c = _zerohop._Client(socket if socket is not None else _default_socket(),
                                   key if key is not None else os.environ.get("ZEROHOP_ACCESS_KEY", ""))

    def close(self):
        """Ends the session. Views from it stay readable until released."""
        self._c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def session_id(self):
        return self._c.session_id

    @property
    def reconnects(self):
        """How many times the client reconnected to a restarted zerohopd."""
        return self._c.reconnects

    # ---- namespace ----------------------------------------------------------------------

    def list_containers(self):
        """The containers this key can read."""
        return self._c.list_containers()

    def stat(self, path):
        """The entry's info: a dict with type, id, size, mode, uid, gid, mtime, ctime."""
        return self._c.stat(path)

    def list(self, path, prefix="", with_attributes=False, page_size=1000):
        """The entries of a directory, as an iterator of info dicts (with "name")."""
        marker = ""
        while True:
            entries, marker = self._c.list(path, prefix, marker, page_size, with_attributes)
            yield from entries
            if marker is None:
                return

    def mkdir(self, path, mode=0o755):
        return self._c.mkdir(path, mode)

    def rmdir(self, path):
        self._c.rmdir(path)

    def rename(self, src, dst, replace=True):
        """Moves an entry (a directory with all below it); replace=False: AlreadyExists."""
        self._c.rename(src, dst, not replace)

    def delete(self, path, condition=""):
        """Removes an object or item (if `condition` holds): delete_item too."""
        self._c.delete(path, condition)

    delete_item = delete

    # ---- objects ------------------------------------------------------------------------

    def get(self, path, offset=0, length=None):
        """The object's bytes (a copy), or a range of them."""
        return self._c.get(path, offset, -1 if length is None else length)

    def get_view(self, path, offset=0, length=None):
        """The object's bytes in place in shared memory (an ObjectView: no copy).

        Use it as a context manager, or call release(): until then the daemon keeps the
        memory for it. At most half the session's result region per view; read larger
        objects in ranges (or with get()).
        """
        return self._c.get_view(path, offset, -1 if length is None else length)

    def put(self, path, data, attributes=None, condition="", mode=None, size=None):
        """Replaces (or creates) the object with `data` (bytes, str or any buffer), of any
        size (large ones stream through shared memory).

        `data` may be a PutBuffer (put_buffer()): then its first `size` bytes (default: all)
        go without a copy, and the put consumes it. The replace is atomic; `condition` is
        checked against the object replaced. Returns the new info.
        """
        if isinstance(data, PutBuffer):
            return self._c.put_from_buffer(path, data, size, attributes, condition, mode)
        if size is not None:
            data = memoryview(data)[:size]
        return self._c.put(path, data, attributes, condition, mode)

    def put_buffer(self, capacity):
        """Room for a put's bytes in shared memory (a PutBuffer), filled in place:

            with z.put_buffer(1 << 20) as buf:
                n = f.readinto(buf)              # or memoryview(buf)[...] = ...
                z.put("/demo/blob", buf, size=n)  # no copy of the bytes

        At most half the session's request region.
        """
        return self._c.put_buffer(capacity)

    def append(self, path, data):
        return self._c.append(path, data)

    def write_at(self, path, offset, data):
        return self._c.write_at(path, offset, data)

    def truncate(self, path, size):
        return self._c.truncate(path, size)

    # ---- items --------------------------------------------------------------------------

    def get_item(self, path, attributes=()):
        """The item's attributes (all, or those named), with "__name"."""
        return self._c.get_item(path, list(attributes))

    def put_item(self, path, attributes, condition=""):
        """Replaces all of the item's attributes (creates it); `condition` must hold."""
        return self._c.put_item(path, attributes, condition)

    def update_item(self, path, update, condition="", else_update=""):
        """Runs an update expression ("SET n = n + 1, tags = list_append(tags, [3])")."""
        return self._c.update_item(path, update, condition, else_update)

    def put_items(self, table, rows, key=None):
        """Puts many items at once: `rows` is a list of (name, attributes) pairs, or a
        pandas DataFrame (its index, or the column `key`, names the items). Each item is
        atomic on its own; errors are raised together (zerohop.Error listing them)."""
        pairs = _rows_of(rows, key)
        return _put_items_result(pairs, self._c.put_items([(f"{table}/{name}", attrs) for name, attrs in pairs]))

    def scan(self, table, filter="", attributes=(), segment=0, total_segments=1, page_size=1000):
        """The items of a table matching `filter`, page by page (a Scan: iterate it, or
        call to_pandas())."""
        return Scan(self._c, table, filter, list(attributes), segment, total_segments, page_size)

    # ---- streams ------------------------------------------------------------------------

    def create_stream(self, path, shards=1, retention_secs=24 * 3600):
        return self._c.create_stream(path, shards, retention_secs)

    def describe_stream(self, path):
        """{"shard_count", "retention_secs"}."""
        return self._c.describe_stream(path)

    def delete_stream(self, path):
        self._c.delete_stream(path)

    def put_records(self, path, records):
        """Appends records: each bytes, or a dict with data and optionally shard,
        partition_key, client_info. Returns, per record, a dict of its shard, sequence and
        error (None, or the message of why this record was not put)."""
        return self._c.put_records(path, _records_of(records))

    def seek(self, path, shard=0, type="earliest", sequence=0, time=None):
        """A location (an opaque str) in one shard: earliest, latest, sequence or time."""
        return self._c.seek(path, shard, type, sequence, time)

    def get_records(self, path, location, limit=1000, follow=False, poll_interval=0.05):
        """The records from `location` on, as an iterator of dicts (shard, sequence,
        arrival, data, partition_key, client_info). It ends at the end of the shard, unless
        `follow`: then it waits for more (sleeping poll_interval between empty reads)."""
        while True:
            records, location, behind = self._c.get_records(path, location, limit)
            yield from records
            if not records:
                if not follow:
                    return
                _time.sleep(poll_interval)


class AsyncClient:
    """The same session for asyncio: every call is a coroutine.

        z = zerohop.AsyncClient()
        a, b = await asyncio.gather(z.get_item("/demo/cars/1"), z.get_item("/demo/cars/2"))

    Requests go out at once (many in flight on one session). Their completions are queued
    by the client without touching Python and announced on a descriptor the event loop
    watches (add_reader): the loop takes them in batches on its own thread. No thread per
    request, no thread contending for the GIL, and the loop never blocks. One event loop
    at a time per client; close() (or `async with`) ends the session.
    """

    def __init__(self, socket=None, key=None):
        self._c = _zerohop._Client(socket if socket is not None else _default_socket(),
                                   key if key is not None else os.environ.get("ZEROHOP_ACCESS_KEY", ""))
        self._fd = self._c.async_fd()
        self._loop = None
        self._pending = {}
        self._token = 0
        self._spinning = False

    def close(self):
        self._unwatch()
        self._c.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        return False

    def _unwatch(self):
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._loop = None

    def _call(self, method, *args):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._unwatch()
            loop.add_reader(self._fd, self._drain)
            self._loop = loop
        self._token += 1
        token = self._token
        future = loop.create_future()
        self._pending[token] = future
        try:
            method(*args, token)
        except BaseException:
            del self._pending[token]  # (a bad argument: nothing was sent)
            raise
        if not self._spinning:
            self._spinning = True
            loop.call_soon(self._spin, _time.perf_counter() + self.SPIN_SECONDS)
        return future

    # How long the loop polls for answers itself after sending, between its other work,
    # before it leaves them to the descriptor: the daemon answers in microseconds, a
    # wake-up through the descriptor costs tens of them.
    SPIN_SECONDS = 100e-6

    def _spin(self, until):
        self._deliver(self._c.poll())
        if self._pending and _time.perf_counter() < until and self._loop is not None:
            self._loop.call_soon(self._spin, until)
        else:
            self._spinning = False

    def _drain(self):
        self._deliver(self._c.drain())

    def _deliver(self, completions):
        for token, error, value in completions:
            future = self._pending.pop(token, None)
            if future is None or future.cancelled():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    # Every operation of Client, as a coroutine (see Client for each one's documentation).

    async def list_containers(self):
        return await self._call(self._c.list_containers)

    async def stat(self, path):
        return await self._call(self._c.stat, path)

    async def list(self, path, prefix="", with_attributes=False, page_size=1000):
        """The entries of a directory, as an async iterator (a page per request)."""
        marker = ""
        while True:
            entries, marker = await self._call(self._c.list, path, prefix, marker, page_size, with_attributes)
            for entry in entries:
                yield entry
            if marker is None:
                return

    async def mkdir(self, path, mode=0o755):
        return await self._call(self._c.mkdir, path, mode)

    async def rmdir(self, path):
        await self._call(self._c.rmdir, path)

    async def rename(self, src, dst, replace=True):
        await self._call(self._c.rename, src, dst, not replace)

    async def delete(self, path, condition=""):
        await self._call(self._c.delete, path, condition)

    delete_item = delete

    async def get(self, path, offset=0, length=None):
        """The object's bytes (at most half the session's result region per call)."""
        return await self._call(self._c.get, path, offset, -1 if length is None else length)

    async def get_view(self, path, offset=0, length=None):
        """An ObjectView: the bytes in place in shared memory (release it, or `with`)."""
        return await self._call(self._c.get_view, path, offset, -1 if length is None else length)

    async def put(self, path, data, attributes=None, condition="", mode=None):
        """Replaces the object (at most half the session's request region: larger puts,
        and puts from a PutBuffer, go through Client.put)."""
        return await self._call(self._c.put, path, data, attributes, condition, mode)

    async def append(self, path, data):
        return await self._call(self._c.append, path, data)

    async def write_at(self, path, offset, data):
        return await self._call(self._c.write_at, path, offset, data)

    async def truncate(self, path, size):
        return await self._call(self._c.truncate, path, size)

    async def get_item(self, path, attributes=()):
        return await self._call(self._c.get_item, path, list(attributes))

    async def put_item(self, path, attributes, condition=""):
        return await self._call(self._c.put_item, path, attributes, condition)

    async def update_item(self, path, update, condition="", else_update=""):
        return await self._call(self._c.update_item, path, update, condition, else_update)

    async def put_items(self, table, rows, key=None):
        pairs = _rows_of(rows, key)
        errors = await self._call(self._c.put_items, [(f"{table}/{name}", attrs) for name, attrs in pairs])
        return _put_items_result(pairs, errors)

    async def scan(self, table, filter="", attributes=(), segment=0, total_segments=1, page_size=1000):
        """The items of a table matching `filter`, as an async iterator (a page per request)."""
        marker = ""
        while True:
            items, marker = await self._call(self._c.scan_page, table, filter, list(attributes), marker,
                                             page_size, segment, total_segments)
            for item in items:
                yield item
            if marker is None:
                return

    async def create_stream(self, path, shards=1, retention_secs=24 * 3600):
        return await self._call(self._c.create_stream, path, shards, retention_secs)

    async def describe_stream(self, path):
        return await self._call(self._c.describe_stream, path)

    async def delete_stream(self, path):
        await self._call(self._c.delete_stream, path)

    async def put_records(self, path, records):
        return await self._call(self._c.put_records, path, _records_of(records))

    async def seek(self, path, shard=0, type="earliest", sequence=0, time=None):
        return await self._call(self._c.seek, path, shard, type, sequence, time)

    async def get_records(self, path, location, limit=1000, follow=False, poll_interval=0.05):
        """The records from `location` (from seek) on, as an async iterator. It ends at the
        end of the shard, unless `follow`: then it waits for more (asyncio.sleep between
        empty reads)."""
        while True:
            records, location, behind = await self._call(self._c.get_records, path, location, limit)
            for record in records:
                yield record
            if not records:
                if not follow:
                    return
                await asyncio.sleep(poll_interval)


class Scan:
    """The items of a scan, fetched a page at a time as you iterate."""

    def __init__(self, c, table, filter, attributes, segment, total_segments, page_size):
        self._args = (c, table, filter, attributes, segment, total_segments, page_size)

    def pages(self):
        c, table, filter, attributes, segment, total, limit = self._args
        marker = ""
        while True:
            items, marker = c.scan_page(table, filter, attributes, marker, limit, segment, total)
            yield items
            if marker is None:
                return

    def __iter__(self):
        for page in self.pages():
            yield from page

    def to_pandas(self):
        """A pandas DataFrame of the items, indexed by name (needs python3-pandas). Its
        columns are the attributes asked for, in that order, or else every attribute
        found, in name order (an item without one has NaN/None there)."""
        import pandas
        rows = list(self)
        asked = [a for a in self._args[3] if a not in ("__name", "*", "**")]
        columns = asked or sorted({k for r in rows for k in r} - {"__name"})
        frame = pandas.DataFrame.from_records(rows, columns=["__name"] + columns)
        return frame.set_index("__name")


def _put_items_result(pairs, errors):
    """How many items were put; or Error naming the first that were not."""
    failed = [(pairs[i][0], e) for i, e in enumerate(errors) if e is not None]
    if failed:
        raise Error(f"{len(failed)} of {len(pairs)} items failed: " +
                    "; ".join(f"{name}: {msg}" for name, (code, msg) in failed[:5]))
    return len(pairs)


def _records_of(records):
    return [r if isinstance(r, dict) else {"data": r} for r in records]


def _rows_of(rows, key):
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        frame = rows.set_index(key) if key is not None else rows
        out = []
        for name, row in frame.iterrows():
            out.append((str(name), {k: _plain(v) for k, v in row.items() if not _missing(v)}))
        return out
    return [(str(name), attrs) for name, attrs in rows]


def _plain(v):
    """numpy scalars and pandas timestamps as the Python values zerohop maps."""
    if hasattr(v, "to_pydatetime"):
        return v.to_pydatetime()
    if hasattr(v, "item") and not isinstance(v, (bytes, bytearray, memoryview)):
        return v.item()
    return v


def _missing(v):
    try:
        return v != v  # NaN, NaT
    except Exception:
        return False

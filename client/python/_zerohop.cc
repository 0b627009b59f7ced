// zerohop for Python: the extension module `zerohop._zerohop` over libzerohop's public API.
// The package (zerohop/__init__.py) re-exports it with the exception classes; this file
// only converts. Every call releases the GIL while libzerohop waits for the daemon, so
// threads run their calls at once on one shared session (libzerohop is thread-safe).
//
// Values both ways: bool, int, float, str, bytes (and any buffer), datetime (timezone
// aware: a Timestamp; naive ones are taken as UTC), and lists of int or of float.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "zerohop/client.h"
#include "zerohop/status.h"

namespace py = pybind11;

namespace zerohop::python {
namespace {

// ---- errors --------------------------------------------------------------------------

// Set by the package at import: zerohop.Error's subclass for each absl code.
py::dict& ErrorClasses() {
    static py::dict* classes = new py::dict();
    return *classes;
}

// The exception for `s`: zerohop.Error's subclass for its code, carrying its message.
py::object ErrorObject(const absl::Status& s) {
    py::dict& classes = ErrorClasses();
    py::object code = py::int_(static_cast<int>(s.code()));
    py::object cls = IsConditionFailed(s) && classes.contains("condition_failed") ? py::object(classes["condition_failed"])
                     : classes.contains(code)                                    ? py::object(classes[code])
                                                                                  : py::object(py::module_::import("builtins").attr("RuntimeError"));
    return cls(std::string(s.message()), static_cast<int>(s.code()));
}

[[noreturn]] void Raise(const absl::Status& s) {
    py::object e = ErrorObject(s);
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(e.ptr())), e.ptr());
    throw py::error_already_set();
}

template <typename T>
T Take(absl::StatusOr<T> r) {
    if (!r.ok()) {
        Raise(r.status());
    }
    return std::move(*r);
}

void Check(const absl::Status& s) {
    if (!s.ok()) {
        Raise(s);
    }
}

Path ToPath(const std::string& s) {
    auto p = Path::Parse(s);
    if (!p.ok()) {
        Raise(p.status());
    }
    return *p;
}

// ---- values --------------------------------------------------------------------------

// datetime.datetime and datetime.timezone.utc, held for the life of the process (never
// released: static py::objects would be released after the interpreter is gone).
py::handle g_datetime, g_timezone_utc;

py::object FromTimestamp(Timestamp t) {
    py::object epoch = g_datetime.attr("fromtimestamp")(0, g_timezone_utc);
    py::object delta = py::module_::import("datetime").attr("timedelta")(
        py::arg("seconds") = t.secs, py::arg("microseconds") = t.nsecs / 1000);
    return epoch + delta;
}

Timestamp ToTimestamp(const py::handle& dt) {
    py::object aware = dt.attr("tzinfo").is_none() ? py::object(dt.attr("replace")(py::arg("tzinfo") = g_timezone_utc))
                                                   : py::reinterpret_borrow<py::object>(dt);
    py::object epoch = g_datetime.attr("fromtimestamp")(0, g_timezone_utc);
    py::object delta = aware - epoch;
    int64_t days = delta.attr("days").cast<int64_t>();
    int64_t secs = delta.attr("seconds").cast<int64_t>();
    int64_t micros = delta.attr("microseconds").cast<int64_t>();
    return Timestamp{days * 86400 + secs, static_cast<int32_t>(micros * 1000)};
}

py::object FromValue(const Value& v) {
    switch (v.type()) {
        case ValueType::kBool: return py::bool_(v.as_bool());
        case ValueType::kInt64: return py::int_(v.as_int64());
        case ValueType::kDouble: return py::float_(v.as_double());
        case ValueType::kString: return py::str(v.as_string());
        case ValueType::kBlob: return py::bytes(v.as_blob());
        case ValueType::kTimestamp: return FromTimestamp(v.as_timestamp());
        case ValueType::kInt64Array: return py::cast(v.as_int64_array());
        case ValueType::kDoubleArray: return py::cast(v.as_double_array());
    }
    return py::none();
}

Value ToValue(const std::string& name, const py::handle& o) {
    // bool before int: True is an int in Python.
    if (py::isinstance<py::bool_>(o)) {
        return Value::Bool(o.cast<bool>());
    }
    if (py::isinstance<py::int_>(o)) {
        return Value::Int64(o.cast<int64_t>());
    }
    if (py::isinstance<py::float_>(o)) {
        return Value::Double(o.cast<double>());
    }
    if (py::isinstance<py::str>(o)) {
        return Value::String(o.cast<std::string>());
    }
    if (py::isinstance(o, g_datetime)) {
        return Value::Time(ToTimestamp(o));
    }
    if (PyObject_CheckBuffer(o.ptr())) {
        py::buffer_info b = py::reinterpret_borrow<py::buffer>(o).request();
        return Value::Blob(std::string(static_cast<const char*>(b.ptr), static_cast<size_t>(b.size * b.itemsize)));
    }
    if (py::isinstance<py::list>(o) || py::isinstance<py::tuple>(o)) {
        py::sequence seq = py::reinterpret_borrow<py::sequence>(o);
        bool all_int = true;
        for (py::handle e : seq) {
            if (py::isinstance<py::bool_>(e) || !(py::isinstance<py::int_>(e) || py::isinstance<py::float_>(e))) {
                throw py::type_error("attribute " + name + ": a list must hold only int or only float");
            }
            all_int &= py::isinstance<py::int_>(e);
        }
        if (all_int) {
            return Value::Int64Array(seq.cast<std::vector<int64_t>>());
        }
        return Value::DoubleArray(seq.cast<std::vector<double>>());
    }
    throw py::type_error("attribute " + name + ": " + std::string(py::str(py::type::handle_of(o).attr("__name__"))) +
                         " is not a zerohop value (bool, int, float, str, bytes, datetime, list of int or float)");
}

AttributeMap ToAttributes(const py::dict& d) {
    AttributeMap out;
    for (auto [k, v] : d) {
        std::string name = py::str(k);
        out.emplace(name, ToValue(name, v));
    }
    return out;
}

py::dict FromAttributes(const AttributeMap& m) {
    py::dict d;
    for (const auto& [k, v] : m) {
        d[py::str(k)] = FromValue(v);
    }
    return d;
}

py::dict FromInfo(const ObjectInfo& i) {
    py::dict d;
    d["type"] = std::string(ObjectTypeName(i.type));
    d["id"] = i.id;
    d["size"] = i.size;
    d["mode"] = i.mode;
    d["uid"] = i.uid;
    d["gid"] = i.gid;
    d["mtime"] = FromTimestamp(i.mtime);
    d["ctime"] = FromTimestamp(i.ctime);
    d["atime"] = FromTimestamp(i.atime);
    if (i.type == ObjectType::kShard) {
        d["last_sequence"] = i.last_sequence;
    }
    if (i.type == ObjectType::kSymlink) {
        d["target"] = i.symlink_target;
    }
    if (i.type == ObjectType::kDirectory) {
        d["subdirs"] = i.subdirs;  // directories and streams in it
    }
    if (i.type == ObjectType::kSpecial) {
        d["special"] = i.special;  // S_IFIFO, S_IFCHR, S_IFBLK or S_IFSOCK (stat.S_IFMT of it)
        d["rdev"] = i.rdev;
    }
    return d;
}

py::dict FromItem(const Item& item) {
    py::dict d = FromAttributes(item.attributes);
    d["__name"] = item.name;
    return d;
}

py::dict FromRecord(const StreamRecord& r) {
    py::dict d;
    d["shard"] = r.shard;
    d["sequence"] = r.sequence;
    d["arrival"] = FromTimestamp(r.arrival);
    d["data"] = py::bytes(r.data);
    d["partition_key"] = r.partition_key;
    d["client_info"] = r.client_info;
    return d;
}

// A scan page: (items, next marker or None at the end).
py::tuple FromPage(const GetItemsResult& r) {
    py::list items;
    for (const Item& i : r.items) {
        items.append(FromItem(i));
    }
    return py::make_tuple(items, r.done ? py::object(py::none()) : py::object(py::str(r.next_marker)));
}

py::list FromRecords(const std::vector<StreamRecord>& rs) {
    py::list records;
    for (const StreamRecord& rec : rs) {
        records.append(FromRecord(rec));
    }
    return records;
}

std::string BytesOf(const py::handle& o) {
    if (py::isinstance<py::str>(o)) {
        return o.cast<std::string>();
    }
    py::buffer_info b = py::reinterpret_borrow<py::buffer>(o).request();
    return std::string(static_cast<const char*>(b.ptr), static_cast<size_t>(b.size * b.itemsize));
}

// ---- the zero-copy view --------------------------------------------------------------

// The bytes of a get in the daemon's shared region. memoryview(view) reads them in place
// (a read-only buffer); release() (or the end of a `with`) hands the region back: at once
// when no memoryview of it is alive, else when the last one is released. Any use of a
// released view raises ValueError; a memoryview made before stays readable until it goes.
class View {
public:
    explicit View(ObjectView v) : view_(std::make_unique<ObjectView>(std::move(v))) {}

    const ObjectView& Get() const {
        if (released_) {
            throw py::value_error("the view was released");
        }
        return *view_;
    }
    void Release() {
        released_ = true;
        if (exports_ == 0) {
            view_.reset();
        }
    }
    bool released() const { return released_; }

    // The buffer protocol, by hand: pybind11's has no hook at a buffer's release.
    static int GetBuffer(PyObject* self, Py_buffer* out, int flags) {
        View& v = py::cast<View&>(py::handle(self));
        if (v.released_) {
            PyErr_SetString(PyExc_ValueError, "the view was released");
            return -1;
        }
        std::string_view data = v.view_->data();
        if (PyBuffer_FillInfo(out, self, const_cast<char*>(data.data()), static_cast<Py_ssize_t>(data.size()),
                              /*readonly=*/1, flags) != 0) {
            return -1;
        }
        ++v.exports_;
        return 0;
    }
    static void ReleaseBuffer(PyObject* self, Py_buffer*) {
        View& v = py::cast<View&>(py::handle(self));
        if (--v.exports_ == 0 && v.released_) {
            v.view_.reset();
        }
    }

private:
    std::unique_ptr<ObjectView> view_;
    int exports_ = 0;  // memoryviews alive
    bool released_ = false;
};

// Room for a put's bytes in the client's shared region (Client.put_buffer), writable in
// place through the buffer protocol. A put takes it (Take) only when no memoryview of it
// is alive: the memory is the daemon's to read from then, and freed after the put.
class Buffer {
public:
    explicit Buffer(PutBuffer b) : buffer_(std::make_unique<PutBuffer>(std::move(b))) {}

    const PutBuffer& Get() const {
        if (buffer_ == nullptr) {
            throw py::value_error("the put buffer was used or released");
        }
        return *buffer_;
    }
    PutBuffer Take() {
        Get();
        if (exports_ > 0) {
            throw py::buffer_error("release the memoryviews of the put buffer before putting it");
        }
        PutBuffer b = std::move(*buffer_);
        buffer_.reset();
        return b;
    }
    void Release() { (void)Take(); }
    bool released() const { return buffer_ == nullptr; }

    static int GetBuffer(PyObject* self, Py_buffer* out, int flags) {
        Buffer& b = py::cast<Buffer&>(py::handle(self));
        if (b.buffer_ == nullptr) {
            PyErr_SetString(PyExc_ValueError, "the put buffer was used or released");
            return -1;
        }
        if (PyBuffer_FillInfo(out, self, b.buffer_->data(), static_cast<Py_ssize_t>(b.buffer_->capacity()),
                              /*readonly=*/0, flags) != 0) {
            return -1;
        }
        ++b.exports_;
        return 0;
    }
    static void ReleaseBuffer(PyObject* self, Py_buffer*) { --py::cast<Buffer&>(py::handle(self)).exports_; }

private:
    std::unique_ptr<PutBuffer> buffer_;
    int exports_ = 0;  // memoryviews alive
};

PutObjectRequest PutRequest(const std::string& path, const std::optional<py::dict>& attributes,
                            const std::string& condition, std::optional<uint32_t> mode) {
    PutObjectRequest req{.path = ToPath(path), .condition = condition, .mode = mode};
    if (attributes) {
        req.attributes = ToAttributes(*attributes);
    }
    return req;
}

GetObjectRequest GetRequest(const std::string& path, uint64_t offset, int64_t length) {
    GetObjectRequest req{.path = ToPath(path), .offset = offset};
    if (length >= 0) {
        req.length = static_cast<uint64_t>(length);
    }
    return req;
}

// A converted result as a Python object (it may be one already).
template <typename T>
py::object ToObject(T&& v) {
    if constexpr (std::is_base_of_v<py::handle, std::decay_t<T>>) {
        return std::forward<T>(v);
    } else {
        return py::cast(std::forward<T>(v));
    }
}

// ---- the client ----------------------------------------------------------------------

class PyClient {
public:
    PyClient(const std::string& socket, const std::string& key) {
        ClientOptions o;
        o.socket_path = socket;
        o.access_key = key;
        absl::StatusOr<std::unique_ptr<Client>> c;
        {
            py::gil_scoped_release nogil;
            c = Client::Connect(std::move(o));
        }
        client_ = Take(std::move(c));
    }

    Client& c() {
        if (client_ == nullptr) {
            throw py::value_error("the client is closed");
        }
        return *client_;
    }
    ~PyClient() {
        // (Before the members go: libzerohop may still complete calls into the queue.)
        py::gil_scoped_release nogil;
        StopPoller();
        client_.reset();
        if (bell_ >= 0) {
            ::close(bell_);
        }
    }

    void Close() {
        py::gil_scoped_release nogil;
        StopPoller();
        client_.reset();
    }

    // ---- asynchronous calls (AsyncClient) ------------------------------------------
    // A call's completion never touches Python: it queues its result (converted later) and
    // makes the client's eventfd readable when the queue was empty. The event loop watches
    // that descriptor and drains the queue on its own thread, with the GIL it holds anyway:
    // no thread contends for the GIL, and a burst of completions costs one wake-up.
    // libzerohop's completions run from Poll: one thread per client waits for them (started
    // at the first asynchronous call, without the GIL).
    using Converted = absl::AnyInvocable<py::tuple() &&>;  // (error, value), with the GIL

    template <typename T, typename Convert>
    Callback<T> Completion(uint64_t token, Convert convert) {
        return [this, token, convert](absl::StatusOr<T> r) mutable {
            Ready(token, [r = std::move(r), convert]() mutable -> py::tuple {
                if (!r.ok()) {
                    return py::make_tuple(ErrorObject(r.status()), py::none());
                }
                return py::make_tuple(py::none(), convert(std::move(*r)));
            });
        };
    }
    StatusCallback StatusCompletion(uint64_t token) {
        return [this, token](absl::Status s) {
            Ready(token, [s]() -> py::tuple {
                return py::make_tuple(s.ok() ? py::object(py::none()) : ErrorObject(s), py::none());
            });
        };
    }

    // The descriptor the event loop watches (readable: call drain()).
    int async_fd() {
        std::lock_guard<std::mutex> lock(ready_mu_);
        if (bell_ < 0) {
            bell_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (bell_ < 0) {
                throw py::value_error("eventfd failed");
            }
        }
        return bell_;
    }

    // Runs the completions that have arrived (without waiting), then Drain().
    py::list PollNow() {
        if (client_ != nullptr) {
            py::gil_scoped_release nogil;
            client_->Poll();
        }
        return Drain();
    }

    // The completions that arrived: a list of (token, error, value).
    py::list Drain() {
        uint64_t count;
        std::vector<std::pair<uint64_t, Converted>> ready;
        {
            std::lock_guard<std::mutex> lock(ready_mu_);
            // Reset first (a later one rings again), and only when there is something: the
            // bell rings as the queue turns non-empty, so an empty queue has nothing to reset,
            // and the loop's polling (PollNow) makes no syscall per empty look.
            if (bell_ >= 0 && !ready_.empty()) {
                (void)!::read(bell_, &count, sizeof count);
            }
            ready.swap(ready_);
        }
        py::list out;
        for (auto& [token, convert] : ready) {
            py::tuple ev = std::move(convert)();
            out.append(py::make_tuple(token, ev[0], ev[1]));
        }
        return out;
    }

    // Submits an asynchronous call (`fn(client)`) without the GIL.
    template <typename Fn>
    void Submit(Fn fn) {
        Client& client = Async();
        py::gil_scoped_release nogil;
        fn(client);
    }

    Client& Async() {
        Client& client = c();
        if (!poller_.joinable()) {
            poller_ = std::thread([this, &client] {
                while (!stop_.load(std::memory_order_acquire)) {
                    client.WaitAndPoll(absl::Milliseconds(50));
                }
            });
        }
        return client;
    }

    // Runs `fn` without the GIL; its result (a Status or StatusOr) raised or returned.
    template <typename Fn>
    auto Call(Fn fn) {
        Client& client = c();
        using R = decltype(fn(client));
        std::optional<R> r;
        {
            py::gil_scoped_release nogil;
            r.emplace(fn(client));
        }
        if constexpr (std::is_same_v<R, absl::Status>) {
            Check(*r);
        } else {
            return Take(std::move(*r));
        }
    }

    // One operation, synchronous or not. With token 0 it runs now (without the GIL) and
    // returns `convert` of its result; else it is submitted and its converted result comes
    // back through drain() under `token`.
    template <typename T, typename Sync, typename Async, typename Convert>
    py::object Run(uint64_t token, Sync sync, Async async, Convert convert) {
        if (token == 0) {
            return ToObject(convert(Call(std::move(sync))));
        }
        auto cb = Completion<T>(token, std::move(convert));
        Submit([&](Client& z) { async(z, std::move(cb)); });
        return py::none();
    }
    // The same for an operation that gives nothing but its status.
    template <typename Sync, typename Async>
    void Run(uint64_t token, Sync sync, Async async) {
        if (token == 0) {
            Call(std::move(sync));
            return;
        }
        auto cb = StatusCompletion(token);
        Submit([&](Client& z) { async(z, std::move(cb)); });
    }

private:
    void StopPoller() {
        stop_.store(true, std::memory_order_release);
        if (poller_.joinable()) {
            poller_.join();
        }
    }

    void Ready(uint64_t token, Converted convert) {
        std::lock_guard<std::mutex> lock(ready_mu_);
        ready_.emplace_back(token, std::move(convert));
        if (ready_.size() == 1 && bell_ >= 0) {
            uint64_t one = 1;
            (void)!::write(bell_, &one, sizeof one);
        }
    }

    std::mutex ready_mu_;
    std::vector<std::pair<uint64_t, Converted>> ready_;  // under ready_mu_
    int bell_ = -1;                                      // an eventfd; under ready_mu_
    std::unique_ptr<Client> client_;
    std::thread poller_;
    std::atomic<bool> stop_{false};
};

}  // namespace
}  // namespace zerohop::python

using namespace zerohop;          // NOLINT: the module's body names the API throughout
using namespace zerohop::python;  // NOLINT

PYBIND11_MODULE(_zerohop, m) {
    m.doc() = "zerohop's libzerohop for Python (use the `zerohop` package).";
    g_datetime = py::object(py::module_::import("datetime").attr("datetime")).release();
    g_timezone_utc = py::object(py::module_::import("datetime").attr("timezone").attr("utc")).release();

    m.def("_set_error_classes", [](py::dict classes) { ErrorClasses() = classes; });
    m.attr("STATUS_CODES") = [] {
        py::dict d;
        for (auto [name, code] : std::initializer_list<std::pair<const char*, absl::StatusCode>>{
                 {"cancelled", absl::StatusCode::kCancelled},
                 {"unknown", absl::StatusCode::kUnknown},
                 {"invalid_argument", absl::StatusCode::kInvalidArgument},
                 {"deadline_exceeded", absl::StatusCode::kDeadlineExceeded},
                 {"not_found", absl::StatusCode::kNotFound},
                 {"already_exists", absl::StatusCode::kAlreadyExists},
                 {"permission_denied", absl::StatusCode::kPermissionDenied},
                 {"resource_exhausted", absl::StatusCode::kResourceExhausted},
                 {"failed_precondition", absl::StatusCode::kFailedPrecondition},
                 {"aborted", absl::StatusCode::kAborted},
                 {"out_of_range", absl::StatusCode::kOutOfRange},
                 {"unimplemented", absl::StatusCode::kUnimplemented},
                 {"internal", absl::StatusCode::kInternal},
                 {"unavailable", absl::StatusCode::kUnavailable},
                 {"data_loss", absl::StatusCode::kDataLoss},
                 {"unauthenticated", absl::StatusCode::kUnauthenticated}}) {
            d[name] = static_cast<int>(code);
        }
        return d;
    }();

    auto view_class = py::class_<View>(m, "ObjectView", py::buffer_protocol(),
                                       R"(The bytes of a get, in place in shared memory (no copy).

memoryview(view) reads them in place (read-only). view.release(), or the end of a `with`
block, hands the memory back to zerohopd (when no memoryview of it is left). A released
view raises ValueError on use; it never reads memory that is no longer the client's.)")
        .def_property_readonly("info", [](View& v) { return FromInfo(v.Get().info()); },
                               "The object's info (a dict) as of this read.")
        .def("__len__", [](View& v) { return v.Get().data().size(); })
        .def("tobytes", [](View& v) { return py::bytes(std::string(v.Get().data())); }, "A copy of the bytes.")
        .def_property_readonly("released", &View::released)
        .def("release", &View::Release, "Hands the memory back; any later use raises ValueError.")
        .def("__enter__", [](py::object self) { return self; })
        .def("__exit__", [](View& v, py::args) {
            v.Release();
            return false;
        });
    PyHeapTypeObject* heap = reinterpret_cast<PyHeapTypeObject*>(view_class.ptr());
    heap->as_buffer.bf_getbuffer = &View::GetBuffer;
    heap->as_buffer.bf_releasebuffer = &View::ReleaseBuffer;
    PyType_Modified(reinterpret_cast<PyTypeObject*>(view_class.ptr()));

    auto buffer_class = py::class_<Buffer>(m, "PutBuffer", py::buffer_protocol(),
                                           R"(Room in the session's shared memory for a put's bytes, written in place.

memoryview(buffer) is writable: fill it (f.readinto(buffer), numpy.frombuffer, slicing),
release the memoryviews, then Client.put(path, buffer, size=n) sends the first n bytes
without copying them. The put consumes the buffer; release() (or the end of a `with`)
gives it back unused. A consumed or released buffer raises ValueError on use.)")
        .def_property_readonly("capacity", [](Buffer& b) { return b.Get().capacity(); })
        .def("__len__", [](Buffer& b) { return b.Get().capacity(); })
        .def_property_readonly("released", &Buffer::released)
        .def("release", &Buffer::Release, "Gives the memory back unused.")
        .def("__enter__", [](py::object self) { return self; })
        .def("__exit__", [](Buffer& b, py::args) {
            if (!b.released()) {
                b.Release();
            }
            return false;
        });
    heap = reinterpret_cast<PyHeapTypeObject*>(buffer_class.ptr());
    heap->as_buffer.bf_getbuffer = &Buffer::GetBuffer;
    heap->as_buffer.bf_releasebuffer = &Buffer::ReleaseBuffer;
    PyType_Modified(reinterpret_cast<PyTypeObject*>(buffer_class.ptr()));

    // Every operation takes a last argument `token`: 0 runs it now and returns its result;
    // another submits it (AsyncClient), and its (error, result) comes back from drain()
    // under that token. Everything Python is converted first; waiting (and the submission,
    // which may wait for room in the rings) runs without the GIL.
    py::arg_v token = py::arg("token") = 0;
    py::class_<PyClient>(m, "_Client")
        .def(py::init<const std::string&, const std::string&>(), py::arg("socket") = "", py::arg("key") = "")
        .def("close", &PyClient::Close)
        .def_property_readonly("session_id", [](PyClient& c) { return c.c().session_id(); })
        .def_property_readonly("reconnects", [](PyClient& c) { return c.c().reconnects(); })
        .def("async_fd", &PyClient::async_fd)
        .def("drain", &PyClient::Drain)
        .def("poll", &PyClient::PollNow)
        // namespace
        .def("list_containers", [](PyClient& c, uint64_t token) {
            return c.Run<std::vector<std::string>>(
                token, [](Client& z) { return z.ListContainers(); },
                [](Client& z, auto done) { z.ListContainersAsync(std::move(done)); },
                [](std::vector<std::string> names) { return py::cast(names); });
        }, token)
        .def("stat", [](PyClient& c, const std::string& path, uint64_t token) {
            Path p = ToPath(path);
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.Stat(p); },
                [&](Client& z, auto done) { z.StatAsync(p, std::move(done)); }, FromInfo);
        }, py::arg("path"), token)
        .def("list", [](PyClient& c, const std::string& path, const std::string& prefix, const std::string& marker,
                        uint32_t limit, bool with_attributes, uint64_t token) {
            ListRequest req{.path = ToPath(path), .prefix = prefix, .marker = marker, .limit = limit,
                            .with_attributes = with_attributes};
            return c.Run<ListResult>(
                token, [&](Client& z) { return z.List(req); },
                [&](Client& z, auto done) { z.ListAsync(req, std::move(done)); },
                [with_attributes](const ListResult& r) {  // (entries, next marker or None)
                    py::list entries;
                    for (const DirEntry& e : r.entries) {
                        py::dict d = FromInfo(e.info);
                        d["name"] = e.name;
                        if (with_attributes) {
                            d["attributes"] = FromAttributes(e.attributes);
                        }
                        entries.append(d);
                    }
                    return py::make_tuple(entries, r.truncated ? py::object(py::str(r.next_marker)) : py::none());
                });
        }, py::arg("path"), py::arg("prefix"), py::arg("marker"), py::arg("limit"), py::arg("with_attributes"), token)
        .def("mkdir", [](PyClient& c, const std::string& path, uint32_t mode, uint64_t token) {
            MkdirRequest req{.path = ToPath(path), .mode = mode};
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.Mkdir(req); },
                [&](Client& z, auto done) { z.MkdirAsync(req, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("mode"), token)
        .def("rmdir", [](PyClient& c, const std::string& path, uint64_t token) {
            Path p = ToPath(path);
            c.Run(token, [&](Client& z) { return z.Rmdir(p); },
                  [&](Client& z, auto done) { z.RmdirAsync(p, std::move(done)); });
        }, py::arg("path"), token)
        .def("rename", [](PyClient& c, const std::string& from, const std::string& to, bool no_replace,
                          uint64_t token) {
            RenameRequest req{.from = ToPath(from), .to = ToPath(to), .no_replace = no_replace};
            c.Run(token, [&](Client& z) { return z.Rename(req); },
                  [&](Client& z, auto done) { z.RenameAsync(req, std::move(done)); });
        }, py::arg("from"), py::arg("to"), py::arg("no_replace"), token)
        .def("delete", [](PyClient& c, const std::string& path, const std::string& condition, uint64_t token) {
            DeleteRequest req{.path = ToPath(path), .condition = condition};
            c.Run(token, [&](Client& z) { return z.Delete(req); },
                  [&](Client& z, auto done) { z.DeleteAsync(req, std::move(done)); });
        }, py::arg("path"), py::arg("condition"), token)
        // objects
        .def("get", [](PyClient& c, const std::string& path, uint64_t offset, int64_t length, uint64_t token) {
            GetObjectRequest req = GetRequest(path, offset, length);
            if (token == 0) {  // any size: large objects are read in ranges
                std::string bytes = c.Call([&](Client& z) { return z.GetObject(req); });
                return py::object(py::bytes(bytes));
            }
            return c.Run<ObjectView>(
                token, [&](Client& z) { return z.GetObjectView(req); },
                [&](Client& z, auto done) { z.GetObjectAsync(req, std::move(done)); },
                [](const ObjectView& v) { return py::bytes(v.data().data(), v.data().size()); });
        }, py::arg("path"), py::arg("offset"), py::arg("length"), token)
        .def("get_view", [](PyClient& c, const std::string& path, uint64_t offset, int64_t length, uint64_t token) {
            GetObjectRequest req = GetRequest(path, offset, length);
            return c.Run<ObjectView>(
                token, [&](Client& z) { return z.GetObjectView(req); },
                [&](Client& z, auto done) { z.GetObjectAsync(req, std::move(done)); },
                [](ObjectView v) { return View(std::move(v)); });
        }, py::arg("path"), py::arg("offset"), py::arg("length"), token)
        .def("put", [](PyClient& c, const std::string& path, py::object data, std::optional<py::dict> attributes,
                       const std::string& condition, std::optional<uint32_t> mode, uint64_t token) {
            PutObjectRequest req = PutRequest(path, attributes, condition, mode);
            // Straight from the caller's buffer (no copy into a Python object first).
            py::buffer_info b;
            std::string owned;
            std::string_view bytes;
            if (py::isinstance<py::str>(data)) {
                owned = data.cast<std::string>();
                bytes = owned;
            } else {
                b = py::reinterpret_borrow<py::buffer>(data).request();
                bytes = std::string_view(static_cast<const char*>(b.ptr), static_cast<size_t>(b.size * b.itemsize));
            }
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.PutObject(req, bytes); },  // any size: streamed
                [&](Client& z, auto done) { z.PutObjectAsync(req, bytes, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("data"), py::arg("attributes"), py::arg("condition"), py::arg("mode"), token)
        .def("put_buffer", [](PyClient& c, size_t capacity) {
            return Buffer(c.Call([&](Client& z) { return z.AllocatePutBuffer(capacity); }));
        })
        .def("put_from_buffer", [](PyClient& c, const std::string& path, Buffer& buffer, std::optional<size_t> size,
                                   std::optional<py::dict> attributes, const std::string& condition,
                                   std::optional<uint32_t> mode) {
            PutObjectRequest req = PutRequest(path, attributes, condition, mode);
            PutBuffer b = buffer.Take();
            size_t n = size.value_or(b.capacity());
            return FromInfo(c.Call([&](Client& z) { return z.PutObject(req, std::move(b), n); }));
        })
        .def("append", [](PyClient& c, const std::string& path, py::object data, uint64_t token) {
            std::string bytes = BytesOf(data);  // (the request only points at it)
            AppendRequest req{.path = ToPath(path), .data = bytes};
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.Append(req); },
                [&](Client& z, auto done) { z.AppendAsync(req, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("data"), token)
        .def("write_at", [](PyClient& c, const std::string& path, uint64_t offset, py::object data, uint64_t token) {
            std::string bytes = BytesOf(data);
            WriteObjectRequest req{.path = ToPath(path), .offset = offset, .data = bytes};
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.WriteObject(req); },
                [&](Client& z, auto done) { z.WriteObjectAsync(req, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("offset"), py::arg("data"), token)
        .def("truncate", [](PyClient& c, const std::string& path, uint64_t size, uint64_t token) {
            TruncateRequest req{.path = ToPath(path), .size = size};
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.Truncate(req); },
                [&](Client& z, auto done) { z.TruncateAsync(req, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("size"), token)
        // items
        .def("get_item", [](PyClient& c, const std::string& path, std::vector<std::string> attributes,
                            uint64_t token) {
            GetItemRequest req{.path = ToPath(path), .attributes = std::move(attributes)};
            return c.Run<Item>(
                token, [&](Client& z) { return z.GetItem(req); },
                [&](Client& z, auto done) { z.GetItemAsync(req, std::move(done)); }, FromItem);
        }, py::arg("path"), py::arg("attributes"), token)
        .def("put_item", [](PyClient& c, const std::string& path, py::dict attributes, const std::string& condition,
                            uint64_t token) {
            PutItemRequest req{.path = ToPath(path), .attributes = ToAttributes(attributes), .condition = condition};
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.PutItem(req); },
                [&](Client& z, auto done) { z.PutItemAsync(req, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("attributes"), py::arg("condition"), token)
        .def("put_items", [](PyClient& c, py::list items, uint64_t token) {
            std::vector<PutItemRequest> reqs;
            for (py::handle h : items) {
                py::tuple t = py::reinterpret_borrow<py::tuple>(h);
                reqs.push_back({.path = ToPath(t[0].cast<std::string>()), .attributes = ToAttributes(t[1].cast<py::dict>())});
            }
            return c.Run<std::vector<absl::Status>>(
                token, [&](Client& z) { return z.PutItems(reqs); },
                [&](Client& z, auto done) { z.PutItemsAsync(reqs, std::move(done)); },
                [](const std::vector<absl::Status>& r) {  // per item: None or (code, message)
                    py::list errors;
                    for (const absl::Status& s : r) {
                        errors.append(s.ok() ? py::object(py::none())
                                             : py::make_tuple(static_cast<int>(s.code()), std::string(s.message())));
                    }
                    return errors;
                });
        }, py::arg("items"), token)
        .def("update_item", [](PyClient& c, const std::string& path, const std::string& update,
                               const std::string& condition, const std::string& else_update, uint64_t token) {
            UpdateItemRequest req{.path = ToPath(path), .update = update, .condition = condition,
                                  .else_update = else_update};
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.UpdateItem(req); },
                [&](Client& z, auto done) { z.UpdateItemAsync(req, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("update"), py::arg("condition"), py::arg("else_update"), token)
        .def("scan_page", [](PyClient& c, const std::string& path, const std::string& filter,
                             std::vector<std::string> attributes, const std::string& marker, uint32_t limit,
                             uint32_t segment, uint32_t total_segments, uint64_t token) {
            GetItemsRequest req{.path = ToPath(path), .filter = filter, .attributes = std::move(attributes),
                                .marker = marker, .limit = limit, .segment = segment,
                                .total_segments = total_segments};
            return c.Run<GetItemsResult>(
                token, [&](Client& z) { return z.GetItems(req); },
                [&](Client& z, auto done) { z.GetItemsAsync(req, std::move(done)); }, FromPage);
        }, py::arg("path"), py::arg("filter"), py::arg("attributes"), py::arg("marker"), py::arg("limit"),
           py::arg("segment"), py::arg("total_segments"), token)
        // streams
        .def("create_stream", [](PyClient& c, const std::string& path, uint32_t shards, int64_t retention_secs,
                                 uint64_t token) {
            CreateStreamRequest req{.path = ToPath(path), .shard_count = shards, .retention_secs = retention_secs};
            return c.Run<ObjectInfo>(
                token, [&](Client& z) { return z.CreateStream(req); },
                [&](Client& z, auto done) { z.CreateStreamAsync(req, std::move(done)); }, FromInfo);
        }, py::arg("path"), py::arg("shards"), py::arg("retention_secs"), token)
        .def("describe_stream", [](PyClient& c, const std::string& path, uint64_t token) {
            Path p = ToPath(path);
            return c.Run<StreamDescription>(
                token, [&](Client& z) { return z.DescribeStream(p); },
                [&](Client& z, auto done) { z.DescribeStreamAsync(p, std::move(done)); },
                [](const StreamDescription& d) {
                    py::dict out;
                    out["shard_count"] = d.shard_count;
                    out["retention_secs"] = d.retention_secs;
                    return out;
                });
        }, py::arg("path"), token)
        .def("delete_stream", [](PyClient& c, const std::string& path, uint64_t token) {
            Path p = ToPath(path);
            c.Run(token, [&](Client& z) { return z.DeleteStream(p); },
                  [&](Client& z, auto done) { z.DeleteStreamAsync(p, std::move(done)); });
        }, py::arg("path"), token)
        .def("put_records", [](PyClient& c, const std::string& path, py::list records, uint64_t token) {
            PutRecordsRequest req{.path = ToPath(path)};
            for (py::handle h : records) {
                py::dict r = py::reinterpret_borrow<py::dict>(h);
                RecordInput in{.data = BytesOf(r["data"])};
                if (r.contains("shard") && !r["shard"].is_none()) {
                    in.shard = r["shard"].cast<uint32_t>();
                }
                if (r.contains("partition_key")) {
                    in.partition_key = r["partition_key"].cast<std::string>();
                }
                if (r.contains("client_info")) {
                    in.client_info = BytesOf(r["client_info"]);
                }
                req.records.push_back(std::move(in));
            }
            return c.Run<std::vector<RecordResult>>(
                token, [&](Client& z) { return z.PutRecords(req); },
                [&](Client& z, auto done) { z.PutRecordsAsync(req, std::move(done)); },
                [](const std::vector<RecordResult>& results) {
                    py::list out;
                    for (const RecordResult& r : results) {
                        py::dict d;
                        d["shard"] = r.shard;
                        d["sequence"] = r.sequence;
                        d["error"] = r.status.ok() ? py::object(py::none())
                                                   : py::object(py::str(std::string(r.status.message())));
                        out.append(d);
                    }
                    return out;
                });
        }, py::arg("path"), py::arg("records"), token)
        .def("seek", [](PyClient& c, const std::string& path, uint32_t shard, const std::string& type,
                        uint64_t sequence, py::object time, uint64_t token) {
            SeekRequest req{.path = ToPath(path), .shard = shard, .sequence = sequence};
            if (type == "earliest") {
                req.type = SeekType::kEarliest;
            } else if (type == "latest") {
                req.type = SeekType::kLatest;
            } else if (type == "sequence") {
                req.type = SeekType::kSequence;
            } else if (type == "time") {
                req.type = SeekType::kTime;
                req.time = ToTimestamp(time);
            } else {
                throw py::value_error("seek: type is one of earliest, latest, sequence, time");
            }
            return c.Run<StreamLocation>(
                token, [&](Client& z) { return z.Seek(req); },
                [&](Client& z, auto done) { z.SeekAsync(req, std::move(done)); },
                [](const StreamLocation& loc) { return loc.Encode(); });
        }, py::arg("path"), py::arg("shard"), py::arg("type"), py::arg("sequence"), py::arg("time"), token)
        .def("get_records", [](PyClient& c, const std::string& path, const std::string& location, uint32_t limit,
                               uint64_t token) {
            auto loc = StreamLocation::Decode(location);
            if (!loc.ok()) {
                Raise(loc.status());
            }
            GetRecordsRequest req{.path = ToPath(path), .location = *loc, .limit = limit};
            return c.Run<GetRecordsResult>(
                token, [&](Client& z) { return z.GetRecords(req); },
                [&](Client& z, auto done) { z.GetRecordsAsync(req, std::move(done)); },
                [](const GetRecordsResult& r) {  // (records, next location, records behind)
                    return py::make_tuple(FromRecords(r.records), r.next.Encode(), r.behind);
                });
        }, py::arg("path"), py::arg("location"), py::arg("limit"), token);
}

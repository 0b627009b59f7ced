#pragma once
// The backend interface: every operation of the namespace, for every storage engine.
//
// Asynchronous in shape: each call takes a request and a completion, and the completion
// runs exactly once, either before the call returns (quick calls of the embedded store) or
// later on another thread (its scans, large reads and writes and fsyncs; remote backends).
// Buffers a request names (DataSource, DataSink and string views) must stay valid until
// its completion has run, and a sink or source may be used from any thread meanwhile.
//
// Every single-object operation is atomic, condition and change together; a caller reads
// its own writes; errors follow zerohop/status.h.
//
//   backend.GetItem({.path = *Path::Parse("/users/people/alice"), .attributes = {"age"}},
//                   [](absl::StatusOr<Item> item) { ... });
//   // or, where blocking is fine (tools, tests):
//   absl::StatusOr<Item> item = Await<Item>([&](auto done) { backend.GetItem(req, std::move(done)); });

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "wire/operation_table.h"
#include "zerohop/operations.h"

namespace zerohop {

template <typename T>
using Done = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
using DoneStatus = absl::AnyInvocable<void(absl::Status) &&>;
// The completion of an operation whose result is `T`: its status alone for NoResult.
template <typename T>
using DoneFor = std::conditional_t<std::is_same_v<T, NoResult>, DoneStatus, Done<T>>;

// Memory a sink lends before it knows how many bytes will come (for a peer's answer written
// straight into it): `capacity` bytes at `addr`, inside the mapping [region, region +
// region_size), which the process maps once under `region_id` (never reused for another).
struct SinkMemory {
    char* addr = nullptr;
    uint64_t capacity = 0;
    char* region = nullptr;
    uint64_t region_size = 0;
    uint64_t region_id = 0;
};

// Where a get's bytes go, chunk by chunk, so that an object never needs to fit in memory.
class DataSink {
public:
    virtual ~DataSink() = default;
    // Called once before the first Write with the exact number of bytes that will follow,
    // so that a sink can place them without growing (the daemon writes them straight into
    // shared memory).
    virtual absl::Status Expect(uint64_t bytes) { return absl::OkStatus(); }
    virtual absl::Status Write(std::string_view chunk) = 0;
    // After Expect(n): memory for exactly those n bytes when the sink has it (the daemon's
    // shared region), so that a backend reads straight into it instead of calling Write.
    virtual char* Placement() { return nullptr; }
    // Memory for at most `at_most` bytes, lent before the count is known, when the sink has
    // it; Expect(n) with n <= at_most then places them there (Placement() is its address).
    virtual std::optional<SinkMemory> Reserve(uint64_t at_most) { return std::nullopt; }
};

// Where a put's bytes come from. Read returns 0 at the end.
class DataSource {
public:
    virtual ~DataSource() = default;
    virtual absl::StatusOr<size_t> Read(char* buf, size_t capacity) = 0;
    // How many bytes Read will give in all, when that is known up front.
    virtual std::optional<uint64_t> size() const { return std::nullopt; }
};

// A DataSource over bytes in memory.
class StringSource : public DataSource {
public:
    explicit StringSource(std::string_view data) : data_(data) {}
    absl::StatusOr<size_t> Read(char* buf, size_t capacity) override;
    std::optional<uint64_t> size() const override { return data_.size(); }

private:
    std::string_view data_;
};

// A DataSink that appends to a string. Once told how many bytes come (Expect), the string
// grows by that much at once and lends the room (Placement), so that a backend reads
// straight into it instead of through a buffer of its own.
class StringSink : public DataSink {
public:
    explicit StringSink(std::string* out) : out_(out) {}
    absl::Status Expect(uint64_t bytes) override {
        Finish();
        base_ = out_->size();
        out_->resize(base_ + bytes);
        expected_ = bytes;
        written_ = 0;
        return absl::OkStatus();
    }
    absl::Status Write(std::string_view chunk) override {
        if (!expected_) {
            out_->append(chunk.data(), chunk.size());
            return absl::OkStatus();
        }
        if (chunk.size() > *expected_ - written_) {
            return absl::InternalError("backend wrote more than it announced");
        }
        if (!chunk.empty()) {
            std::memcpy(out_->data() + base_ + written_, chunk.data(), chunk.size());
        }
        written_ += chunk.size();
        return absl::OkStatus();
    }
    char* Placement() override {
        if (!expected_) {
            return nullptr;
        }
        written_ = *expected_;  // the backend fills all of it
        return out_->data() + base_;
    }
    // The string ends where the bytes written end (fewer than announced: the rest goes).
    void Finish() {
        if (expected_) {
            out_->resize(base_ + written_);
            expected_.reset();
        }
    }

private:
    std::string* out_;
    std::optional<uint64_t> expected_;  // announced by Expect, not yet finished
    size_t base_ = 0, written_ = 0;
};

// Work a backend does on a daemon worker's own thread, inside the worker's event loop
// (network I/O: a request goes out and its answer comes back with no hand-off to another
// thread). See Backend::JoinLoop.
class LoopHook {
public:
    virtual ~LoopHook() = default;
    virtual int fd() const = 0;  // readable when Poll has something to do
    // Without blocking; true when something happened (a request went out, an answer came).
    virtual bool Poll() = 0;
    virtual bool Busy() const = 0;  // answers are on their way: worth spinning for
    virtual int TimeoutMs() const = 0;  // how long the worker may sleep at most (-1: no limit)
    virtual void Sleeping(bool asleep) = 0;  // around the worker's sleeps
};

// One operation's method, by its shape in the table.
#define ZH_BACKEND_METHOD_Plain(Name, Request, Result) void Name(Request req, DoneFor<Result> done)
#define ZH_BACKEND_METHOD_NoBody(Name, Request, Result) void Name(DoneFor<Result> done)
#define ZH_BACKEND_METHOD_Sink(Name, Request, Result) \
    void Name(Request req, DataSink* sink, DoneFor<Result> done)
#define ZH_BACKEND_METHOD_Source(Name, Request, Result) \
    void Name(Request req, DataSource* data, DoneFor<Result> done)
#define ZH_BACKEND_METHOD_File(Name, Request, Result) void Name(Request req, Done<ObjectFile> done)
#define ZH_BACKEND_METHOD(Name, number, name, Request, Result, access, repeat, shape) \
    ZH_BACKEND_METHOD_##shape(Name, Request, Result)
#define ZH_BACKEND_PURE(...) virtual ZH_BACKEND_METHOD(__VA_ARGS__) = 0;
// In a backend's class: `ZH_BACKEND_OPERATIONS(ZH_BACKEND_OVERRIDE)` declares them all.
#define ZH_BACKEND_OVERRIDE(...) ZH_BACKEND_METHOD(__VA_ARGS__) override;

// The synchronous form of each operation, for a backend's engine behind its asynchronous
// face: `absl::StatusOr<ObjectInfo> Stat(const Path& req)`, `absl::Status Rmdir(const Path&
// req)`, `absl::StatusOr<GetObjectResult> GetObject(const GetObjectRequest& req, DataSink*
// sink)`. In the engine's class: `ZH_BACKEND_OPERATIONS(ZH_SYNC_DECLARATION)`.
template <typename T>
using SyncResultFor = std::conditional_t<std::is_same_v<T, NoResult>, absl::Status, absl::StatusOr<T>>;
#define ZH_SYNC_METHOD_Plain(Name, Request, Result) SyncResultFor<Result> Name(const Request& req)
#define ZH_SYNC_METHOD_NoBody(Name, Request, Result) SyncResultFor<Result> Name()
#define ZH_SYNC_METHOD_Sink(Name, Request, Result) SyncResultFor<Result> Name(const Request& req, DataSink* sink)
#define ZH_SYNC_METHOD_Source(Name, Request, Result) \
    SyncResultFor<Result> Name(const Request& req, DataSource* data)
// (None for File: only an engine with local files has one, and declares it itself.)
#define ZH_SYNC_METHOD_File(Name, Request, Result)
#define ZH_SYNC_DECLARATION(Name, number, name, Request, Result, access, repeat, shape) \
    ZH_SYNC_METHOD_##shape(Name, Request, Result);

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string_view kind() const = 0;

    // Called by each daemon worker on its own thread when it starts. A backend that does its
    // I/O on the callers' threads returns a hook: from then on, operations started on this
    // thread use it, and their completions run on this thread inside Poll. The hook is
    // destroyed on this thread, before the backend. Null: the backend has its own threads.
    // An error: this worker's operations go through the backend's own threads.
    virtual absl::StatusOr<std::unique_ptr<LoopHook>> JoinLoop() { return nullptr; }

    // Lines of the daemon's /metrics (Prometheus text) of this backend's own, if it has any.
    virtual std::string RenderMetrics() const { return ""; }

    // Every operation of ZH_BACKEND_OPERATIONS (wire/operation_table.h), declared by its
    // shape (ZH_BACKEND_METHOD above):
    //   Plain    void Stat(Path req, Done<ObjectInfo> done); void Rmdir(Path req, DoneStatus done)
    //   NoBody   void ListContainers(Done<std::vector<std::string>> done); void Sync(DoneStatus done)
    //   Sink     void GetObject(GetObjectRequest req, DataSink* sink, Done<GetObjectResult> done):
    //            the bytes go to `sink`, which must outlive the completion
    //   Source   void PutObject(PutObjectRequest req, DataSource* data, Done<ObjectInfo> done):
    //            the bytes come from `data` (null: an empty object), which must outlive it
    //   File     void OpenObjectFile(Path req, Done<ObjectFile> done): the object's info, and
    //            a read-only descriptor of its bytes where they are a local file
    // What each must do beyond the request's own comments (zerohop/operations.h):
    //   PutItems  one status per item, in order; each item is atomic on its own
    //   Delete    is delete_item too
    //   Sync      makes every acknowledged write durable against power loss (FUSE fsync)
    ZH_BACKEND_OPERATIONS(ZH_BACKEND_PURE)
};

// The method of Backend that serves the table's operation numbered `number`:
// BackendMethod<2>::Run(backend, path, done) is backend->Stat(path, done). For code that
// handles every operation alike (the daemon's dispatch, the peer server).
template <uint16_t number>
struct BackendMethod;
#define ZH_BACKEND_METHOD_OF(Name, number, ...)           \
    template <>                                           \
    struct BackendMethod<number> {                        \
        template <typename... Args>                       \
        static void Run(Backend* b, Args&&... args) {     \
            b->Name(std::forward<Args>(args)...);         \
        }                                                 \
    };
ZH_BACKEND_OPERATIONS(ZH_BACKEND_METHOD_OF)
#undef ZH_BACKEND_METHOD_OF

// The attributes a projection asks for (see GetItemRequest) of an entry called `name`, from
// its encoded user attributes and its info: the one way every backend answers them.
absl::StatusOr<AttributeMap> ProjectAttributes(std::string_view encoded, const std::vector<std::string>& names,
                                               std::string_view name, const ObjectInfo& info);

// Runs `start(done)` and blocks until `done` has been called. For tools and tests; the
// daemon never blocks on a backend.
template <typename T, typename Start>
absl::StatusOr<T> Await(Start&& start) {
    struct State {
        absl::Mutex mu;
        std::optional<absl::StatusOr<T>> result;
    } state;
    start([&state](absl::StatusOr<T> r) {
        absl::MutexLock lock(&state.mu);
        state.result.emplace(std::move(r));
    });
    absl::MutexLock lock(&state.mu);
    state.mu.Await(absl::Condition(
        +[](std::optional<absl::StatusOr<T>>* r) { return r->has_value(); }, &state.result));
    return std::move(*state.result);
}

template <typename Start>
absl::Status AwaitStatus(Start&& start) {
    struct State {
        absl::Mutex mu;
        std::optional<absl::Status> result;
    } state;
    start([&state](absl::Status s) {
        absl::MutexLock lock(&state.mu);
        state.result.emplace(std::move(s));
    });
    absl::MutexLock lock(&state.mu);
    state.mu.Await(absl::Condition(+[](std::optional<absl::Status>* r) { return r->has_value(); }, &state.result));
    return std::move(*state.result);
}

}  // namespace zerohop

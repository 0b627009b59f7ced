#pragma once
// The backend interface: every operation of DESIGN.md section 3, for every storage engine.
//
// Asynchronous in shape: each call takes a request and a completion, and the completion
// runs exactly once, either before the call returns (the embedded store) or later on
// another thread (remote backends). Buffers a request names (DataSource, DataSink and
// string views) must stay valid until its completion has run.
//
// Every single-object operation is atomic, condition and change together; a caller reads
// its own writes; errors follow zerohop/status.h.
//
//   backend.GetItem({.path = *Path::Parse("/users/people/alice"), .attributes = {"age"}},
//                   [](absl::StatusOr<Item> item) { ... });
//   // or, where blocking is fine (tools, tests):
//   absl::StatusOr<Item> item = Await<Item>([&](auto done) { backend.GetItem(req, std::move(done)); });

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "zerohop/object.h"
#include "zerohop/path.h"
#include "zerohop/stream.h"
#include "zerohop/value.h"

namespace zerohop {

// Limits that are part of the contract, the same on every backend.
inline constexpr size_t kMaxItemAttributeBytes = 1 << 20;  // encoded attributes of one object
inline constexpr size_t kMaxRecordBytes = 1 << 20;         // data of one stream record
inline constexpr size_t kMaxSymlinkTargetBytes = 4096;
inline constexpr uint32_t kMaxListLimit = 10000;
inline constexpr uint64_t kMaxObjectBytes = uint64_t{1} << 40;

template <typename T>
using Done = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
using DoneStatus = absl::AnyInvocable<void(absl::Status) &&>;

// Who asks: owner of what gets created.
struct Caller {
    uint32_t uid = 0;
    uint32_t gid = 0;
};

// Where a get's bytes go, chunk by chunk, so that an object never needs to fit in memory.
class DataSink {
public:
    virtual ~DataSink() = default;
    virtual absl::Status Write(std::string_view chunk) = 0;
};

// Where a put's bytes come from. Read returns 0 at the end.
class DataSource {
public:
    virtual ~DataSource() = default;
    virtual absl::StatusOr<size_t> Read(char* buf, size_t capacity) = 0;
};

// A DataSource over bytes in memory.
class StringSource : public DataSource {
public:
    explicit StringSource(std::string_view data) : data_(data) {}
    absl::StatusOr<size_t> Read(char* buf, size_t capacity) override;

private:
    std::string_view data_;
};

// A DataSink that appends to a string.
class StringSink : public DataSink {
public:
    explicit StringSink(std::string* out) : out_(out) {}
    absl::Status Write(std::string_view chunk) override {
        out_->append(chunk.data(), chunk.size());
        return absl::OkStatus();
    }

private:
    std::string* out_;
};

// ---- namespace ----------------------------------------------------------------------

struct ListRequest {
    Path path;
    std::string prefix;        // only names starting with this
    std::string marker;        // only names after this (the next_marker of the previous page)
    uint32_t limit = 1000;     // at most kMaxListLimit
    bool with_attributes = false;
};

struct DirEntry {
    std::string name;
    ObjectInfo info;
    AttributeMap attributes;  // filled when with_attributes
};

struct ListResult {
    std::vector<DirEntry> entries;
    std::string next_marker;  // pass as marker for the next page
    bool truncated = false;   // more entries follow
};

struct MkdirRequest {
    Path path;
    uint32_t mode = 0755;
    Caller caller;
};

struct RenameRequest {
    Path from;
    Path to;
    bool no_replace = false;  // fail with AlreadyExists instead of replacing `to`
};

struct SymlinkRequest {
    Path path;
    std::string target;
    Caller caller;
};

struct DeleteRequest {
    Path path;
    std::string condition;  // empty: unconditional
};

struct SetMetadataRequest {
    Path path;
    std::optional<uint32_t> mode;
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
    std::optional<Timestamp> mtime;
};

// ---- objects ------------------------------------------------------------------------

struct GetObjectRequest {
    Path path;
    uint64_t offset = 0;
    uint64_t length = std::numeric_limits<uint64_t>::max();  // clipped at the end
    DataSink* sink = nullptr;
};

struct GetObjectResult {
    ObjectInfo info;
    uint64_t bytes = 0;  // how many went to the sink
};

struct PutObjectRequest {
    Path path;
    DataSource* data = nullptr;  // null: empty object
    AttributeMap attributes;     // replaces the object's attributes
    std::string condition;       // checked against the object being replaced
    std::optional<uint32_t> mode;  // default: kept when replacing, else 0644
    Caller caller;
};

struct WriteObjectRequest {
    Path path;
    uint64_t offset = 0;
    std::string_view data;
};

struct AppendRequest {
    Path path;
    std::string_view data;
};

struct TruncateRequest {
    Path path;
    uint64_t size = 0;
};

// ---- items --------------------------------------------------------------------------

// Projections: empty = every user attribute; "*" = every user attribute; "**" = every user
// and system attribute; other names (user or system) are returned when present.
struct GetItemRequest {
    Path path;
    std::vector<std::string> attributes;
};

struct Item {
    std::string name;
    ObjectInfo info;
    AttributeMap attributes;
};

struct GetItemsRequest {
    Path path;  // the table (a directory)
    std::string filter;
    std::vector<std::string> attributes;
    std::string marker;
    uint32_t limit = 1000;  // at most kMaxListLimit; a page may hold fewer
    uint32_t segment = 0;   // scan segment `segment` of `total_segments`
    uint32_t total_segments = 1;
};

struct GetItemsResult {
    std::vector<Item> items;
    std::string next_marker;
    bool done = false;  // no more items after this page
};

struct PutItemRequest {
    Path path;
    AttributeMap attributes;  // replaces all attributes
    std::string condition;
    Caller caller;
};

struct UpdateItemRequest {
    Path path;
    std::string update;
    std::string condition;    // empty: always
    std::string else_update;  // run when the condition is false; empty: FailedPrecondition
    Caller caller;
};

// ---- streams ------------------------------------------------------------------------

struct CreateStreamRequest {
    Path path;
    uint32_t shard_count = 1;
    int64_t retention_secs = 24 * 3600;
    Caller caller;
};

struct PutRecordsRequest {
    Path path;
    std::vector<RecordInput> records;
};

struct SeekRequest {
    Path path;  // the stream
    uint32_t shard = 0;
    SeekType type = SeekType::kEarliest;
    uint64_t sequence = 0;  // kSequence
    Timestamp time;         // kTime
};

struct GetRecordsRequest {
    Path path;  // the stream
    StreamLocation location;
    uint32_t limit = 1000;
    uint64_t max_bytes = 8 << 20;  // a page holds at least one record, even a larger one
};

struct GetRecordsResult {
    std::vector<StreamRecord> records;
    StreamLocation next;
    uint64_t behind = 0;  // records after `next` that exist now
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string_view kind() const = 0;

    // Namespace.
    virtual void ListContainers(Done<std::vector<std::string>> done) = 0;
    virtual void Stat(Path path, Done<ObjectInfo> done) = 0;
    virtual void List(ListRequest req, Done<ListResult> done) = 0;
    virtual void Mkdir(MkdirRequest req, Done<ObjectInfo> done) = 0;
    virtual void Rmdir(Path path, DoneStatus done) = 0;
    virtual void Rename(RenameRequest req, DoneStatus done) = 0;
    virtual void Symlink(SymlinkRequest req, Done<ObjectInfo> done) = 0;
    virtual void Readlink(Path path, Done<std::string> done) = 0;
    virtual void Delete(DeleteRequest req, DoneStatus done) = 0;
    virtual void SetMetadata(SetMetadataRequest req, Done<ObjectInfo> done) = 0;

    // Objects.
    virtual void GetObject(GetObjectRequest req, Done<GetObjectResult> done) = 0;
    virtual void PutObject(PutObjectRequest req, Done<ObjectInfo> done) = 0;
    virtual void WriteObject(WriteObjectRequest req, Done<ObjectInfo> done) = 0;
    virtual void Append(AppendRequest req, Done<ObjectInfo> done) = 0;
    virtual void Truncate(TruncateRequest req, Done<ObjectInfo> done) = 0;

    // Items.
    virtual void GetItem(GetItemRequest req, Done<Item> done) = 0;
    virtual void GetItems(GetItemsRequest req, Done<GetItemsResult> done) = 0;
    virtual void PutItem(PutItemRequest req, Done<ObjectInfo> done) = 0;
    // One status per item, in order; each item is atomic on its own.
    virtual void PutItems(std::vector<PutItemRequest> reqs, Done<std::vector<absl::Status>> done) = 0;
    virtual void UpdateItem(UpdateItemRequest req, Done<ObjectInfo> done) = 0;
    // delete_item is Delete.

    // Streams.
    virtual void CreateStream(CreateStreamRequest req, Done<ObjectInfo> done) = 0;
    virtual void DescribeStream(Path path, Done<StreamDescription> done) = 0;
    virtual void DeleteStream(Path path, DoneStatus done) = 0;
    virtual void PutRecords(PutRecordsRequest req, Done<std::vector<RecordResult>> done) = 0;
    virtual void Seek(SeekRequest req, Done<StreamLocation> done) = 0;
    virtual void GetRecords(GetRecordsRequest req, Done<GetRecordsResult> done) = 0;

    // Makes every acknowledged write durable against power loss (fsync in FUSE).
    virtual void Sync(DoneStatus done) = 0;
};

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

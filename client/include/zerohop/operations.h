#pragma once
// The operations of the unified namespace as plain values: what a caller asks and what it
// gets back. The same types travel through libzerohop, the session wire and every backend;
// docs/ARCHITECTURE.md lists the operations and what each one promises.
//
//   GetItemRequest req{.path = *Path::Parse("/users/people/alice"), .attributes = {"age"}};
//   GetItemsRequest scan{.path = *Path::Parse("/users/people"), .filter = "age > 30", .limit = 100};

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
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

// The owner of what a request creates. zerohopd takes it from the session's peer
// (SO_PEERCRED) and ignores this, unless the peer is root: zerohop-fuse, running as root,
// creates files owned by the callers of its mount in the same operation.
struct Caller {
    uint32_t uid = 0;
    uint32_t gid = 0;
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

// A special file: an entry with a kind and, for devices, a device number, and no bytes
// (a FIFO, a device node or a unix socket made through the mount; the kernel gives it its
// meaning there). `special` is S_IFIFO, S_IFCHR, S_IFBLK or S_IFSOCK.
struct MknodRequest {
    Path path;
    uint32_t special = 0;
    uint32_t mode = 0644;
    uint64_t rdev = 0;  // devices only
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
    std::optional<Timestamp> atime;
};

// ---- objects ------------------------------------------------------------------------

struct GetObjectRequest {
    Path path;
    uint64_t offset = 0;
    uint64_t length = std::numeric_limits<uint64_t>::max();  // clipped at the end
};

struct GetObjectResult {
    ObjectInfo info;
    uint64_t bytes = 0;  // how many bytes the read returned
};

// The bytes travel beside the request (a DataSource to a backend, buffers on the wire).
struct PutObjectRequest {
    Path path;
    AttributeMap attributes;     // replaces the object's attributes
    std::string condition;       // checked against the object being replaced
    std::optional<uint32_t> mode;  // default: kept when replacing, else 0644
    Caller caller;
};

// `data` is a view: the bytes must outlive the operation.
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

// ---- the daemon ---------------------------------------------------------------------

// What `zh status` shows: the daemon as a whole.
struct DaemonStatus {
    uint32_t version = 0;  // of the session protocol
    uint32_t workers = 0;
    uint64_t sessions_open = 0;
    uint64_t sessions_total = 0;
    uint64_t sessions_refused = 0;
    uint64_t requests = 0;
    uint64_t request_errors = 0;
    uint64_t bad_descriptors = 0;
    std::vector<std::string> containers;  // those this session's key can read
};

// ---- volumes: sessions scoped to one part of the namespace -------------------------------
//
// A key marked `admin` in zerohopd's configuration (the CSI node plugin's) may publish a
// volume: zerohopd then listens on a socket of its own for it, in a directory the publisher
// bind-mounts into a pod. Sessions on that socket need no key: they see one container, whose
// root is the volume's root, read-only or read-write as published.

struct PublishVolumeRequest {
    std::string scope_id;    // the publisher's name for it: 1..64 of [A-Za-z0-9._-]
    Path root;               // /<container>[/<sub-path>]: what the sessions see as /<container>
    bool read_only = false;
    std::string access_key;  // the volume's key: it must grant the container (rw unless read_only)
    // Who uses it, for logs and metrics (Kubernetes' podInfoOnMount); empty if unknown.
    std::string pod_namespace, pod_name, pod_uid, service_account;
};

struct PublishedVolume {
    std::string directory;  // holds `socket`; publish this directory, not the socket
    std::string socket;
};

struct UnpublishVolumeRequest {
    std::string scope_id;
};

// Where and what the daemon is (`zh status` shows it beside DaemonStatus).
struct DaemonInfo {
    std::string version;  // zerohopd's version
    std::string socket;   // the socket it listens on
    std::string metrics;  // where its metrics are served ("127.0.0.1:9464"); empty: nowhere
};

}  // namespace zerohop

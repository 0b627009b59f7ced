#pragma once
// The session wire between libzerohop and zerohopd.
//
// A session starts on the unix socket: the client sends a Hello (protocol version, access
// key, the ring and buffer sizes it wants); the daemon checks the peer's credentials and
// the key and answers with a Welcome, passing the segment memfd and the doorbell eventfd
// with it (SCM_RIGHTS). From then on requests and completions are 64-byte Descriptors in
// the segment's rings; their payloads (a request's encoded body, a result's encoded body)
// sit in the sender's buffer region, named by offset and length.
//
// Payload bodies are encoded with zerohop/codec.h. Decoding checks everything: lengths,
// enum values, paths (through Path::Parse), value encodings; anything else is
// InvalidArgument, never a crash. The caller of a request (uid/gid) is never on the wire:
// the daemon takes it from the socket's credentials.
//
//   std::string body = protocol::Encode(GetItemRequest{.path = p, .attributes = {"age"}});
//   auto req = protocol::Decode<GetItemRequest>(body);   // the daemon side

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerohop/operations.h"

namespace zerohop::protocol {

inline constexpr uint32_t kHelloMagic = 0x5a48484c;  // "LHHZ"
inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kDescriptorSize = 64;
inline constexpr size_t kMaxAccessKeyBytes = 256;

// Numbers are part of the wire: never renumber.
enum class Op : uint16_t {
    kNop = 0,  // does nothing; measures the rings
    kListContainers = 1,
    kStat = 2,
    kList = 3,
    kMkdir = 4,
    kRmdir = 5,
    kRename = 6,
    kSymlink = 7,
    kReadlink = 8,
    kDelete = 9,
    kSetMetadata = 10,
    kGetObject = 20,
    kPutObject = 21,
    kWriteObject = 22,
    kAppend = 23,
    kTruncate = 24,
    kGetItem = 30,
    kGetItems = 31,
    kPutItem = 32,
    kPutItems = 33,
    kUpdateItem = 34,
    kCreateStream = 40,
    kDescribeStream = 41,
    kDeleteStream = 42,
    kPutRecords = 43,
    kSeek = 44,
    kGetRecords = 45,
    kSync = 50,
    kStatus = 51,  // the daemon's counters (zh status)
    kRelease = 60,  // the client hands a daemon-region buffer back
};

// Whether `op` names an operation (so that a descriptor's op can be checked).
bool IsKnownOp(uint16_t op);
std::string_view OpName(Op op);

// Puts larger than a buffer region stream in chunks. The first descriptor (a put_object
// with kFlagMore) carries the request and the first bytes and is answered with the put's
// result at the end; each further chunk is a put_object with kFlagChunk, arg0 = the first
// descriptor's request id, kFlagMore on all but the last, answered once its bytes are taken.
inline constexpr uint32_t kFlagMore = 1;
inline constexpr uint32_t kFlagChunk = 2;
// arg1 of a chunk that abandons its upload: the put fails and changes nothing.
inline constexpr uint64_t kAbortUpload = 1;

// One ring slot's payload. Little-endian, fixed layout.
struct Descriptor {
    uint16_t version = kProtocolVersion;
    uint16_t op = 0;
    uint32_t flags = 0;
    uint64_t request_id = 0;  // chosen by the client, echoed by the daemon
    uint64_t offset = 0;      // payload: offset in the sender's buffer region
    uint32_t length = 0;      // payload: bytes
    int32_t status = 0;       // completions: an absl::StatusCode
    uint64_t arg0 = 0;        // op-specific
    uint64_t arg1 = 0;
    uint64_t reserved[2] = {0, 0};
};
static_assert(sizeof(Descriptor) == kDescriptorSize);

struct Hello {
    uint32_t version = kProtocolVersion;
    std::string access_key;
    uint32_t submit_entries = 256;
    uint32_t complete_entries = 256;
    uint64_t client_bytes = 32 << 20;
    uint64_t daemon_bytes = 32 << 20;
};

struct Welcome {
    absl::Status status;       // not OK: the session is refused, and why
    uint32_t version = kProtocolVersion;
    uint64_t session_id = 0;
    uint32_t max_in_flight = 0;
};

// What `zh status` shows: the daemon as a whole.
struct DaemonStatus {
    uint32_t version = kProtocolVersion;
    uint32_t workers = 0;
    uint64_t sessions_open = 0;
    uint64_t sessions_total = 0;
    uint64_t sessions_refused = 0;
    uint64_t requests = 0;
    uint64_t request_errors = 0;
    uint64_t bad_descriptors = 0;
    std::vector<std::string> containers;  // those this session's key can read
};

// A status on the wire: code and message.
struct WireStatus {
    absl::Status status;
};

// Encodes any message type of this header or of zerohop/operations.h.
template <typename T>
std::string Encode(const T& msg);

// Decodes a whole message: trailing bytes are an error.
template <typename T>
absl::StatusOr<T> Decode(std::string_view bytes);

// Decodes a message at the front of `bytes`; `rest` is what follows (the object bytes of
// put, write and append requests and of get results).
template <typename T>
absl::StatusOr<T> DecodePrefix(std::string_view bytes, std::string_view* rest);

}  // namespace zerohop::protocol

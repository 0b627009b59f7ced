#pragma once
// The session wire between libzerohop and zerohopd (never installed: not public API).
//
// A session starts on the unix socket: the client sends a Hello (protocol version, access
// key, the ring and buffer sizes it wants); the daemon checks the peer's credentials and
// the key and answers with a Welcome, passing the segment memfd and the doorbell eventfd
// with it (SCM_RIGHTS). From then on requests and completions are 64-byte Descriptors in
// the segment's rings; their payloads (a request's encoded body, a result's encoded body)
// sit in the sender's buffer region, named by offset and length.
//
// Which operations there are, and what each carries, is wire/operation_table.h. How each
// message is laid out is described once, field by field, in wire/internal/layout.h; both
// Encode and Decode come from that description. Decoding checks everything: lengths, enum
// values, paths (through Path::Parse), value encodings; anything else is InvalidArgument,
// never a crash. The caller of a creating request (uid/gid, the new entry's owner) is on the
// wire, and zerohopd believes it only from a root peer (zerohop-fuse, creating for the users
// of its mount); anyone else's is replaced with the socket's credentials (SO_PEERCRED).
//
//   std::string body = protocol::Encode(GetItemRequest{.path = p, .attributes = {"age"}});
//   auto req = protocol::Decode<GetItemRequest>(body);   // the daemon side

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wire/operation_table.h"
#include "zerohop/operations.h"

namespace zerohop::protocol {

inline constexpr uint32_t kHelloMagic = 0x5a48484c;  // "LHHZ"
inline constexpr uint32_t kProtocolVersion = 3;  // 3: ObjectInfo carries `subdirs` and `atime`
inline constexpr size_t kDescriptorSize = 64;
inline constexpr size_t kMaxAccessKeyBytes = 256;

// ---- operations -------------------------------------------------------------------------

enum class Access : uint8_t { kNone, kRead, kWrite };
enum class Repeat : uint8_t { kOnce, kRepeatable };

enum class Op : uint16_t {
#define ZH_OP_ENUMERATOR(Name, number, ...) k##Name = number,
    ZH_OPERATIONS(ZH_OP_ENUMERATOR)
#undef ZH_OP_ENUMERATOR
};

// The table's row of `op`, at compile time.
template <Op op>
struct OpTraits;
#define ZH_OP_TRAITS(Name, number, name, RequestType, ResultType, access, repeat, shape) \
    template <>                                                                           \
    struct OpTraits<Op::k##Name> {                                                        \
        using Request = RequestType;                                                      \
        using Result = ResultType;                                                        \
        static constexpr std::string_view kName = name;                                   \
        static constexpr Access kAccess = Access::access;                                 \
        static constexpr Repeat kRepeat = Repeat::repeat;                                 \
    };
ZH_OPERATIONS(ZH_OP_TRAITS)
#undef ZH_OP_TRAITS

// Whether `op` names an operation (so that a descriptor's op can be checked).
constexpr bool IsKnownOp(uint16_t op) {
    switch (static_cast<Op>(op)) {
#define ZH_OP_KNOWN(Name, ...) case Op::k##Name:
        ZH_OPERATIONS(ZH_OP_KNOWN)
#undef ZH_OP_KNOWN
        return true;
    }
    return false;
}

constexpr std::string_view OpName(Op op) {
    switch (op) {
#define ZH_OP_NAME(Name, number, name, ...) \
    case Op::k##Name:                       \
        return name;
        ZH_OPERATIONS(ZH_OP_NAME)
#undef ZH_OP_NAME
    }
    return "unknown";
}

// Whether libzerohop may send `op` again on a new session after a daemon restart.
constexpr bool IsRepeatable(Op op) {
    switch (op) {
#define ZH_OP_REPEAT(Name, number, name, Request, Result, access, repeat, shape) \
    case Op::k##Name:                                                            \
        return Repeat::repeat == Repeat::kRepeatable;
        ZH_OPERATIONS(ZH_OP_REPEAT)
#undef ZH_OP_REPEAT
    }
    return false;
}

// ---- descriptors --------------------------------------------------------------------------

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

// ---- the handshake ------------------------------------------------------------------------

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

// A failed request's result body: code and message.
struct WireStatus {
    absl::Status status;
};

// ---- encoding -----------------------------------------------------------------------------

// Encodes any message of this header or of zerohop/operations.h.
template <typename T>
std::string Encode(const T& msg);

// Decodes a whole message: trailing bytes are an error.
template <typename T>
absl::StatusOr<T> Decode(std::string_view bytes);

// Decodes a message at the front of `bytes`; `rest` is what follows (the object bytes of a
// put request and of a get result).
template <typename T>
absl::StatusOr<T> DecodePrefix(std::string_view bytes, std::string_view* rest);

}  // namespace zerohop::protocol

#include "wire/internal/layout.h"  // IWYU pragma: export

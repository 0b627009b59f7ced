#pragma once
// How every message of the session wire is laid out: one description per message, a list
// of its fields in wire order, from which both Encode and Decode come (included by
// wire/protocol.h; read that first).
//
// A field is encoded by its C++ type:
//   uint32_t, uint64_t   LEB128 varint (a uint32_t that does not fit is an error)
//   int64_t              fixed 8 bytes, little-endian
//   bool                 one byte, 0 or 1
//   enums                one byte, at most the enum's last value (kEnumMax)
//   std::string          varint length, then the bytes
//   Path                 as a string, and it must parse
//   AttributeMap         as a string holding EncodeAttributes' bytes, which must decode
//   Timestamp            fixed 8 bytes of seconds, fixed 4 of nanoseconds (< 10^9)
//   absl::Status         varint code (a known one), then the message as a string
//   std::optional<T>     a bool, then T if present
//   std::vector<T>       varint count (no more than the bytes left), then each T
//   a described message  its fields, in order
// and the wrappers below say what a type alone cannot (a magic number, a bound, bytes that
// run to the end of the message).

#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wire/codec.h"
#include "zerohop/operations.h"

namespace zerohop::protocol {

namespace layout {

// A fixed 4-byte number that must be kValue.
template <uint32_t kValue>
struct Magic {};

// A string of at most kMax bytes.
template <size_t kMax, typename S>
struct MaxBytes {
    S& s;
};
template <size_t kMax, typename S>
MaxBytes<kMax, S> Bounded(S& s) {
    return {s};
}

// A number below kLimit.
template <uint64_t kLimit, typename N>
struct Below {
    N& n;
};
template <uint64_t kLimit, typename N>
Below<kLimit, N> LessThan(N& n) {
    return {n};
}

// Raw bytes that run to the end of the message (a string_view into the decoded bytes).
template <typename S>
struct ToTheEnd {
    S& bytes;
};
template <typename S>
ToTheEnd<S> Rest(S& bytes) {
    return {bytes};
}

template <typename E>
inline constexpr uint8_t kEnumMax = 0;
template <>
inline constexpr uint8_t kEnumMax<ObjectType> = static_cast<uint8_t>(ObjectType::kSpecial);
template <>
inline constexpr uint8_t kEnumMax<SeekType> = static_cast<uint8_t>(SeekType::kTime);

// Describe(v, m) hands every field of message `m` to `v` in wire order.
#define ZH_MESSAGE(Type, ...)                                   \
    template <typename V, typename M>                           \
        requires std::same_as<std::remove_const_t<M>, Type>     \
    bool Describe(V& v, M& m) {                                 \
        return v(__VA_ARGS__);                                  \
    }

// ---- the messages ------------------------------------------------------------------------

ZH_MESSAGE(ObjectInfo, m.type, m.id, m.size, m.mode, m.uid, m.gid, m.mtime, m.ctime, m.last_sequence,
           m.symlink_target, m.special, m.rdev, m.subdirs, m.atime)
ZH_MESSAGE(StreamLocation, LessThan<kMaxShards>(m.shard), m.sequence)
ZH_MESSAGE(StreamRecord, m.shard, m.sequence, m.arrival, m.data, m.partition_key, m.client_info)
ZH_MESSAGE(RecordInput, m.data, m.shard, m.partition_key, m.client_info)
ZH_MESSAGE(RecordResult, m.status, m.shard, m.sequence)
ZH_MESSAGE(DirEntry, m.name, m.info, m.attributes)
ZH_MESSAGE(Item, m.name, m.info, m.attributes)
ZH_MESSAGE(StreamDescription, m.shard_count, m.retention_secs)
ZH_MESSAGE(Caller, m.uid, m.gid)

// The handshake and the daemon.
ZH_MESSAGE(Hello, Magic<kHelloMagic>{}, m.version, Bounded<kMaxAccessKeyBytes>(m.access_key), m.submit_entries,
           m.complete_entries, m.client_bytes, m.daemon_bytes)
ZH_MESSAGE(Welcome, m.status, m.version, m.session_id, m.max_in_flight)
ZH_MESSAGE(WireStatus, m.status)
ZH_MESSAGE(DaemonStatus, m.version, m.workers, m.sessions_open, m.sessions_total, m.sessions_refused, m.requests,
           m.request_errors, m.bad_descriptors, m.containers)
ZH_MESSAGE(DaemonInfo, m.version, m.socket, m.metrics)
ZH_MESSAGE(PublishVolumeRequest, m.scope_id, m.root, m.read_only, Bounded<kMaxAccessKeyBytes>(m.access_key),
           m.pod_namespace, m.pod_name, m.pod_uid, m.service_account)
ZH_MESSAGE(PublishedVolume, m.directory, m.socket)
ZH_MESSAGE(UnpublishVolumeRequest, m.scope_id)

// Requests and results.
ZH_MESSAGE(ListRequest, m.path, m.prefix, m.marker, m.limit, m.with_attributes)
ZH_MESSAGE(ListResult, m.entries, m.next_marker, m.truncated)
ZH_MESSAGE(MkdirRequest, m.path, m.mode, m.caller)
ZH_MESSAGE(RenameRequest, m.from, m.to, m.no_replace)
ZH_MESSAGE(SymlinkRequest, m.path, m.target, m.caller)
ZH_MESSAGE(MknodRequest, m.path, m.special, m.mode, m.rdev, m.caller)
ZH_MESSAGE(DeleteRequest, m.path, m.condition)
ZH_MESSAGE(SetMetadataRequest, m.path, m.mode, m.uid, m.gid, m.mtime, m.atime)
ZH_MESSAGE(GetObjectRequest, m.path, m.offset, m.length)
ZH_MESSAGE(GetObjectResult, m.info, m.bytes)
ZH_MESSAGE(ObjectFileAnswer, m.info, m.file_tag)
ZH_MESSAGE(PutObjectRequest, m.path, m.attributes, m.condition, m.mode, m.caller)
ZH_MESSAGE(WriteObjectRequest, m.path, m.offset, Rest(m.data))
ZH_MESSAGE(AppendRequest, m.path, Rest(m.data))
ZH_MESSAGE(TruncateRequest, m.path, m.size)
ZH_MESSAGE(GetItemRequest, m.path, m.attributes)
ZH_MESSAGE(GetItemsRequest, m.path, m.filter, m.attributes, m.marker, m.limit, m.segment, m.total_segments)
ZH_MESSAGE(GetItemsResult, m.items, m.next_marker, m.done)
ZH_MESSAGE(PutItemRequest, m.path, m.attributes, m.condition, m.caller)
ZH_MESSAGE(UpdateItemRequest, m.path, m.update, m.condition, m.else_update, m.caller)
ZH_MESSAGE(CreateStreamRequest, m.path, m.shard_count, m.retention_secs, m.caller)
ZH_MESSAGE(PutRecordsRequest, m.path, m.records)
ZH_MESSAGE(SeekRequest, m.path, m.shard, m.type, m.sequence, m.time)
ZH_MESSAGE(GetRecordsRequest, m.path, m.location, m.limit, m.max_bytes)
ZH_MESSAGE(GetRecordsResult, m.records, m.next, m.behind)

#undef ZH_MESSAGE

// ---- writing ------------------------------------------------------------------------------

class Writer {
public:
    explicit Writer(std::string* out) : w_(out) {}

    template <typename... F>
    bool operator()(const F&... fields) {
        (Put(fields), ...);
        return true;
    }

    void Put(uint32_t v) { w_.PutVarint(v); }
    void Put(uint64_t v) { w_.PutVarint(v); }
    void Put(int64_t v) { w_.PutFixed64(static_cast<uint64_t>(v)); }
    void Put(bool v) { w_.PutU8(v ? 1 : 0); }
    template <typename E>
        requires std::is_enum_v<E>
    void Put(E v) {
        w_.PutU8(static_cast<uint8_t>(v));
    }
    void Put(const std::string& s) { w_.PutBytes(s); }
    void Put(const Path& p) { w_.PutBytes(p.str()); }
    void Put(const AttributeMap& m) {
        std::string encoded;
        EncodeAttributes(m, &encoded);
        w_.PutBytes(encoded);
    }
    void Put(const Timestamp& t) {
        w_.PutFixed64(static_cast<uint64_t>(t.secs));
        w_.PutFixed32(static_cast<uint32_t>(t.nsecs));
    }
    void Put(const absl::Status& s) {
        w_.PutVarint(static_cast<uint64_t>(s.code()));
        w_.PutBytes(std::string_view(s.message().data(), s.message().size()));
    }
    template <typename T>
    void Put(const std::optional<T>& v) {
        Put(v.has_value());
        if (v) {
            Put(*v);
        }
    }
    template <typename T>
    void Put(const std::vector<T>& v) {
        w_.PutVarint(v.size());
        for (const T& x : v) {
            Put(x);
        }
    }
    template <uint32_t kValue>
    void Put(Magic<kValue>) {
        w_.PutFixed32(kValue);
    }
    template <size_t kMax, typename S>
    void Put(const MaxBytes<kMax, S>& f) {
        Put(f.s);
    }
    template <uint64_t kLimit, typename N>
    void Put(const Below<kLimit, N>& f) {
        Put(f.n);
    }
    template <typename S>
    void Put(const ToTheEnd<S>& f) {
        w_.PutRaw(f.bytes.data(), f.bytes.size());
    }
    template <typename M>
        requires requires(Writer& w, const M& m) { Describe(w, m); }
    void Put(const M& m) {
        Describe(*this, m);
    }

private:
    ByteWriter w_;
};

// ---- reading ------------------------------------------------------------------------------

class Reader {
public:
    explicit Reader(std::string_view in) : r_(in) {}

    template <typename... F>
    bool operator()(F&&... fields) {
        return (Get(fields) && ...);
    }

    bool Get(uint64_t& v) { return r_.GetVarint(&v); }
    bool Get(uint32_t& v) {
        uint64_t x;
        if (!r_.GetVarint(&x) || x > UINT32_MAX) {
            return false;
        }
        v = static_cast<uint32_t>(x);
        return true;
    }
    bool Get(int64_t& v) {
        uint64_t x;
        if (!r_.GetFixed64(&x)) {
            return false;
        }
        v = static_cast<int64_t>(x);
        return true;
    }
    bool Get(bool& v) {
        uint8_t b;
        if (!r_.GetU8(&b) || b > 1) {
            return false;
        }
        v = b == 1;
        return true;
    }
    template <typename E>
        requires std::is_enum_v<E>
    bool Get(E& v) {
        uint8_t b;
        if (!r_.GetU8(&b) || b > kEnumMax<E>) {
            return false;
        }
        v = static_cast<E>(b);
        return true;
    }
    bool Get(std::string& s) {
        std::string_view v;
        if (!r_.GetBytes(&v)) {
            return false;
        }
        s.assign(v.data(), v.size());
        return true;
    }
    bool Get(Path& p) {
        std::string_view v;
        if (!r_.GetBytes(&v)) {
            return false;
        }
        auto parsed = Path::Parse(v);
        if (!parsed.ok()) {
            return false;
        }
        p = std::move(*parsed);
        return true;
    }
    bool Get(AttributeMap& m) {
        std::string_view v;
        if (!r_.GetBytes(&v)) {
            return false;
        }
        auto decoded = DecodeAttributes(v);
        if (!decoded.ok()) {
            return false;
        }
        m = std::move(*decoded);
        return true;
    }
    bool Get(Timestamp& t) {
        uint64_t secs;
        uint32_t ns;
        if (!r_.GetFixed64(&secs) || !r_.GetFixed32(&ns) || ns >= 1'000'000'000u) {
            return false;
        }
        t.secs = static_cast<int64_t>(secs);
        t.nsecs = static_cast<int32_t>(ns);
        return true;
    }
    bool Get(absl::Status& s) {
        uint64_t code;
        std::string_view msg;
        if (!r_.GetVarint(&code) || code > static_cast<uint64_t>(absl::StatusCode::kUnauthenticated) ||
            !r_.GetBytes(&msg)) {
            return false;
        }
        s = absl::Status(static_cast<absl::StatusCode>(code), absl::string_view(msg.data(), msg.size()));
        return true;
    }
    template <typename T>
    bool Get(std::optional<T>& v) {
        bool present;
        if (!Get(present)) {
            return false;
        }
        if (!present) {
            v.reset();
            return true;
        }
        T x{};
        if (!Get(x)) {
            return false;
        }
        v = std::move(x);
        return true;
    }
    template <typename T>
    bool Get(std::vector<T>& v) {
        uint64_t n;
        if (!r_.GetVarint(&n) || n > r_.remaining()) {  // every element takes at least a byte
            return false;
        }
        v.clear();
        v.reserve(n);
        for (uint64_t i = 0; i < n; ++i) {
            T x{};
            if (!Get(x)) {
                return false;
            }
            v.push_back(std::move(x));
        }
        return true;
    }
    template <uint32_t kValue>
    bool Get(Magic<kValue>) {
        uint32_t v;
        return r_.GetFixed32(&v) && v == kValue;
    }
    template <size_t kMax, typename S>
    bool Get(const MaxBytes<kMax, S>& f) {
        return Get(f.s) && f.s.size() <= kMax;
    }
    template <uint64_t kLimit, typename N>
    bool Get(const Below<kLimit, N>& f) {
        return Get(f.n) && f.n < kLimit;
    }
    template <typename S>
    bool Get(const ToTheEnd<S>& f) {
        r_.GetRest(&f.bytes);
        return true;
    }
    template <typename M>
        requires requires(Reader& r, M& m) { Describe(r, m); }
    bool Get(M& m) {
        return Describe(*this, m);
    }

    std::string_view rest() const { return r_.rest(); }

private:
    ByteReader r_;
};

absl::Status MalformedBody(size_t bytes);
absl::Status TrailingBytes(size_t bytes);

}  // namespace layout

template <typename T>
std::string Encode(const T& msg) {
    std::string out;
    layout::Writer w(&out);
    w.Put(msg);
    return out;
}

template <typename T>
absl::StatusOr<T> DecodePrefix(std::string_view bytes, std::string_view* rest) {
    layout::Reader r(bytes);
    T msg{};
    if (!r.Get(msg)) {
        return layout::MalformedBody(bytes.size());
    }
    *rest = r.rest();
    return msg;
}

template <typename T>
absl::StatusOr<T> Decode(std::string_view bytes) {
    std::string_view rest;
    auto msg = DecodePrefix<T>(bytes, &rest);
    if (msg.ok() && !rest.empty()) {
        return layout::TrailingBytes(rest.size());
    }
    return msg;
}

}  // namespace zerohop::protocol

#include "embedded/internal/records.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "rocksdb/merge_operator.h"
#include "wire/codec.h"

namespace zerohop::embedded {

namespace {

// 2: the atime follows the ctime; 3: flags (kSizedByFile) follow the data id. Entries of
// versions 1 and 2 are still read.
constexpr uint8_t kEntryVersion = 3;
constexpr uint64_t kSizedByFile = 1;

std::string KeyWithId(char tag, uint64_t id) {
    std::string k(1, tag);
    ByteWriter(&k).PutBigEndian64(id);
    return k;
}

absl::Status Corrupt(std::string_view what) {
    return absl::DataLossError(absl::StrFormat("embedded store: corrupt %s record", what));
}

}  // namespace

std::string EntryKey(uint64_t parent, std::string_view name) {
    std::string k = KeyWithId('D', parent);
    k.append(name.data(), name.size());
    return k;
}

EntryKeyBuffer::EntryKeyBuffer(uint64_t parent, std::string_view name) {
    buf_[0] = 'D';
    for (int i = 0; i < 8; ++i) {
        buf_[1 + i] = static_cast<char>(parent >> (56 - 8 * i));
    }
    size_ = 9 + std::min(name.size(), sizeof buf_ - 9);  // names are at most 255 bytes
    std::memcpy(buf_ + 9, name.data(), size_ - 9);
}

std::string EntryPrefix(uint64_t parent, std::string_view name_prefix) { return EntryKey(parent, name_prefix); }
std::string FileKey(uint64_t data_id) { return KeyWithId('F', data_id); }
std::string ShardStateKey(uint64_t shard_id) { return KeyWithId('Q', shard_id); }
std::string DirStatsKey(uint64_t dir_id) { return KeyWithId('T', dir_id); }

std::string EncodeDirStats(const DirStats& d) {
    std::string out;
    ByteWriter w(&out);
    w.PutFixed64(static_cast<uint64_t>(d.mtime_ns));
    w.PutFixed64(static_cast<uint64_t>(d.ctime_ns));
    w.PutFixed64(static_cast<uint64_t>(d.subdirs));
    return out;
}

absl::StatusOr<DirStats> DecodeDirStats(std::string_view bytes) {
    ByteReader r(bytes);
    uint64_t m, c, n;
    if (bytes.size() != 24 || !r.GetFixed64(&m) || !r.GetFixed64(&c) || !r.GetFixed64(&n)) {
        return Corrupt("directory stats");
    }
    return DirStats{static_cast<int64_t>(m), static_cast<int64_t>(c), static_cast<int64_t>(n)};
}

DirStats MergeDirStats(const DirStats& earlier, const DirStats& later) {
    return {std::max(earlier.mtime_ns, later.mtime_ns), std::max(earlier.ctime_ns, later.ctime_ns),
            earlier.subdirs + later.subdirs};
}

std::string DataKey(uint64_t object_id) {
    std::string k;
    ByteWriter(&k).PutBigEndian64(object_id);
    return k;
}

std::string RecordKey(uint64_t shard_id, uint64_t sequence) {
    std::string k;
    ByteWriter w(&k);
    w.PutBigEndian64(shard_id);
    w.PutBigEndian64(sequence);
    return k;
}

Entry NewEntry(ObjectType type, uint64_t id, uint32_t mode, uint32_t uid, uint32_t gid, Timestamp now) {
    Entry e;
    e.info.type = type;
    e.info.id = id;
    e.info.mode = mode & 07777;
    e.info.uid = uid;
    e.info.gid = gid;
    e.info.mtime = e.info.ctime = e.info.atime = now;
    return e;
}

std::string EncodeEntry(const Entry& e) {
    std::string out;
    out.reserve(64 + e.attributes.size());
    ByteWriter w(&out);
    w.PutU8(kEntryVersion);
    w.PutU8(static_cast<uint8_t>(e.info.type));
    w.PutVarint(e.info.id);
    w.PutVarint(e.info.size);
    w.PutVarint(e.info.mode);
    w.PutVarint(e.info.uid);
    w.PutVarint(e.info.gid);
    w.PutFixed64(static_cast<uint64_t>(e.info.mtime.ToNanos()));
    w.PutFixed64(static_cast<uint64_t>(e.info.ctime.ToNanos()));
    w.PutFixed64(static_cast<uint64_t>(e.info.atime.ToNanos()));
    w.PutVarint(e.data_id);
    w.PutVarint(e.sized_by_file ? kSizedByFile : 0);
    switch (e.info.type) {
        case ObjectType::kSymlink: w.PutBytes(e.info.symlink_target); break;
        case ObjectType::kStream:
            w.PutVarint(e.shard_count);
            w.PutVarint(static_cast<uint64_t>(e.retention_secs));
            break;
        case ObjectType::kSpecial:
            w.PutVarint(e.info.special);
            w.PutVarint(e.info.rdev);
            break;
        default: break;
    }
    out.append(e.attributes);
    return out;
}

absl::Status DecodeEntryHeader(std::string_view bytes, Entry* e, std::string_view* attributes) {
    ByteReader r(bytes);
    uint8_t version, type;
    uint64_t id, size, mode, uid, gid, mtime, ctime, atime = 0, data_id, flags = 0;
    if (!r.GetU8(&version) || version < 1 || version > kEntryVersion || !r.GetU8(&type) ||
        type > static_cast<uint8_t>(ObjectType::kSpecial) || !r.GetVarint(&id) || !r.GetVarint(&size) ||
        !r.GetVarint(&mode) || !r.GetVarint(&uid) || !r.GetVarint(&gid) || !r.GetFixed64(&mtime) ||
        !r.GetFixed64(&ctime) || (version >= 2 && !r.GetFixed64(&atime)) || !r.GetVarint(&data_id) ||
        (version >= 3 && !r.GetVarint(&flags))) {
        return Corrupt("entry");
    }
    e->info.type = static_cast<ObjectType>(type);
    e->info.id = id;
    e->info.size = size;
    e->info.mode = static_cast<uint32_t>(mode);
    e->info.uid = static_cast<uint32_t>(uid);
    e->info.gid = static_cast<uint32_t>(gid);
    e->info.mtime = Timestamp::FromNanos(static_cast<int64_t>(mtime));
    e->info.ctime = Timestamp::FromNanos(static_cast<int64_t>(ctime));
    e->info.atime = version >= 2 ? Timestamp::FromNanos(static_cast<int64_t>(atime)) : e->info.mtime;
    e->data_id = data_id;
    e->sized_by_file = (flags & kSizedByFile) != 0 && data_id != 0;
    if (e->info.type == ObjectType::kSymlink) {
        std::string_view target;
        if (!r.GetBytes(&target)) {
            return Corrupt("symlink entry");
        }
        e->info.symlink_target.assign(target.data(), target.size());
    } else if (e->info.type == ObjectType::kStream) {
        uint64_t shards, retention;
        if (!r.GetVarint(&shards) || !r.GetVarint(&retention)) {
            return Corrupt("stream entry");
        }
        e->shard_count = static_cast<uint32_t>(shards);
        e->retention_secs = static_cast<int64_t>(retention);
    } else if (e->info.type == ObjectType::kSpecial) {
        uint64_t special;
        if (!r.GetVarint(&special) || !r.GetVarint(&e->info.rdev)) {
            return Corrupt("special entry");
        }
        e->info.special = static_cast<uint32_t>(special);
    }
    *attributes = r.rest();
    return absl::OkStatus();
}

absl::StatusOr<Entry> DecodeEntry(std::string_view bytes) {
    Entry e;
    std::string_view attrs;
    ZH_RETURN_IF_ERROR(DecodeEntryHeader(bytes, &e, &attrs));
    e.attributes.assign(attrs.data(), attrs.size());
    return e;
}

std::string EncodeShardState(const ShardState& s) {
    std::string out;
    ByteWriter w(&out);
    w.PutVarint(s.first_sequence);
    w.PutVarint(s.last_sequence);
    w.PutFixed64(static_cast<uint64_t>(s.last_arrival_ns));
    w.PutVarint(static_cast<uint64_t>(s.retention_secs));
    return out;
}

absl::StatusOr<ShardState> DecodeShardState(std::string_view bytes) {
    ByteReader r(bytes);
    ShardState s;
    uint64_t arrival, retention;
    if (!r.GetVarint(&s.first_sequence) || !r.GetVarint(&s.last_sequence) || !r.GetFixed64(&arrival) ||
        !r.GetVarint(&retention)) {
        return Corrupt("shard state");
    }
    s.last_arrival_ns = static_cast<int64_t>(arrival);
    s.retention_secs = static_cast<int64_t>(retention);
    return s;
}

std::string EncodeRecord(int64_t arrival_ns, std::string_view partition_key, std::string_view client_info,
                         std::string_view data) {
    std::string out;
    out.reserve(16 + partition_key.size() + client_info.size() + data.size());
    ByteWriter w(&out);
    w.PutFixed64(static_cast<uint64_t>(arrival_ns));
    w.PutBytes(partition_key);
    w.PutBytes(client_info);
    out.append(data.data(), data.size());
    return out;
}

absl::Status DecodeRecord(std::string_view bytes, int64_t* arrival_ns, std::string_view* partition_key,
                          std::string_view* client_info, std::string_view* data) {
    ByteReader r(bytes);
    uint64_t arrival;
    if (!r.GetFixed64(&arrival) || !r.GetBytes(partition_key) || !r.GetBytes(client_info)) {
        return Corrupt("stream record");
    }
    *arrival_ns = static_cast<int64_t>(arrival);
    *data = r.rest();
    return absl::OkStatus();
}

absl::StatusOr<int64_t> DecodeRecordArrival(std::string_view bytes) {
    ByteReader r(bytes);
    uint64_t arrival;
    if (!r.GetFixed64(&arrival)) {
        return Corrupt("stream record");
    }
    return static_cast<int64_t>(arrival);
}

namespace {

// The "T" records' merge: the later times, the counts added. A record that does not decode
// fails the merge (the read then reports corruption).
class DirStatsMerge : public rocksdb::AssociativeMergeOperator {
public:
    bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* merged,
               rocksdb::Logger*) const override {
        auto later = DecodeDirStats(std::string_view(value.data(), value.size()));
        if (!later.ok()) {
            return false;
        }
        if (existing == nullptr) {
            *merged = EncodeDirStats(*later);
            return true;
        }
        auto earlier = DecodeDirStats(std::string_view(existing->data(), existing->size()));
        if (!earlier.ok()) {
            return false;
        }
        *merged = EncodeDirStats(MergeDirStats(*earlier, *later));
        return true;
    }
    const char* Name() const override { return "zerohop.DirStats"; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewDirStatsMerge() { return std::make_shared<DirStatsMerge>(); }

}  // namespace zerohop::embedded

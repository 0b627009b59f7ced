#pragma once
// How the redis backend lays the namespace out in Redis (docs/REDIS.md has the table):
// every key of a container carries its hash tag, entries are hashes (a version, a type
// code, an id, the meta fields "mode uid gid mtime ctime size", attributes, bytes or a
// chunk manifest), a directory's names are 16 sorted sets, and every change is one
// optimistic transaction (Txn) committed by a script.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "redis/redis_client.h"
#include "zerohop/object.h"
#include "zerohop/path.h"

namespace zerohop::redis {

inline constexpr int kMaxAttempts = 1000;
inline constexpr char kRetry[] = "retry";  // (an Aborted that never leaves the backend)
inline constexpr size_t kScanBatch = 256;
// A directory's index is split over this many sorted sets by a stable hash of the name, so
// that a table of millions of items is not one giant key (the scripts above count to 15).
inline constexpr uint32_t kIndexBuckets = 16;


// An entry's type as one letter in its hash, and back.
char TypeCode(ObjectType t);
std::optional<ObjectType> TypeOf(std::string_view code);
uint64_t ToU64(std::string_view s);  // 0 unless a number
// A directory's count of subdirectories (field "n"; absent in directories made before it
// was kept, and never below zero).
uint64_t Subdirs(std::string_view n);
// A directory's field "tm": "<mtime secs> <ns> <ctime secs> <ns>" of its last entry change.
std::string DirTimes(Timestamp now);
// Reads `tm` over a directory's meta times (mtime from it, ctime the later of the two).
void ApplyDirTimes(std::string_view tm, ObjectInfo* info);
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
// DataLoss: what was read is not what this backend writes.
absl::Status Damaged(std::string_view what);

// An entry as stored: its hash fields, and what they mean.
struct Entry {
    std::map<std::string, std::string> fields;  // everything but "v"
    std::string key;
    std::string version;
    ObjectInfo info;
    uint32_t shard_count = 0;
    int64_t retention_secs = 0;

    bool is_dir_like() const { return info.type == ObjectType::kDirectory || info.type == ObjectType::kStream; }
    const std::string& Field(const std::string& name) const {
        static const std::string kEmpty;
        auto it = fields.find(name);
        return it == fields.end() ? kEmpty : it->second;
    }
};

std::string EncodeMeta(const ObjectInfo& i);
// EncodeMeta's fields back into `info`; false when they are not eight numbers.
bool DecodeMeta(std::string_view meta, ObjectInfo* info);
// An entry from its HGETALL reply (field, value, field, value, ...).
absl::StatusOr<Entry> DecodeEntry(std::string key, const std::vector<Reply>& flat);

// One optimistic transaction: what it read (checked unchanged at commit) and what it writes.
class Txn {
public:
    explicit Txn(std::string version_key) { keys_.push_back(std::move(version_key)); }

    int Key(const std::string& k) {
        for (size_t i = 0; i < keys_.size(); ++i) {
            if (keys_[i] == k) {
                return static_cast<int>(i) + 1;
            }
        }
        keys_.push_back(k);
        return static_cast<int>(keys_.size());
    }
    // The entry `key` still has `version` ("" = still absent).
    int CheckVersion(const std::string& key, const std::string& version) {
        checks_.insert(checks_.end(), {std::to_string(Key(key)), "v", version});
        return ++nchecks_;
    }
    // The directory whose index buckets start with `index_prefix` is empty.
    int CheckEmpty(const std::string& index_prefix) {
        checks_.insert(checks_.end(), {"1", "e", index_prefix});
        return ++nchecks_;
    }
    void Replace(const std::string& key, const std::map<std::string, std::string>& fields) { Hash("h", key, fields); }
    void Update(const std::string& key, const std::map<std::string, std::string>& fields) { Hash("u", key, fields); }
    void Del(const std::string& key) {
        ops_.insert(ops_.end(), {"d", std::to_string(Key(key))});
        ++nops_;
    }
    void ZAdd(const std::string& index, const std::string& member) {
        ops_.insert(ops_.end(), {"za", std::to_string(Key(index)), member});
        ++nops_;
    }
    void ZRem(const std::string& index, const std::string& member) {
        ops_.insert(ops_.end(), {"zr", std::to_string(Key(index)), member});
        ++nops_;
    }

    // The count of subdirectories kept in the directory's hash `dir_key` (field "n") moves
    // by `delta` (without a new version: concurrent changes inside it do not conflict).
    void AddSubdirs(const std::string& dir_key, int delta) {
        ops_.insert(ops_.end(), {"n", std::to_string(Key(dir_key)), std::to_string(delta)});
        ++nops_;
    }
    // An entry was added to or removed from the directory whose hash is `dir_key`: its times
    // (field "tm", DirTimes) without a new version; "" removes them (folded into its meta).
    void TouchDir(const std::string& dir_key, const std::string& times) {
        ops_.insert(ops_.end(), {"t", std::to_string(Key(dir_key)), times});
        ++nops_;
    }
    // The count of `from` is given to `to` (a directory's hash moving to another key).
    void MoveSubdirs(const std::string& from, const std::string& to) {
        ops_.insert(ops_.end(), {"nm", std::to_string(Key(from)), std::to_string(Key(to))});
        ++nops_;
    }

    std::vector<std::string> Args() const {
        std::vector<std::string> out = {std::to_string(nchecks_)};
        out.insert(out.end(), checks_.begin(), checks_.end());
        out.push_back(std::to_string(nops_));
        out.insert(out.end(), ops_.begin(), ops_.end());
        return out;
    }
    const std::vector<std::string>& keys() const { return keys_; }

private:
    void Hash(const char* kind, const std::string& key, const std::map<std::string, std::string>& fields) {
        ops_.insert(ops_.end(), {kind, std::to_string(Key(key)), std::to_string(fields.size())});
        for (const auto& [f, v] : fields) {
            ops_.push_back(f);
            ops_.push_back(v);
        }
        ++nops_;
    }

    std::vector<std::string> keys_;
    std::vector<std::string> checks_, ops_;
    int nchecks_ = 0, nops_ = 0;
};

}  // namespace zerohop::redis

#pragma once
// DirCache: directory paths already resolved to their ids, so that a lookup of
// /c/table/item costs one RocksDB read instead of one per path component.
//
// Removing or moving a directory (rmdir, rename of a directory or stream, delete_stream)
// bumps an epoch after its commit; entries resolved before the bump are ignored. A reader
// takes the epoch before it resolves, so what it inserts is never newer than it claims.
// Creating directories needs no bump: misses are not cached.
//
//   uint64_t epoch = cache.epoch();
//   if (auto d = cache.Find("/c/table")) { ... } else { resolve; cache.Insert("/c/table", dir, epoch); }

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "zerohop/object.h"

namespace zerohop::embedded {

class DirCache {
public:
    struct Dir {
        uint64_t grandparent = 0;  // id of the directory holding this one's entry
        uint64_t id = 0;
        ObjectType type = ObjectType::kDirectory;
    };

    uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }

    std::optional<Dir> Find(std::string_view path) const {
        const Shard& s = shards_[ShardOf(path)];
        uint64_t now = epoch();
        absl::ReaderMutexLock lock(&s.mu);
        auto it = s.map.find(absl::string_view(path.data(), path.size()));
        if (it == s.map.end() || it->second.epoch != now) {
            return std::nullopt;
        }
        return it->second.dir;
    }

    void Insert(std::string_view path, const Dir& dir, uint64_t epoch_seen) {
        if (epoch_seen != epoch()) {
            return;
        }
        Shard& s = shards_[ShardOf(path)];
        absl::MutexLock lock(&s.mu);
        if (s.map.size() >= kMaxPerShard) {
            s.map.clear();  // crude but bounded; directories are few next to items
        }
        s.map.insert_or_assign(std::string(path), Slot{dir, epoch_seen});
    }

    // Call after committing a change that removes or moves a directory.
    void Invalidate() { epoch_.fetch_add(1, std::memory_order_acq_rel); }

private:
    static constexpr size_t kShards = 16;
    static constexpr size_t kMaxPerShard = 8192;
    struct Slot {
        Dir dir;
        uint64_t epoch;
    };
    struct Shard {
        mutable absl::Mutex mu;
        absl::flat_hash_map<std::string, Slot> map;
    };
    static size_t ShardOf(std::string_view path) {
        return absl::HashOf(absl::string_view(path.data(), path.size())) % kShards;
    }

    std::atomic<uint64_t> epoch_{0};
    std::array<Shard, kShards> shards_;
};

}  // namespace zerohop::embedded

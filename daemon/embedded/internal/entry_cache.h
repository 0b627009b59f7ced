#pragma once
// EntryCache: recently read directory entries, so that a hot get_item skips RocksDB.
//
// Every commit invalidates the entry keys it wrote before the write is acknowledged (the
// store calls Invalidate for each key of the batch). A reader that missed takes the shard's
// generation before reading RocksDB and inserts what it read only if no invalidation of that
// shard happened meanwhile, so a value read before a commit is never cached after it.
//
//   uint64_t gen = cache.Generation(key);
//   if (auto hit = cache.Find(key)) { ... } else { read; cache.Insert(key, value, gen); }

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"

namespace zerohop::embedded {

class EntryCache {
public:
    explicit EntryCache(size_t capacity_bytes) : per_shard_(capacity_bytes / kShards) {}

    bool enabled() const { return per_shard_ > 0; }

    uint64_t Generation(std::string_view key) const {
        const Shard& s = shards_[ShardOf(key)];
        absl::MutexLock lock(&s.mu);
        return s.generation;
    }

    // Copies the cached value into `out`; false on a miss.
    bool Find(std::string_view key, std::string* out) const {
        const Shard& s = shards_[ShardOf(key)];
        absl::MutexLock lock(&s.mu);
        auto it = s.map.find(absl::string_view(key.data(), key.size()));
        if (it == s.map.end()) {
            return false;
        }
        out->assign(it->second);
        return true;
    }

    void Insert(std::string_view key, std::string_view value, uint64_t generation) {
        Shard& s = shards_[ShardOf(key)];
        absl::MutexLock lock(&s.mu);
        if (s.generation != generation || value.size() > per_shard_ / 16) {
            return;
        }
        if (s.bytes + key.size() + value.size() > per_shard_) {
            s.map.clear();  // crude but bounded: hot entries come straight back
            s.bytes = 0;
        }
        auto [it, fresh] = s.map.try_emplace(std::string(key), value);
        if (fresh) {
            s.bytes += key.size() + value.size();
        }
    }

    // Call after a commit that wrote or deleted `key`, before acknowledging it.
    void Invalidate(std::string_view key) {
        Shard& s = shards_[ShardOf(key)];
        absl::MutexLock lock(&s.mu);
        ++s.generation;
        auto it = s.map.find(absl::string_view(key.data(), key.size()));
        if (it != s.map.end()) {
            s.bytes -= it->first.size() + it->second.size();
            s.map.erase(it);
        }
    }

private:
    static constexpr size_t kShards = 64;
    struct Shard {
        mutable absl::Mutex mu;
        absl::flat_hash_map<std::string, std::string> map;
        size_t bytes = 0;
        uint64_t generation = 0;
    };
    static size_t ShardOf(std::string_view key) {
        return absl::HashOf(absl::string_view(key.data(), key.size())) % kShards;
    }

    size_t per_shard_;
    std::array<Shard, kShards> shards_;
};

}  // namespace zerohop::embedded

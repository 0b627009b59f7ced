#pragma once
// EntryCache: recently read directory entries, so that a hot get_item skips RocksDB.
//
// A commit brackets its write with BeginWrite and EndWrite for each entry key it writes (the
// store calls them for every key of the batch): while a write is under way on a shard
// nothing is inserted there, and its end bumps the shard's generation. A reader that missed
// takes the generation before reading RocksDB and inserts what it read only if it is still
// the same and no write is under way, so a value read before a commit is never cached after
// it (a slow reader of the old value cannot slip it in between the write and its end).
//
//   uint64_t gen = cache.Generation(key);
//   if (cache.Find(key, &v)) { ... } else { read; cache.Insert(key, value, gen); }
//   cache.BeginWrite(key); write; cache.EndWrite(key);

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
        if (s.generation != generation || s.writing > 0 || value.size() > per_shard_ / 16) {
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

    // Before a commit writes or deletes `key`.
    void BeginWrite(std::string_view key) { Change(key, +1); }
    // After it, whatever its outcome, before acknowledging it.
    void EndWrite(std::string_view key) { Change(key, -1); }

private:
    static constexpr size_t kShards = 64;
    struct Shard {
        mutable absl::Mutex mu;
        absl::flat_hash_map<std::string, std::string> map;
        size_t bytes = 0;
        uint64_t generation = 0;
        int writing = 0;  // commits under way on this shard
    };

    void Change(std::string_view key, int writing) {
        Shard& s = shards_[ShardOf(key)];
        absl::MutexLock lock(&s.mu);
        s.writing += writing;
        ++s.generation;
        auto it = s.map.find(absl::string_view(key.data(), key.size()));
        if (it != s.map.end()) {
            s.bytes -= it->first.size() + it->second.size();
            s.map.erase(it);
        }
    }
    static size_t ShardOf(std::string_view key) {
        return absl::HashOf(absl::string_view(key.data(), key.size())) % kShards;
    }

    size_t per_shard_;
    std::array<Shard, kShards> shards_;
};

}  // namespace zerohop::embedded

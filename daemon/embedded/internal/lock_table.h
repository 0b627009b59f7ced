#pragma once
// Striped reader/writer locks on directory entries, taken in one global order.
//
// An operation names every entry it touches (by parent id and name) and whether it
// changes it; LockSet sorts the stripes, merges duplicates (a writer wins) and locks them
// in ascending order, so two operations can never deadlock and one never locks a stripe
// twice.
//
//   LockSet locks(&table, {{parent, name, LockMode::kExclusive},
//                          {grandparent, parent_name, LockMode::kShared}});

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"

namespace zerohop::embedded {

enum class LockMode : uint8_t { kShared, kExclusive };

struct LockTarget {
    uint64_t parent;
    std::string_view name;
    LockMode mode;
};

class LockTable {
public:
    static constexpr size_t kStripes = 4096;

    size_t StripeOf(uint64_t parent, std::string_view name) const {
        return absl::HashOf(parent, absl::string_view(name.data(), name.size())) % kStripes;
    }
    absl::Mutex& stripe(size_t i) { return stripes_[i]; }

private:
    std::array<absl::Mutex, kStripes> stripes_;
};

class LockSet {
public:
    static constexpr size_t kMaxTargets = 4;

    LockSet(LockTable* table, std::initializer_list<LockTarget> targets) : table_(table) {
        for (const LockTarget& t : targets) {
            Add(table->StripeOf(t.parent, t.name), t.mode == LockMode::kExclusive);
        }
        // Insertion sort: at most four entries.
        for (size_t i = 1; i < n_; ++i) {
            for (size_t j = i; j > 0 && held_[j].stripe < held_[j - 1].stripe; --j) {
                std::swap(held_[j], held_[j - 1]);
            }
        }
        for (size_t i = 0; i < n_; ++i) {
            absl::Mutex& mu = table_->stripe(held_[i].stripe);
            if (held_[i].exclusive) {
                mu.Lock();
            } else {
                mu.ReaderLock();
            }
        }
    }
    ~LockSet() {
        for (size_t i = n_; i-- > 0;) {
            absl::Mutex& mu = table_->stripe(held_[i].stripe);
            if (held_[i].exclusive) {
                mu.Unlock();
            } else {
                mu.ReaderUnlock();
            }
        }
    }
    LockSet(const LockSet&) = delete;
    LockSet& operator=(const LockSet&) = delete;

private:
    struct Held {
        size_t stripe;
        bool exclusive;
    };
    void Add(size_t stripe, bool exclusive) {
        for (size_t i = 0; i < n_; ++i) {
            if (held_[i].stripe == stripe) {
                held_[i].exclusive |= exclusive;
                return;
            }
        }
        held_[n_++] = Held{stripe, exclusive};
    }

    LockTable* table_;
    std::array<Held, kMaxTargets> held_{};
    size_t n_ = 0;
};

}  // namespace zerohop::embedded

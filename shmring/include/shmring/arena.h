#pragma once
// Allocation of a shared buffer region by the one side that owns it.
//
// The region's bytes are shared; this allocator's state is not: it lives in the owner's
// private memory, so the peer cannot corrupt it. Buffers are runs of 256-byte granules.
// Free() takes only an offset and checks it against the allocations it made, so a peer
// that hands back a wrong or already-freed offset gets an error, never a double free.
//
//   RegionAllocator alloc(64 << 20);
//   auto off = alloc.Allocate(5000);        // offset into the region, or nullopt when full
//   ...
//   alloc.Free(*off);                       // false if `off` is not a live allocation

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/btree_map.h"

namespace shmring {

class RegionAllocator {
public:
    static constexpr uint64_t kGranule = 256;

    explicit RegionAllocator(uint64_t region_bytes);

    std::optional<uint64_t> Allocate(uint64_t bytes);
    // The size that was allocated at `offset`, freeing it; nullopt if `offset` is not live.
    std::optional<uint64_t> Free(uint64_t offset);
    // Whether [offset, offset + bytes) lies inside one live allocation.
    bool Contains(uint64_t offset, uint64_t bytes) const;

    uint64_t capacity() const { return granules_ * kGranule; }
    uint64_t used() const { return used_granules_ * kGranule; }
    size_t live() const { return live_.size(); }

private:
    bool IsFree(uint64_t g) const { return (bits_[g / 64] & (uint64_t{1} << (g % 64))) == 0; }
    void Mark(uint64_t first, uint64_t n, bool used);

    uint64_t granules_;
    std::vector<uint64_t> bits_;  // 1 = in use
    uint64_t hint_ = 0;           // next-fit start
    uint64_t used_granules_ = 0;
    absl::btree_map<uint64_t, uint64_t> live_;  // first granule -> granule count
};

}  // namespace shmring

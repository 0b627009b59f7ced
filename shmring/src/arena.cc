#include "shmring/arena.h"

#include <algorithm>

namespace shmring {

RegionAllocator::RegionAllocator(uint64_t region_bytes)
    : granules_(region_bytes / kGranule), bits_((granules_ + 63) / 64, 0) {
    // Granules past the end of the region in the last word are never handed out.
    for (uint64_t g = granules_; g < bits_.size() * 64; ++g) {
        bits_[g / 64] |= uint64_t{1} << (g % 64);
    }
}

void RegionAllocator::Mark(uint64_t first, uint64_t n, bool used) {
    for (uint64_t g = first; g < first + n; ++g) {
        if (used) {
            bits_[g / 64] |= uint64_t{1} << (g % 64);
        } else {
            bits_[g / 64] &= ~(uint64_t{1} << (g % 64));
        }
    }
}

std::optional<uint64_t> RegionAllocator::Allocate(uint64_t bytes) {
    uint64_t need = bytes == 0 ? 1 : (bytes + kGranule - 1) / kGranule;
    if (need > granules_ - used_granules_) {
        return std::nullopt;
    }
    // Next fit from the hint, wrapping once; whole used words are skipped 64 at a time.
    for (int pass = 0; pass < 2; ++pass) {
        uint64_t g = pass == 0 ? hint_ : 0;
        uint64_t end = pass == 0 ? granules_ : std::min(hint_ + need, granules_);
        while (g + need <= end) {
            if (g % 64 == 0 && bits_[g / 64] == ~uint64_t{0}) {
                g += 64;
                continue;
            }
            if (!IsFree(g)) {
                ++g;
                continue;
            }
            uint64_t run = 1;
            while (run < need && IsFree(g + run)) {
                ++run;
            }
            if (run == need) {
                Mark(g, need, true);
                used_granules_ += need;
                live_.emplace(g, need);
                hint_ = g + need == granules_ ? 0 : g + need;
                return g * kGranule;
            }
            g += run + 1;
        }
    }
    return std::nullopt;
}

std::optional<uint64_t> RegionAllocator::Free(uint64_t offset) {
    if (offset % kGranule != 0) {
        return std::nullopt;
    }
    auto it = live_.find(offset / kGranule);
    if (it == live_.end()) {
        return std::nullopt;
    }
    uint64_t n = it->second;
    Mark(it->first, n, false);
    used_granules_ -= n;
    live_.erase(it);
    return n * kGranule;
}

bool RegionAllocator::Contains(uint64_t offset, uint64_t bytes) const {
    auto it = live_.upper_bound(offset / kGranule);
    if (it == live_.begin()) {
        return false;
    }
    --it;
    uint64_t end = (it->first + it->second) * kGranule;
    return offset < end && bytes <= end - offset;
}

}  // namespace shmring

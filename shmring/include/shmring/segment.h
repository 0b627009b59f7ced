#pragma once
// A session segment: one sealed memfd holding a header, a submission ring, a completion
// ring and two buffer regions (one owned by each side).
//
// The creator (the daemon) computes the layout, creates and seals the memfd (it can never
// shrink, so the peer cannot make the creator fault) and keeps its own copy of the layout:
// it never reads offsets or sizes back from shared memory. The peer maps the fd it was
// sent and reads the layout from the header (it trusts its creator).
//
//   auto layout = SegmentLayout::Compute({.submit_entries = 256, .complete_entries = 256,
//                                         .slot_payload = 64, .client_bytes = 32 << 20,
//                                         .daemon_bytes = 32 << 20});
//   auto seg = Segment::Create(*layout, "zerohop-session");
//   ... send seg->fd() ...
//   auto peer = Segment::Map(std::move(received_fd));

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "shmring/ring.h"
#include "shmring/unique_fd.h"

namespace shmring {

inline constexpr uint64_t kSegmentMagic = 0x3130306e72687a7aull;  // "zzhrn001"
inline constexpr uint32_t kSegmentVersion = 1;

struct SegmentShape {
    uint32_t submit_entries = 256;    // power of two
    uint32_t complete_entries = 256;  // power of two
    uint32_t slot_payload = 64;       // bytes of one descriptor, multiple of 8
    uint64_t client_bytes = 32 << 20;
    uint64_t daemon_bytes = 32 << 20;
};

struct RingLayout {
    uint64_t offset = 0;
    uint32_t capacity = 0;
    uint32_t payload = 0;
};

struct RegionLayout {
    uint64_t offset = 0;
    uint64_t size = 0;
};

struct SegmentLayout {
    uint64_t total_size = 0;
    RingLayout submit;
    RingLayout complete;
    RegionLayout client_region;
    RegionLayout daemon_region;

    static absl::StatusOr<SegmentLayout> Compute(const SegmentShape& shape);
};

// At offset 0 of the segment. Each field is written by one side only, as noted.
struct alignas(64) SegmentHeader {
    uint64_t magic;                          // creator, once
    uint32_t version;                        // creator, once
    uint32_t pad0;
    SegmentLayout layout;                    // creator, once; informative for the peer
    alignas(64) uint64_t submit_tail;        // peer threads (shared producers)
    alignas(64) uint64_t complete_head;      // peer threads (shared consumers)
    alignas(64) uint32_t creator_sleeping;   // creator: 1 while it may sleep; ring its doorbell
    alignas(64) uint32_t complete_futex;     // creator: bumped after completions, a futex word
    uint32_t peer_waiting;                   // peer: how many threads may sleep on complete_futex
};

class Segment {
public:
    static absl::StatusOr<Segment> Create(const SegmentLayout& layout, const char* name);
    // Maps a segment received from its creator, checking its size and header.
    static absl::StatusOr<Segment> Map(UniqueFd fd);

    Segment(Segment&& o) noexcept;
    Segment& operator=(Segment&& o) noexcept;
    ~Segment();

    char* base() const { return base_; }
    size_t size() const { return layout_.total_size; }
    int fd() const { return fd_.get(); }
    SegmentHeader* header() const { return reinterpret_cast<SegmentHeader*>(base_); }
    const SegmentLayout& layout() const { return layout_; }

    RingSlots submit_ring() const {
        return RingSlots(base_ + layout_.submit.offset, layout_.submit.capacity, layout_.submit.payload);
    }
    RingSlots complete_ring() const {
        return RingSlots(base_ + layout_.complete.offset, layout_.complete.capacity, layout_.complete.payload);
    }
    char* client_region() const { return base_ + layout_.client_region.offset; }
    char* daemon_region() const { return base_ + layout_.daemon_region.offset; }

private:
    Segment(UniqueFd fd, char* base, const SegmentLayout& layout) : fd_(std::move(fd)), base_(base), layout_(layout) {}
    void Unmap();

    UniqueFd fd_;
    char* base_ = nullptr;
    SegmentLayout layout_;
};

}  // namespace shmring

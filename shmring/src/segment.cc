#include "shmring/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "absl/strings/str_format.h"

namespace shmring {

namespace {

constexpr uint64_t kAlign = 4096;
constexpr uint64_t kMaxRegion = uint64_t{1} << 36;  // 64 GiB: a sanity bound, not a policy
constexpr uint32_t kMaxEntries = 1 << 20;

uint64_t AlignUp(uint64_t v) { return (v + kAlign - 1) & ~(kAlign - 1); }

absl::Status Errno(std::string_view what) {
    return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

}  // namespace

absl::StatusOr<SegmentLayout> SegmentLayout::Compute(const SegmentShape& s) {
    if (!RingSlots::ValidShape(s.submit_entries, s.slot_payload) ||
        !RingSlots::ValidShape(s.complete_entries, s.slot_payload) || s.submit_entries > kMaxEntries ||
        s.complete_entries > kMaxEntries) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "ring shape: entries must be powers of two in 2..%d and the slot payload a positive multiple of 8 "
            "(got %d, %d, %d)",
            kMaxEntries, s.submit_entries, s.complete_entries, s.slot_payload));
    }
    if (s.client_bytes > kMaxRegion || s.daemon_bytes > kMaxRegion) {
        return absl::InvalidArgumentError("buffer region larger than 64 GiB");
    }
    SegmentLayout l;
    uint64_t at = AlignUp(sizeof(SegmentHeader));
    l.submit = {at, s.submit_entries, s.slot_payload};
    at = AlignUp(at + RingSlots::BytesFor(s.submit_entries, s.slot_payload));
    l.complete = {at, s.complete_entries, s.slot_payload};
    at = AlignUp(at + RingSlots::BytesFor(s.complete_entries, s.slot_payload));
    l.client_region = {at, AlignUp(s.client_bytes)};
    at += l.client_region.size;
    l.daemon_region = {at, AlignUp(s.daemon_bytes)};
    at += l.daemon_region.size;
    l.total_size = at;
    return l;
}

absl::StatusOr<Segment> Segment::Create(const SegmentLayout& layout, const char* name) {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd.valid()) {
        return Errno("memfd_create");
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(layout.total_size)) != 0) {
        return errno == ENOSPC || errno == ENOMEM
                   ? absl::ResourceExhaustedError(absl::StrFormat("segment of %d bytes: %s", layout.total_size,
                                                                  strerror(errno)))
                   : Errno("ftruncate segment");
    }
    // The peer can never shrink or grow it: a shrink would make our accesses fault.
    if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        return Errno("seal segment");
    }
    void* p = ::mmap(nullptr, layout.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) {
        return errno == ENOMEM ? absl::ResourceExhaustedError("mmap segment: out of memory") : Errno("mmap segment");
    }
    char* base = static_cast<char*>(p);
    auto* h = new (base) SegmentHeader{};
    h->magic = kSegmentMagic;
    h->version = kSegmentVersion;
    h->layout = layout;
    Segment seg(std::move(fd), base, layout);
    seg.submit_ring().Initialize();
    seg.complete_ring().Initialize();
    return seg;
}

absl::StatusOr<Segment> Segment::Map(UniqueFd fd) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
        return Errno("fstat segment");
    }
    if (static_cast<uint64_t>(st.st_size) < sizeof(SegmentHeader)) {
        return absl::InvalidArgumentError("segment too small for its header");
    }
    int seals = ::fcntl(fd.get(), F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
        return absl::InvalidArgumentError("segment is not sealed against shrinking");
    }
    size_t size = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) {
        return Errno("mmap segment");
    }
    char* base = static_cast<char*>(p);
    const auto* h = reinterpret_cast<const SegmentHeader*>(base);
    SegmentLayout l = h->layout;
    auto in = [&](uint64_t off, uint64_t len) { return off <= size && len <= size - off; };
    bool ok = h->magic == kSegmentMagic && h->version == kSegmentVersion && l.total_size == size &&
              RingSlots::ValidShape(l.submit.capacity, l.submit.payload) &&
              RingSlots::ValidShape(l.complete.capacity, l.complete.payload) &&
              in(l.submit.offset, RingSlots::BytesFor(l.submit.capacity, l.submit.payload)) &&
              in(l.complete.offset, RingSlots::BytesFor(l.complete.capacity, l.complete.payload)) &&
              in(l.client_region.offset, l.client_region.size) && in(l.daemon_region.offset, l.daemon_region.size);
    if (!ok) {
        uint64_t magic = h->magic;
        uint32_t version = h->version;
        ::munmap(p, size);
        return absl::InvalidArgumentError(absl::StrFormat(
            "not a segment of version %d, or its layout does not fit its size (magic %x, version %d)", kSegmentVersion,
            magic, version));
    }
    return Segment(std::move(fd), base, l);
}

Segment::Segment(Segment&& o) noexcept : fd_(std::move(o.fd_)), base_(o.base_), layout_(o.layout_) {
    o.base_ = nullptr;
}

Segment& Segment::operator=(Segment&& o) noexcept {
    if (this != &o) {
        Unmap();
        fd_ = std::move(o.fd_);
        base_ = o.base_;
        layout_ = o.layout_;
        o.base_ = nullptr;
    }
    return *this;
}

Segment::~Segment() { Unmap(); }

void Segment::Unmap() {
    if (base_ != nullptr) {
        ::munmap(base_, layout_.total_size);
        base_ = nullptr;
    }
}

}  // namespace shmring

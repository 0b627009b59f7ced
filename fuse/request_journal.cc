#include "request_journal.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace zerohop::fuse {

namespace {

constexpr uint64_t kMagic = 0x7a68667573657271;  // "zhfuserq"
constexpr uint32_t kSlots = 1024;
// A key lives in one of this many slots from its hash; every lookup scans them all, so a
// slot freed in the middle never hides a key further on.
constexpr uint32_t kWindow = 64;
// Records of this many takeovers back are dropped by Adopt: their requests were answered
// (the record outlived its answer by a kill) or will never come again.
constexpr uint64_t kKeepGenerations = 4;

enum State : uint32_t { kFree = 0, kBegun = 1, kApplied = 2 };

template <typename T>
std::atomic_ref<T> A(T& v) {
    return std::atomic_ref<T>(v);
}

uint32_t Home(uint64_t key) { return static_cast<uint32_t>((key * 0x9e3779b97f4a7c15) >> 40) % kSlots; }

}  // namespace

struct RequestJournal::Header {
    uint64_t magic;
    uint32_t slots;
    uint32_t reserved;
    uint64_t generation;
    uint64_t live;  // records in the table
    alignas(64) uint64_t keys[kSlots];  // 0: free
};

struct RequestJournal::Slot {
    uint32_t state;
    uint32_t size;
    uint64_t generation;
    char payload[kMaxPayload];
    uint64_t reserved[1];
};

namespace {
constexpr size_t kBytes = sizeof(RequestJournal::Header) + sizeof(RequestJournal::Slot) * kSlots;
}

RequestJournal::RequestJournal(shmring::UniqueFd fd, void* base) : fd_(std::move(fd)), base_(base) {}

RequestJournal::RequestJournal(RequestJournal&& o) noexcept : fd_(std::move(o.fd_)), base_(o.base_) {
    o.base_ = nullptr;
}

RequestJournal& RequestJournal::operator=(RequestJournal&& o) noexcept {
    if (this != &o) {
        if (base_ != nullptr) {
            ::munmap(base_, kBytes);
        }
        fd_ = std::move(o.fd_);
        base_ = o.base_;
        o.base_ = nullptr;
    }
    return *this;
}

RequestJournal::~RequestJournal() {
    if (base_ != nullptr) {
        ::munmap(base_, kBytes);
    }
}

namespace {

absl::StatusOr<void*> Map(int fd) {
    void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        return absl::InternalError(absl::StrFormat("mmap of the request journal: %s", strerror(errno)));
    }
    return p;
}

}  // namespace

absl::StatusOr<RequestJournal> RequestJournal::Create() {
    shmring::UniqueFd fd(::memfd_create("zerohop-fuse-requests", MFD_CLOEXEC));
    if (!fd.valid()) {
        return absl::InternalError(absl::StrFormat("memfd_create: %s", strerror(errno)));
    }
    if (::ftruncate(fd.get(), kBytes) != 0) {
        return absl::InternalError(absl::StrFormat("ftruncate of the request journal: %s", strerror(errno)));
    }
    auto base = Map(fd.get());
    if (!base.ok()) {
        return base.status();
    }
    auto* h = static_cast<Header*>(*base);
    h->slots = kSlots;
    h->generation = 1;
    A(h->magic).store(kMagic, std::memory_order_release);
    return RequestJournal(std::move(fd), *base);
}

absl::StatusOr<RequestJournal> RequestJournal::Adopt(shmring::UniqueFd fd) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0 || static_cast<size_t>(st.st_size) != kBytes) {
        return absl::DataLossError("the request journal handed over has the wrong size");
    }
    auto base = Map(fd.get());
    if (!base.ok()) {
        return base.status();
    }
    RequestJournal j(std::move(fd), *base);
    auto* h = static_cast<Header*>(*base);
    if (A(h->magic).load(std::memory_order_acquire) != kMagic || h->slots != kSlots) {
        return absl::DataLossError("the request journal handed over is not one");
    }
    uint64_t gen = A(h->generation).fetch_add(1) + 1;
    auto* slots = reinterpret_cast<Slot*>(reinterpret_cast<char*>(h) + sizeof(Header));
    uint64_t live = 0;
    for (uint32_t i = 0; i < kSlots; ++i) {
        if (h->keys[i] == 0) {
            continue;
        }
        if (slots[i].generation + kKeepGenerations < gen || slots[i].state == kFree) {
            slots[i].state = kFree;
            A(h->keys[i]).store(0, std::memory_order_release);
        } else {
            ++live;
        }
    }
    A(h->live).store(live);
    return j;
}

RequestJournal::Slot* RequestJournal::Find(uint64_t key) const {
    auto* h = static_cast<Header*>(base_);
    auto* slots = reinterpret_cast<Slot*>(reinterpret_cast<char*>(h) + sizeof(Header));
    uint32_t home = Home(key);
    for (uint32_t k = 0; k < kWindow; ++k) {
        uint32_t i = (home + k) % kSlots;
        if (A(h->keys[i]).load(std::memory_order_acquire) == key) {
            return &slots[i];
        }
    }
    return nullptr;
}

RequestJournal::Begun RequestJournal::Begin(uint64_t unique) {
    uint64_t key = unique & ~kUniqueResend;
    auto* h = static_cast<Header*>(base_);
    uint64_t gen = A(h->generation).load(std::memory_order_relaxed);
    if (Slot* s = Find(key)) {
        // A predecessor's: it began (and maybe applied) this very request.
        s->generation = gen;
        Begun b;
        if (A(s->state).load(std::memory_order_acquire) == kApplied) {
            b.prior = Prior::kApplied;
            b.payload.assign(s->payload, std::min<size_t>(s->size, kMaxPayload));
        } else {
            b.prior = Prior::kBegun;
        }
        return b;
    }
    auto* slots = reinterpret_cast<Slot*>(reinterpret_cast<char*>(h) + sizeof(Header));
    uint32_t home = Home(key);
    for (uint32_t k = 0; k < kWindow; ++k) {
        uint32_t i = (home + k) % kSlots;
        uint64_t expected = 0;
        if (A(h->keys[i]).load(std::memory_order_relaxed) == 0 &&
            A(h->keys[i]).compare_exchange_strong(expected, key, std::memory_order_acq_rel)) {
            slots[i].generation = gen;
            slots[i].size = 0;
            A(slots[i].state).store(kBegun, std::memory_order_release);
            A(h->live).fetch_add(1, std::memory_order_relaxed);
            return Begun{};
        }
    }
    return Begun{.prior = Prior::kUntracked};
}

void RequestJournal::Applied(uint64_t unique, const void* payload, size_t size) {
    Slot* s = Find(unique & ~kUniqueResend);
    if (s == nullptr) {
        return;  // untracked
    }
    size = std::min(size, kMaxPayload);
    if (size > 0) {
        memcpy(s->payload, payload, size);
    }
    s->size = static_cast<uint32_t>(size);
    A(s->state).store(kApplied, std::memory_order_release);
}

void RequestJournal::End(uint64_t unique) {
    auto* h = static_cast<Header*>(base_);
    if (A(h->live).load(std::memory_order_relaxed) == 0) {
        return;  // the common case: nothing recorded, nothing to look for
    }
    uint64_t key = unique & ~kUniqueResend;
    auto* slots = reinterpret_cast<Slot*>(reinterpret_cast<char*>(h) + sizeof(Header));
    uint32_t home = Home(key);
    for (uint32_t k = 0; k < kWindow; ++k) {
        uint32_t i = (home + k) % kSlots;
        if (A(h->keys[i]).load(std::memory_order_acquire) == key) {
            A(slots[i].state).store(kFree, std::memory_order_relaxed);
            A(h->keys[i]).store(0, std::memory_order_release);
            A(h->live).fetch_sub(1, std::memory_order_relaxed);
            return;
        }
    }
}

size_t RequestJournal::Live() const {
    return A(static_cast<Header*>(base_)->live).load(std::memory_order_relaxed);
}

uint64_t RequestJournal::generation() const {
    return A(static_cast<Header*>(base_)->generation).load(std::memory_order_relaxed);
}

}  // namespace zerohop::fuse

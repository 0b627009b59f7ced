#pragma once
// Memory registrations kept across requests: a region a caller's answers land in (a
// client's session region) is registered with the device the first time an answer is to
// land in it, and that registration serves every later request, until the region is
// forgotten (it is about to be unmapped) or evicted to stay within a budget of registered
// bytes. Registering costs a system call and pins the pages; per request it would cost more
// than a small answer's transfer.
//
// A registration in use (an answer may be being written into it) is never let go: Forget()
// and eviction defer it to the last Release(). Safe from any thread.
//
//   RegistrationCache cache(device, 1 << 30);
//   auto mr = cache.Acquire(region, region_size, id);   // registers on first use
//   ... advertise mr->addr/rkey, wait for the answer ...
//   cache.Release(region);
//   cache.Forget(region);                            // before unmapping it

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "rdma/verbs.h"

namespace zerohop::peer {

class RegistrationCache {
public:
    RegistrationCache(verbs::Device* device, size_t max_bytes) : device_(device), max_bytes_(max_bytes) {}
    ~RegistrationCache();  // deregisters everything (nothing may be in use)
    RegistrationCache(const RegistrationCache&) = delete;
    RegistrationCache& operator=(const RegistrationCache&) = delete;

    // The registration of [base, base + size) for remote writes, made now if it is not
    // already; in use until Release(base). `id` names the mapping (never reused for another
    // one): a region known at that address under another id or size is another mapping, and
    // is registered anew (never through the old pages' registration).
    absl::StatusOr<verbs::MemoryRegion> Acquire(char* base, size_t size, uint64_t id);
    void Release(char* base);
    // The region is about to be unmapped: its registration goes (at its last Release if in use).
    void Forget(char* base);

    struct Counts {
        uint64_t registered = 0;  // registrations made
        uint64_t reused = 0;      // acquisitions served by one already made
        size_t bytes = 0;         // registered now
    };
    Counts counts() const;

private:
    struct Entry {
        verbs::MemoryRegion mr;
        uint64_t id = 0;
        int users = 0;
        bool forgotten = false;
        std::list<char*>::iterator lru;
    };
    void Drop(char* base);   // under mu_
    void Evict();            // under mu_

    verbs::Device* device_;
    size_t max_bytes_;
    mutable std::mutex mu_;
    absl::flat_hash_map<char*, Entry> entries_;
    std::list<char*> lru_;  // least recently used first
    Counts counts_;
};

}  // namespace zerohop::peer

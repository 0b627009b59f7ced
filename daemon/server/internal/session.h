#pragma once
// One client's session inside zerohopd: its socket, segment, doorbell and what the worker
// that owns it keeps in private memory (ring positions, results held, uploads), and one
// request being served (a Call).

#include <atomic>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "peer/peer.h"
#include "server/volumes.h"
#include "shmring/arena.h"
#include "shmring/doorbell.h"
#include "shmring/segment.h"
#include "shmring/unique_fd.h"
#include "wire/protocol.h"

namespace zerohop {

// A put streaming in chunks: the worker queues the bytes it copies out of the ring, a
// thread of its own feeds them to the backend (which may block on disk), so the worker
// never waits (uploads.cc).
struct Upload {
    absl::Mutex mu;
    // The bytes, and the chunk's descriptor to acknowledge once the backend took them.
    std::deque<std::pair<std::string, std::optional<protocol::Descriptor>>> chunks ABSL_GUARDED_BY(mu);
    bool finished ABSL_GUARDED_BY(mu) = false;   // the last chunk is queued
    bool cancelled ABSL_GUARDED_BY(mu) = false;  // the session or the client gave up
    bool ended ABSL_GUARDED_BY(mu) = false;      // the backend took its last byte, or failed
    size_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
};

struct Session {
    uint64_t id = 0;
    shmring::UniqueFd sock;
    shmring::Segment segment;
    shmring::EventFd doorbell;
    uint32_t uid = 0, gid = 0;
    pid_t pid = 0;
    const CredentialConfig* credential = nullptr;  // the key's, or the scope's
    // Sessions on a volume's socket: what they may see (their paths are mapped below it).
    std::shared_ptr<const Scope> scope;
    uint32_t max_in_flight = 0;
    // The last tag of a descriptor sent on the socket (open_object_file), from any thread.
    std::atomic<uint64_t> file_tags{0};

    // Private state of the owning worker: never read back from shared memory.
    shmring::RingSlots submit;
    shmring::RingSlots complete;
    uint64_t submit_head = 0;
    uint64_t complete_tail = 0;
    uint64_t client_bytes = 0;
    std::deque<protocol::Descriptor> overflow;  // completions waiting for room in the ring
    absl::flat_hash_map<uint64_t, std::shared_ptr<Upload>> uploads;  // by the first request id
    uint32_t in_flight = 0;
    uint32_t bad_descriptors = 0;
    bool closed = false;

    Session(shmring::Segment seg, shmring::EventFd bell)
        : segment(std::move(seg)),
          doorbell(std::move(bell)),
          submit(segment.submit_ring()),
          complete(segment.complete_ring()),
          client_bytes(segment.layout().client_region.size),
          daemon_alloc_(segment.layout().daemon_region.size) {}
    // Who owns what this session creates: its peer (SO_PEERCRED), never what the client
    // says; except that a root peer (zerohop-fuse, creating for the callers of its mount)
    // names the owner, as root could chown it afterwards anyway.
    Caller OwnerOf(const Caller& claimed) const { return uid == 0 ? claimed : Caller{uid, gid}; }

    ~Session() {
        if (scope != nullptr) {
            scope->sessions.fetch_sub(1);
        }
        // Before the segment goes: a peer's RDMA registration of its region (gets that landed
        // there) must not outlive the mapping.
        ForgetLandingRegion(segment.daemon_region());
    }

    // Result buffers in the daemon region: backends fill them from their own threads too.
    std::optional<uint64_t> AllocateResult(uint64_t bytes) {
        absl::MutexLock lock(&alloc_mu_);
        return daemon_alloc_.Allocate(bytes);
    }
    bool FreeResult(uint64_t offset) {
        absl::MutexLock lock(&alloc_mu_);
        return daemon_alloc_.Free(offset).has_value();
    }
    uint64_t results_held() {
        absl::MutexLock lock(&alloc_mu_);
        return daemon_alloc_.used();
    }
    uint64_t daemon_bytes() const { return segment.layout().daemon_region.size; }

private:
    absl::Mutex alloc_mu_;
    shmring::RegionAllocator daemon_alloc_ ABSL_GUARDED_BY(alloc_mu_);
};

// One request being served: where its answer goes, when it started, and which backend
// label its metrics go under (0: answered by zerohopd itself).
struct Call {
    std::shared_ptr<Session> s;
    protocol::Descriptor d;
    std::chrono::steady_clock::time_point start;
    uint8_t backend = 0;
};

}  // namespace zerohop

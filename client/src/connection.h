#pragma once
// One session of libzerohop with zerohopd: its socket, its segment and rings, and the
// requests in flight on it. A Client replaces its connection when the daemon restarts;
// the old one stays mapped while results (ObjectViews) still point into it.
//
//   auto conn = Client::Connection::Dial(options);   // hello, welcome, the segment mapped
//   conn->Track(id, pending);                       // then
//   conn->Push(descriptor);                         // its completion runs from Poll()

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "shmring/arena.h"
#include "shmring/doorbell.h"
#include "shmring/segment.h"
#include "shmring/unique_fd.h"
#include "wire/protocol.h"
#include "zerohop/client.h"

namespace zerohop {

class Client::Connection : public std::enable_shared_from_this<Client::Connection> {
public:
    // A completion that may keep the result buffer (returns true): it must Release it later
    // on the connection it is given.
    using KeepingDone = absl::AnyInvocable<bool(absl::Status, std::string_view body, uint64_t buffer,
                                                const std::shared_ptr<Connection>& conn) &&>;

    // A request sent and not yet answered, with what it takes to send it again.
    struct Pending {
        KeepingDone done;
        std::optional<uint64_t> allocation;  // in the client region, freed on completion
        uint64_t payload = 0;                // the body: [payload, +length) in the client region
        uint32_t length = 0;
        protocol::Op op = protocol::Op::kNop;
        uint32_t flags = 0;
        uint64_t arg0 = 0;
    };

    // Connects, says hello and maps the segment the daemon hands over.
    static absl::StatusOr<std::shared_ptr<Connection>> Dial(const ClientOptions& options);

    Connection(shmring::UniqueFd sock, shmring::Segment seg, shmring::EventFd bell, uint64_t session,
               absl::Duration spin);

    uint64_t session_id() const { return session_id_; }
    uint64_t daemon_bytes() const { return segment_.layout().daemon_region.size; }
    uint64_t client_bytes() const { return segment_.layout().client_region.size; }
    char* client_region() const { return segment_.client_region(); }
    char* daemon_region() const { return segment_.daemon_region(); }

    std::optional<uint64_t> Allocate(size_t bytes) {
        std::lock_guard<std::mutex> lock(alloc_mu_);
        return alloc_.Allocate(bytes);
    }
    void Free(uint64_t offset) {
        std::lock_guard<std::mutex> lock(alloc_mu_);
        alloc_.Free(offset);
    }

    // Registers a request before it is pushed; false if the connection is dead (then
    // nothing was registered and `p` is untouched).
    bool Track(uint64_t id, Pending& p) {
        std::lock_guard<std::mutex> lock(pending_mu_);
        if (dead_) {
            return false;
        }
        pending_.emplace(id, std::move(p));
        return true;
    }

    // Forgets a request whose caller gives up; false if its completion already ran or is
    // running on another thread.
    bool Abandon(uint64_t id) {
        std::lock_guard<std::mutex> lock(pending_mu_);
        return pending_.erase(id) == 1;
    }

    // Marks the connection dead and hands over every request still in flight.
    std::vector<std::pair<uint64_t, Pending>> Kill();

    bool dead() const {
        std::lock_guard<std::mutex> lock(pending_mu_);
        return dead_;
    }

    // Pushes a descriptor; false if the daemon is gone (its ring may never drain).
    bool Push(const protocol::Descriptor& d);

    // Hands a result buffer back to the daemon.
    void Release(uint64_t buffer);

    // Runs the completions that have arrived; returns how many.
    size_t Poll();

    bool HasCompletion() const {
        shmring::SegmentHeader* h = segment_.header();
        return complete_.ReadyShared(&h->complete_head);
    }

    // Spins (as long as shmring::AdaptiveSpin finds it worth it, at most the options' spin),
    // then sleeps, until `ready()` or a completion arrives, or `timeout`; true if either
    // happened.
    template <typename Ready>
    bool Wait(Ready ready, absl::Duration timeout) {
        absl::Time start = absl::Now();
        bool got = shmring::WaitForCreator(
            segment_.header(), [&] { return ready() || HasCompletion(); }, spin_.budget(), timeout);
        if (got) {
            spin_.Record(absl::Now() - start);
        }
        return got;
    }

    // Whether the daemon's end of the session socket is gone. A syscall: slow paths only.
    bool Gone() const;

    // The descriptor the daemon sent on the session socket with `tag` (open_object_file:
    // sent before the completion that names it). Descriptors with other tags that arrive
    // first are kept for their own completions.
    absl::StatusOr<shmring::UniqueFd> TakeFile(uint64_t tag);

private:
    shmring::UniqueFd sock_;
    shmring::Segment segment_;
    shmring::EventFd doorbell_;
    uint64_t session_id_;
    shmring::AdaptiveSpin spin_;
    shmring::RingSlots submit_;
    shmring::RingSlots complete_;
    // std::mutex on the per-request path: a distribution's absl::Mutex may be built with
    // deadlock detection on, which costs every lock tens of nanoseconds.
    std::mutex alloc_mu_;
    shmring::RegionAllocator alloc_;  // under alloc_mu_
    mutable std::mutex pending_mu_;
    absl::flat_hash_map<uint64_t, Pending> pending_;  // under pending_mu_
    bool dead_ = false;                               // under pending_mu_
    std::mutex files_mu_;
    absl::flat_hash_map<uint64_t, shmring::UniqueFd> files_;  // received, not taken: under files_mu_
};

}  // namespace zerohop

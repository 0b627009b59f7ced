#pragma once
// Waking the other side without busy-waiting forever.
//
// How a side waits decides the latency: a cross-core spin answers in ~100 ns, a futex or
// eventfd wake-up in tens of microseconds. So a waiter spins briefly, then announces that
// it may sleep, checks once more, and sleeps; the other side makes the (costly) wake call
// only when the waiter has announced itself. An idle session costs no CPU.
//
// Peer to creator: an eventfd (the creator waits on many sessions at once, with
// epoll/io_uring). Creator to peer: a futex word in the segment (FUTEX_WAKE never blocks
// the creator, whatever the peer does).
//
//   // creator, after pushing completions:
//   NotifyPeer(header);
//   // peer thread, waiting for its completion:
//   WaitForCreator(header, [&] { return ring.ReadyShared(&header->complete_head); }, spin, timeout);

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmring/segment.h"
#include "shmring/unique_fd.h"

namespace shmring {

class EventFd {
public:
    static absl::StatusOr<EventFd> Create();
    explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}

    void Signal() const;  // never blocks
    // Consumes pending signals; true if there were any.
    bool Drain() const;
    int fd() const { return fd_.get(); }

private:
    UniqueFd fd_;
};

// FUTEX_WAKE on a word of shared memory: wakes every sleeper. Never blocks.
void FutexWakeAll(uint32_t* word);
// Sleeps while *word == expected, at most `timeout`; returns early on a wake or a change.
void FutexWait(uint32_t* word, uint32_t expected, absl::Duration timeout);

// The creator: after publishing completions, wake the peer if one of its threads may sleep.
void NotifyPeer(SegmentHeader* h);

// The peer: wait until `ready()` or `timeout`, spinning for `spin` first. True if ready.
bool WaitForCreator(SegmentHeader* h, const std::function<bool()>& ready, absl::Duration spin,
                    absl::Duration timeout);

// How long a waiter spins before it sleeps, learned from how long its waits take. A wait
// that ended within twice the longest spin could have been caught spinning: the spin doubles
// (from none: 1 us, 3, 7, ... up to the longest). A longer one (slow answers, or more waiters
// than cores, where spinning takes the cores the answers need) halves it, down to none. So
// a stray quick answer among slow ones costs a short spin, not the longest. Shared by a
// session's threads.
//
//   AdaptiveSpin spin(absl::Microseconds(50));
//   absl::Time start = absl::Now();
//   WaitForCreator(h, ready, spin.budget(), timeout);
//   spin.Record(absl::Now() - start);
class AdaptiveSpin {
public:
    explicit AdaptiveSpin(absl::Duration max)
        : max_ns_(absl::ToInt64Nanoseconds(max)), budget_ns_(absl::ToInt64Nanoseconds(max)) {}
    absl::Duration budget() const { return absl::Nanoseconds(budget_ns_.load(std::memory_order_relaxed)); }
    void Record(absl::Duration waited) {
        int64_t b = budget_ns_.load(std::memory_order_relaxed);
        b = absl::ToInt64Nanoseconds(waited) <= 2 * max_ns_ ? std::min(max_ns_, 2 * b + 1000) : b / 2;
        budget_ns_.store(b < 1000 ? 0 : b, std::memory_order_relaxed);
    }

private:
    int64_t max_ns_;
    std::atomic<int64_t> budget_ns_;
};

// The peer: after submitting, ring the creator's doorbell if it may be asleep.
void NotifyCreator(SegmentHeader* h, const EventFd& doorbell);

}  // namespace shmring

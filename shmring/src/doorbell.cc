#include "shmring/doorbell.h"

#include <errno.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_format.h"

namespace shmring {

absl::StatusOr<EventFd> EventFd::Create() {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd.valid()) {
        return absl::InternalError(absl::StrFormat("eventfd: %s", strerror(errno)));
    }
    return EventFd(std::move(fd));
}

void EventFd::Signal() const {
    uint64_t one = 1;
    // EAGAIN means the counter is saturated: the other side has a wake-up pending anyway.
    (void)!::write(fd_.get(), &one, sizeof one);
}

bool EventFd::Drain() const {
    uint64_t n = 0;
    return ::read(fd_.get(), &n, sizeof n) == sizeof n && n > 0;
}

void FutexWakeAll(uint32_t* word) {
    ::syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

void FutexWait(uint32_t* word, uint32_t expected, absl::Duration timeout) {
    struct timespec ts = absl::ToTimespec(timeout);
    ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void NotifyPeer(SegmentHeader* h) {
    std::atomic_ref<uint32_t>(h->complete_futex).fetch_add(1, std::memory_order_seq_cst);
    if (std::atomic_ref<uint32_t>(h->peer_waiting).load(std::memory_order_seq_cst) != 0) {
        FutexWakeAll(&h->complete_futex);
    }
}

namespace {
// A spinning waiter pauses at first (an answer in a microsecond or two is caught at once),
// then yields its core between looks: on a machine with fewer cores than busy threads, the
// thread that computes the answer (a daemon worker, a server behind it) gets to run.
constexpr absl::Duration kSpinBeforeYield = absl::Microseconds(5);
}  // namespace

bool WaitForCreator(SegmentHeader* h, const std::function<bool()>& ready, absl::Duration spin,
                    absl::Duration timeout) {
    absl::Time start = absl::Now();
    absl::Time spin_until = start + spin;
    absl::Time yield_from = start + kSpinBeforeYield;
    absl::Time deadline = start + timeout;
    bool yielding = false;
    // Without a budget, straight to the futex below (which looks first). The clock is read
    // every 8 pauses: a budget of a microsecond or two is not overrun much.
    for (int i = 0; spin > absl::ZeroDuration(); ++i) {
        if (ready()) {
            return true;
        }
        if (yielding) {
            sched_yield();  // whoever computes the answer may need this core
        } else {
            _mm_pause();
        }
        if ((i & 7) == 7 || yielding) {
            absl::Time now = absl::Now();
            if (now >= spin_until) {
                break;
            }
            yielding = now >= yield_from;
        }
    }
    std::atomic_ref<uint32_t> waiters(h->peer_waiting);
    std::atomic_ref<uint32_t> word(h->complete_futex);
    waiters.fetch_add(1, std::memory_order_seq_cst);
    bool got = false;
    for (;;) {
        uint32_t seen = word.load(std::memory_order_seq_cst);
        // Checked after announcing ourselves: a completion published before that is seen
        // here; one published after it finds a waiter counted and wakes the futex.
        if (ready()) {
            got = true;
            break;
        }
        absl::Time now = absl::Now();
        if (now >= deadline) {
            break;
        }
        FutexWait(&h->complete_futex, seen, std::min(deadline - now, absl::Milliseconds(100)));
    }
    waiters.fetch_sub(1, std::memory_order_seq_cst);
    return got || ready();
}

void NotifyCreator(SegmentHeader* h, const EventFd& doorbell) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (std::atomic_ref<uint32_t>(h->creator_sleeping).load(std::memory_order_seq_cst) != 0) {
        doorbell.Signal();
    }
}

}  // namespace shmring

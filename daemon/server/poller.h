#pragma once
// Waiting on many descriptors at once, for a worker that serves many sessions: io_uring
// multishot polls (one submission per descriptor for its whole life, and one syscall per
// sleep for any number of wake-ups), or epoll where the kernel or a seccomp profile does
// not allow io_uring.
//
//   auto poller = Poller::Create();
//   (*poller)->Add(doorbell_fd, /*key=*/42);
//   std::vector<uint64_t> ready;
//   (*poller)->Wait(&ready, /*timeout_ms=*/-1);   // ready == {42} once the doorbell rings
//
// A key is reported while its descriptor is readable or hung up (so a caller drains what
// woke it); keys must be unique and non-zero. Not thread-safe: one worker owns a poller.

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zerohop {

class Poller {
public:
    enum class Kind { kAuto, kUring, kEpoll };
    // kAuto: io_uring if it works here, else epoll.
    static absl::StatusOr<std::unique_ptr<Poller>> Create(Kind kind = Kind::kAuto);
    virtual ~Poller() = default;

    virtual std::string_view name() const = 0;
    // Watches `fd` (readable, or hung up) until Remove.
    virtual absl::Status Add(int fd, uint64_t key) = 0;
    // Stops watching; the descriptor may be closed right after.
    virtual void Remove(int fd, uint64_t key) = 0;
    // Sleeps until a watched descriptor is ready or `timeout_ms` passed (negative: no
    // limit; zero: only look) and appends the ready keys. Returns how many it appended.
    virtual size_t Wait(std::vector<uint64_t>* ready, int timeout_ms) = 0;
};

}  // namespace zerohop

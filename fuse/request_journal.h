#pragma once
// Exactly once across zerohop-fuse restarts: a table, in shared memory the holder keeps,
// of the requests that change something and have not been answered yet.
//
// The kernel gives every request a number (its `unique`) that is never used again on
// that connection. When zerohop-fuse is killed, the kernel still has the requests it had
// read and not answered; the successor asks for them again (FUSE_NOTIFY_RESEND) and gets
// them with FUSE_UNIQUE_RESEND set in the number. Before a request changes anything, the
// server records that it began; before it answers, that it was applied (with what its
// answer needs); once the answer is out, the record goes. So a successor given a request
// again knows whether its predecessor applied it (answer from the record, apply nothing),
// may have applied it (began, no outcome: the request is done again in a way that gives
// the same result either way), or never saw it.
//
//   auto j = RequestJournal::Create();            // or Adopt(fd) from the holder
//   auto prior = j->Begin(unique);                 // kNone / kBegun / kApplied (+ payload)
//   ... apply ...; j->Applied(unique, payload);    // before the answer
//   ... answer ...; j->End(unique);                // once the kernel has the answer
//
// No system call on this path: the table is a mapped memfd, records are claimed with
// atomic operations (any thread may begin, record and end). A full table (more requests
// in flight than slots) gives no guarantee for the extra ones; Begin says so.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "shmring/unique_fd.h"

namespace zerohop::fuse {

// Set by the kernel in the number of a request it sends again (Linux 6.9's fuse.h).
inline constexpr uint64_t kUniqueResend = uint64_t{1} << 63;

class RequestJournal {
public:
    // What this request's predecessors did with it.
    enum class Prior {
        kNone,     // never began: apply it
        kBegun,    // began, outcome unknown: apply it so that twice is the same as once
        kApplied,  // applied: answer from the payload
        kUntracked // the table is full: apply it, with no guarantee
    };
    struct Begun {
        Prior prior = Prior::kNone;
        std::string payload;  // kApplied: what Applied recorded
    };
    // The payload an applied record carries (an entry and an open file's handle fit).
    static constexpr size_t kMaxPayload = 232;

    static absl::StatusOr<RequestJournal> Create();
    // A predecessor's table: its records stay (their requests come again); records of
    // older generations (requests whose answers went out, or never came back) are dropped.
    static absl::StatusOr<RequestJournal> Adopt(shmring::UniqueFd fd);

    RequestJournal(RequestJournal&&) noexcept;
    RequestJournal& operator=(RequestJournal&&) noexcept;
    ~RequestJournal();

    int fd() const { return fd_.get(); }

    // `unique` as the kernel sent it (with or without kUniqueResend).
    Begun Begin(uint64_t unique);
    void Applied(uint64_t unique, const void* payload, size_t size);
    void End(uint64_t unique);

    // Records in the table (for tests and metrics).
    size_t Live() const;
    // Which process of the mount holds the table: 1 for the first, one more per Adopt.
    uint64_t generation() const;

    // The memfd's layout (request_journal.cc).
    struct Header;
    struct Slot;

private:
    RequestJournal(shmring::UniqueFd fd, void* base);
    Slot* Find(uint64_t key) const;

    shmring::UniqueFd fd_;
    void* base_ = nullptr;
};

}  // namespace zerohop::fuse

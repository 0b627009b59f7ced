#pragma once
// Kernel passthrough (docs/FUSE.md "Passthrough"): an open of an object whose bytes are a
// local file (the embedded store's large objects, handed over by open_object_file) is
// answered with that file as the kernel's backing file, so that reads, splice and mmap go
// from the kernel straight to it without a request to us (Linux 6.9+, CONFIG_FUSE_PASSTHROUGH,
// CAP_SYS_ADMIN).
//
//   Passthrough pt(want, &nodes);
//   pt.Offered(init_in); pt.Accept(init_out iov)   // the INIT exchange (the /dev/fuse hooks)
//   pt.Bind(fuse_fd, resumed);
//   auto c = pt.Open(ino, file_fd);                  // before the open's answer
//   Passthrough::AnswerWith(c); fuse_reply_open(...)  // the hook patches the answer
//   pt.Closed(ino, c.backing_id != 0);                // at its release
//
// The kernel's rules (fs/fuse/iomode.c) decide the bookkeeping: while an inode has a
// passthrough open, every open of it must pass through, and with the same backing file;
// an inode with a cached open cannot pass through until those close. So per inode: its
// backing id (alive while it has passthrough opens), how many such opens, how many cached.
//
// Writes pass through too: an object whose file zerohopd handed out is sized and timed by
// that file from then on (the embedded store's `sized_by_file`), so what the kernel writes
// is what every other view sees. A reader or writer that opened before a put replaced the
// object keeps the old version (as any descriptor of the store does); an open after it of
// an inode still passing through the old file is answered with that backing file and
// FOPEN_DIRECT_IO, so its reads and writes come to us and reach the new version.

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "node_table.h"

namespace zerohop::fuse {

class Passthrough {
public:
    // `nodes`: the inode table, whose journal records each registration for a successor.
    Passthrough(bool wanted, NodeTable* nodes) : wanted_(wanted), nodes_(nodes) {}

    // ---- the INIT exchange, from the /dev/fuse hooks -----------------------------------
    // The kernel's INIT (fuse_init_in after the header): whether it offers passthrough.
    void Offered(const void* init_in, size_t size);
    // libfuse's answer to it: asks for passthrough where it was offered and is wanted.
    void Accept(struct iovec* iov, int count);

    // The /dev/fuse descriptor the backing files are registered with (borrowed), once the
    // session has one. A successor that took a mount over (`resumed`) does not see the
    // INIT: it finds out whether the connection passes through at its first registration,
    // and takes over the registrations its predecessor journaled (reused, never
    // unregistered: the kernel's files may be using them).
    void Bind(int fuse_fd, bool resumed);

    // Whether new opens may start passing through: wanted, and (for the server that made
    // the mount) the kernel agreed. False after the kernel refused a registration; inodes
    // that pass through already go on doing so.
    bool active() const { return active_.load(std::memory_order_relaxed); }
    // zerohopd hands out no files at all (older than open_object_file): off.
    void Refused(std::string_view why);

    // ---- opens -------------------------------------------------------------------------
    struct Choice {
        int32_t backing_id = 0;  // 0: an ordinary (cached) open
        bool direct = false;     // with a backing id: reads and writes still come to us
    };
    // An open of `ino` (for reading, writing or both) that found the object's bytes in
    // `file` (a descriptor, -1 if none; borrowed: the kernel takes its own reference). An
    // inode a predecessor knew may have cached opens the kernel still has: it never starts
    // passing through.
    Choice Open(Ino ino, int file);
    // An open (passed through or not) was released, or its answer never reached the kernel.
    void Closed(Ino ino, bool passed_through);
    // The kernel forgot `ino`: nothing of it is open any more.
    void Forgot(Ino ino);

    // The answer this thread writes next is an open's or a create's: it carries `choice`.
    // Set right before fuse_reply_open/fuse_reply_create; the hook takes it.
    static void AnswerWith(const Choice& choice) { answer_ = choice; }
    // The hook: patches this thread's pending open answer, if there is one.
    static void PatchOpen(struct iovec* iov, int count);

private:
    struct Inode {
        NodeTable::Backing backing;  // id 0: not passing through
        uint32_t passthrough = 0;    // opens answered with the backing id
        uint32_t cached = 0;         // opens answered without
        bool inherited = false;      // a predecessor's: its open counts are unknown
    };

    int32_t Register(int file) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    void Unregister(Ino ino, Inode& n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

    const bool wanted_;
    NodeTable* const nodes_;
    std::atomic<bool> offered_{false};
    std::atomic<bool> active_{false};
    int fuse_fd_ = -1;
    mutable absl::Mutex mu_;
    absl::flat_hash_map<Ino, Inode> inodes_ ABSL_GUARDED_BY(mu_);
    static thread_local Choice answer_;
};

}  // namespace zerohop::fuse

// Exactly once (docs/FUSE.md): the request journal's hooks on /dev/fuse (which also ask for
// kernel passthrough in the INIT answer and give it in opens'), and how a request that
// changes something is begun, recorded as applied, and answered again.

#include <linux/fuse.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "internal/fs.h"

namespace zerohop::fuse {

thread_local uint64_t FuseFs::Impl::incoming_ = 0;

// More than the largest fixed part of a request (fuse_setattr_in and the like: under 100).
constexpr size_t kZeroedTail = 256;

// libfuse 3.14 trusts the counts inside a request: a WRITE's or a SETXATTR's `size` is
// handed to us as the length of the bytes that follow, a BATCH_FORGET's `count` as the
// number of entries, unchecked against what was read.
// The kernel never lies there, but a count beyond the request would have us read past it
// (found by the FUSE request fuzzer), so such a count is cut to what is there.
void FuseFs::Impl::ClampToLength(void* buf, size_t n) {
    auto* in = static_cast<fuse_in_header*>(buf);
    char* body = static_cast<char*>(buf) + sizeof *in;
    size_t have = n - sizeof *in;
    // What follows a fixed part of `fixed` bytes (the fixed part itself may be cut short:
    // its missing bytes read as the zeros ReadRequest put there).
    auto after = [&](size_t fixed) { return have > fixed ? have - fixed : 0; };
    if (in->opcode == FUSE_WRITE) {
        auto* w = reinterpret_cast<fuse_write_in*>(body);
        w->size = static_cast<uint32_t>(std::min<size_t>(w->size, after(sizeof *w)));
    } else if (in->opcode == FUSE_BATCH_FORGET) {
        auto* f = reinterpret_cast<fuse_batch_forget_in*>(body);
        f->count = static_cast<uint32_t>(std::min<size_t>(f->count, after(sizeof *f) / sizeof(fuse_forget_one)));
    } else if (in->opcode == FUSE_SETXATTR) {
        // (we do not ask for FUSE_SETXATTR_EXT: the short form) then the name, then the value
        auto* x = reinterpret_cast<fuse_setxattr_in*>(body);
        size_t name_room = after(FUSE_COMPAT_SETXATTR_IN_SIZE);
        size_t name_len = strnlen(body + FUSE_COMPAT_SETXATTR_IN_SIZE, name_room);
        size_t value_room = name_len < name_room ? name_room - name_len - 1 : 0;
        x->size = static_cast<uint32_t>(std::min<size_t>(x->size, value_room));
    }
}

ssize_t FuseFs::Impl::ReadRequest(int fd, void* buf, size_t size, void* userdata) {
    ssize_t n = ::read(fd, buf, size);
    if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) {
        incoming_ = 0;
        return n;
    }
    // A request shorter than its fixed part reads as zeros past its end, not as the bytes
    // of the request read before it into the same buffer; counts inside it stay inside it.
    std::memset(static_cast<char*>(buf) + n, 0, std::min<size_t>(kZeroedTail, size - static_cast<size_t>(n)));
    ClampToLength(buf, static_cast<size_t>(n));
    // libfuse handles what it read on this thread, before it reads again.
    const auto* in = static_cast<const fuse_in_header*>(buf);
    incoming_ = in->unique;
    auto* fs = static_cast<Impl*>(userdata);
    if (in->opcode == FUSE_INIT) {
        fs->init_unique_.store(in->unique, std::memory_order_relaxed);
        fs->passthrough_.Offered(in + 1, static_cast<size_t>(n) - sizeof *in);
    }
    if (in->opcode != FUSE_FORGET && in->opcode != FUSE_BATCH_FORGET && in->opcode != FUSE_INTERRUPT &&
        in->opcode != FUSE_NOTIFY_REPLY) {
        fs->answering_.fetch_add(1, std::memory_order_relaxed);  // one answer to come
    }
    return n;
}

ssize_t FuseFs::Impl::WriteAnswer(int fd, struct iovec* iov, int count, void* userdata) {
    auto* fs = static_cast<Impl*>(userdata);
    const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
    // Kernel passthrough (passthrough.h): asked for in the INIT answer, given in opens'.
    if (out->unique != 0 && out->unique == fs->init_unique_.load(std::memory_order_relaxed)) {
        fs->passthrough_.Accept(iov, count);
    }
    Passthrough::PatchOpen(iov, count);
    ssize_t n = ::writev(fd, iov, count);
    int saved = errno;
    // Written or refused (the caller was interrupted), the request is over: the kernel
    // sends it to nobody again. (A notification has number 0: no request.)
    // (~0: the INIT a taking-over server gives libfuse itself; it was never read.)
    if (out->unique != 0 && out->unique != ~uint64_t{0}) {
        fs->answering_.fetch_sub(1, std::memory_order_relaxed);
        if (fs->requests_) {
            fs->requests_->End(out->unique);
        }
    }
    errno = saved;
    return n;
}

FuseFs::Impl::Once FuseFs::Impl::BeginOnce() {
    Once once{.unique = incoming_};
    if (!requests_ || once.unique == 0) {
        return once;
    }
    RequestJournal::Begun b = requests_->Begin(once.unique);
    switch (b.prior) {
        case RequestJournal::Prior::kApplied:
            once.applied = std::move(b.payload);
            break;
        case RequestJournal::Prior::kBegun:
            once.unknown = true;
            break;
        case RequestJournal::Prior::kNone:
            break;
        case RequestJournal::Prior::kUntracked:
            // More in flight than the table holds: this one is applied without a record
            // (a successor may apply it again if it is resent).
            once.unknown = (once.unique & kUniqueResend) != 0;
            break;
    }
    return once;
}

void FuseFs::Impl::AppliedOnce(const Once& once, const void* payload, size_t size) {
    if (!requests_ || once.unique == 0) {
        return;
    }
    if (fault_ == Fault::kAfterApply) {
        raise(SIGKILL);
    }
    requests_->Applied(once.unique, payload, size);
    if (fault_ == Fault::kAfterRecord) {
        raise(SIGKILL);
    }
}

bool FuseFs::Impl::MadeUnknown(Once* once, const absl::Status& s) {
    // libzerohop's word for a request in flight across a zerohopd restart (client.cc).
    if (once->unknown || !absl::IsUnavailable(s) || !absl::StrContains(s.message(), "restarted while")) {
        return false;
    }
    once->unknown = true;
    return true;
}

absl::Status FuseFs::Impl::GoneBefore(const Once& once, absl::Status s) {
    return once.unknown && absl::IsNotFound(s) ? absl::OkStatus() : s;
}

bool FuseFs::Impl::ReplayEntry(fuse_req_t req, const Once& once) {
    if (!once.applied) {
        return false;
    }
    fuse_entry_param e = {};
    if (once.applied->size() != sizeof e) {
        fuse_reply_err(req, EIO);
        return true;
    }
    memcpy(&e, once.applied->data(), sizeof e);
    fuse_reply_entry(req, &e);
    return true;
}

}  // namespace zerohop::fuse

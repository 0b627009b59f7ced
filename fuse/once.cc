// Exactly once (docs/FUSE.md): the request journal's hooks on /dev/fuse (which also ask for
// kernel passthrough in the INIT answer and give it in opens'), and how a request that
// changes something is begun, recorded as applied, and answered again.

#include <linux/fuse.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "internal/fs.h"

namespace zerohop::fuse {

thread_local uint64_t FuseFs::Impl::incoming_ = 0;

ssize_t FuseFs::Impl::ReadRequest(int fd, void* buf, size_t size, void* userdata) {
    ssize_t n = ::read(fd, buf, size);
    if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) {
        incoming_ = 0;
        return n;
    }
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

#include "rdma/rc_path.h"

#include <cstring>

#include "absl/strings/str_format.h"

namespace zerohop::peer {

namespace {

// Work request ids: what a completion is about in the top byte, the slot (or the write's
// cookie) below.
enum WrKind : uint64_t { kWrRecv = 1, kWrSend = 2, kWrWrite = 3 };
constexpr int kWrShift = 56;
constexpr uint64_t kWrMask = (uint64_t{1} << kWrShift) - 1;
uint64_t WrId(WrKind kind, uint64_t n) { return (static_cast<uint64_t>(kind) << kWrShift) | n; }

// Frames outside the credits: a handshake (hello, challenge, proof), a ping and its pong, a
// goaway; and the credit frames, one per half window at most between two grants.
constexpr uint32_t kUncreditedReserve = 8;

}  // namespace

uint32_t RcSlots(uint32_t window) { return window + window / std::max<uint32_t>(1, window / 2) + kUncreditedReserve; }

RcPath::RcPath(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp, RcPathOptions options)
    : device_(device), qp_(std::move(qp)), options_(options), slot_size_(kFrameHeaderSize + options.max_body) {}

RcPath::~RcPath() {
    qp_.reset();  // before the memory the device may still be writing into is let go
    if (receive_registered_) {
        device_->Deregister(receive_mr_);
    }
    if (send_registered_) {
        device_->Deregister(send_mr_);
    }
}

absl::StatusOr<std::unique_ptr<RcPath>> RcPath::Create(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp,
                                                       RcPathOptions options) {
    if (options.receives == 0 || options.sends == 0 || options.max_body == 0 || options.max_body > kMaxFrameBody) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "rdma: %d receives, %d sends of %d bytes: each must be at least 1 (and a body at most %d)",
            options.receives, options.sends, options.max_body, kMaxFrameBody));
    }
    std::unique_ptr<RcPath> p(new RcPath(device, std::move(qp), options));
    p->receive_slab_.resize(p->slot_size_ * options.receives);
    p->send_slab_.resize(p->slot_size_ * options.sends);
    auto rmr = device->Register(p->receive_slab_.data(), p->receive_slab_.size(), verbs::kLocalWrite);
    if (!rmr.ok()) {
        return rmr.status();
    }
    p->receive_mr_ = *rmr;
    p->receive_registered_ = true;
    auto smr = device->Register(p->send_slab_.data(), p->send_slab_.size(), 0);
    if (!smr.ok()) {
        return smr.status();
    }
    p->send_mr_ = *smr;
    p->send_registered_ = true;
    for (uint32_t i = 0; i < options.receives; ++i) {
        if (absl::Status s = p->Post(i); !s.ok()) {
            return s;
        }
    }
    p->free_sends_.reserve(options.sends);
    for (uint32_t i = options.sends; i > 0; --i) {
        p->free_sends_.push_back(i - 1);
    }
    return p;
}

absl::Status RcPath::Post(uint32_t slot) {
    if (!qp_) {
        return absl::UnavailableError("rdma: the queue pair was disconnected");
    }
    return qp_->PostRecv(WrId(kWrRecv, slot), receive_mr_, size_t{slot} * slot_size_, slot_size_);
}

absl::Status RcPath::Send(const char header[kFrameHeaderSize], std::string_view body) {
    if (!qp_) {
        return absl::UnavailableError("rdma: the queue pair was disconnected");
    }
    if (free_sends_.empty() || body.size() > options_.max_body) {
        return absl::InternalError(absl::StrFormat("rdma: a send of %d bytes with %d slots free", body.size(),
                                                   free_sends_.size()));
    }
    uint32_t slot = free_sends_.back();
    free_sends_.pop_back();
    char* at = send_slab_.data() + size_t{slot} * slot_size_;
    std::memcpy(at, header, kFrameHeaderSize);
    if (!body.empty()) {
        std::memcpy(at + kFrameHeaderSize, body.data(), body.size());
    }
    size_t length = kFrameHeaderSize + body.size();
    return qp_->PostSend(WrId(kWrSend, slot), send_mr_, size_t{slot} * slot_size_, length, std::nullopt,
                         length <= kRcInline);
}

absl::Status RcPath::Write(const verbs::MemoryRegion& local, size_t offset, size_t length, uint64_t remote_addr,
                           uint32_t rkey, uint64_t cookie) {
    if (!qp_) {
        return absl::UnavailableError("rdma: the queue pair was disconnected");
    }
    if (cookie > kWrMask) {
        return absl::InternalError("rdma: a write's cookie out of range");
    }
    return qp_->PostWrite(WrId(kWrWrite, cookie), local, offset, length, remote_addr, rkey);
}

absl::Status RcPath::Poll(Handler& handler) {
    verbs::WorkCompletion wc[32];
    for (;;) {
        if (!qp_) {
            return absl::UnavailableError("rdma: the queue pair was disconnected");
        }
        int n = qp_->Poll(wc, 32);
        if (n <= 0) {
            return failed_ ? absl::UnavailableError("rdma: the queue pair is in the error state") : absl::OkStatus();
        }
        for (int i = 0; i < n; ++i) {
            if (!qp_) {  // a handler closed the connection
                return absl::UnavailableError("rdma: the queue pair was disconnected");
            }
            uint64_t kind = wc[i].wr_id >> kWrShift;
            uint64_t index = wc[i].wr_id & kWrMask;
            if (wc[i].status != verbs::WcStatus::kSuccess) {
                if (!failed_) {
                    failed_ = true;
                    if (wc[i].status != verbs::WcStatus::kFlushed) {
                        return absl::UnavailableError(absl::StrFormat(
                            "rdma: %s failed: %s",
                            kind == kWrRecv ? "a receive" : kind == kWrSend ? "a send" : "an RDMA write",
                            verbs::WcStatusName(wc[i].status)));
                    }
                }
                continue;
            }
            if (failed_) {
                continue;
            }
            switch (kind) {
                case kWrRecv: {
                    if (index >= options_.receives) {
                        return absl::InternalError("rdma: a receive completion for no slot of ours");
                    }
                    const char* at = receive_slab_.data() + index * slot_size_;
                    absl::Status s = handler.OnMessage(std::string_view(at, wc[i].byte_len));
                    if (!s.ok()) {
                        return s;
                    }
                    if (absl::Status p = Post(static_cast<uint32_t>(index)); !p.ok()) {
                        return p;
                    }
                    break;
                }
                case kWrSend:
                    free_sends_.push_back(static_cast<uint32_t>(index));
                    handler.OnSent();
                    break;
                case kWrWrite: handler.OnWritten(index); break;
                default: break;
            }
        }
    }
}

}  // namespace zerohop::peer

#pragma once
// The data path of one peer connection over an RDMA reliable-connected queue pair: how the
// peer wire's frames (frame.h) travel as SENDs into receives posted in advance, and how a
// large answer is written by the answering side straight into the caller's memory (RDMA
// WRITE). The frame logic (handshake, credits, requests, deadlines) is the peer loop's
// (peer_loop.h), shared with TCP; this is only the part that differs.
//
// Memory. One registered slab of `receives` slots, each a frame header and `max_body` bytes,
// all posted as receives at the start, and one of `sends` slots that frames are copied into
// before they are posted (inline when they fit the device's inline size: the slot is free
// at once). Both are registered once, when the path is made; nothing is registered per frame.
// A received frame is handed up in place and its slot posted again as soon as the handler
// returns, so the receives posted never fall below what the credits let the other side send:
// receiver-not-ready cannot happen between two of our daemons.
//
// Sizing. The other side may send one frame per credit we granted (the connection's window)
// and, outside the credits, handshake, credit, ping and pong frames. Those are bounded (a side
// sends a credit frame only for frames it received under credit), and `receives` must cover
// the window plus that reserve: RcSlots(window) says how many.
//
// Errors. A completion with an error status (the other side gone, the link cut, a bad
// remote key) means the queue pair is in the error state: Poll() returns Unavailable
// naming the operation and the status, and the connection is closed. Completions flushed
// after that are ignored.
//
//   auto path = RcPath::Create(device, std::move(qp), {.receives = RcSlots(64), .sends = RcSlots(64),
//                                                      .max_body = 64 << 10});
//   (*path)->Send(header, body);                      // false from CanSend(): wait for OnSent
//   (*path)->Poll(handler);                           // when completion_fd() is readable

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rdma/frame.h"
#include "rdma/verbs.h"

namespace zerohop::peer {

// The largest frame body an RDMA connection offers: larger messages go in pieces (kFrameMore)
// or, for an answer with a landing, by RDMA WRITE; this keeps a connection's receive slab
// at (window + reserve) x 64 KiB.
inline constexpr uint32_t kRcMaxBody = 64u << 10;
// Frames up to this size (header included) are posted inline.
inline constexpr size_t kRcInline = 256;

// Receive (or send) slots for a connection whose window is `window`: the window, the credit
// frames that can be owed on it, and the handshake, ping and goaway frames.
uint32_t RcSlots(uint32_t window);

struct RcPathOptions {
    uint32_t receives = 0;
    uint32_t sends = 0;
    uint32_t max_body = kRcMaxBody;
};

class RcPath {
public:
    // What Poll() finds, on the thread that polls.
    class Handler {
    public:
        virtual ~Handler() = default;
        // A frame arrived: its bytes (header and body) stay valid until this returns. An error
        // stops the poll and is Poll()'s answer (the caller closes the connection).
        virtual absl::Status OnMessage(std::string_view bytes) = 0;
        // A send slot is free again.
        virtual void OnSent() = 0;
        // The write Write() posted with `cookie` has landed in the other side's memory.
        virtual void OnWritten(uint64_t cookie) = 0;
    };

    // Registers the slabs on `device` and posts every receive. The queue pair must be
    // connected; the device must outlive the path.
    static absl::StatusOr<std::unique_ptr<RcPath>> Create(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp,
                                                          RcPathOptions options);
    ~RcPath();  // destroys the queue pair (the other side's operations fail), then deregisters
    RcPath(const RcPath&) = delete;
    RcPath& operator=(const RcPath&) = delete;

    verbs::Device* device() const { return device_; }
    int completion_fd() const { return qp_ ? qp_->completion_fd() : -1; }
    // Whether a send slot is free.
    bool CanSend() const { return !free_sends_.empty(); }
    // Copies a frame (its encoded header and body, at most max_body) into a send slot and
    // posts it. Needs CanSend().
    absl::Status Send(const char header[kFrameHeaderSize], std::string_view body);
    // Writes `length` bytes at `offset` of `local` (registered on this path's device) to the
    // other side's memory at `remote_addr` (its rkey `rkey`). Handler::OnWritten(cookie) when
    // it has landed. A frame sent after it arrives after the bytes (RC executes in order).
    absl::Status Write(const verbs::MemoryRegion& local, size_t offset, size_t length, uint64_t remote_addr,
                       uint32_t rkey, uint64_t cookie);
    // Drains the completions that are ready. Unavailable once the queue pair has failed or
    // been disconnected.
    absl::Status Poll(Handler& handler);
    // Destroys the queue pair now: nothing more is received, sent or written, here or into
    // this side's memory by the other (whose operations fail). The slabs stay until the
    // path goes (a handler may still be reading one).
    void Disconnect() { qp_.reset(); }
    bool connected() const { return qp_ != nullptr; }

private:
    RcPath(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp, RcPathOptions options);
    absl::Status Post(uint32_t slot);

    verbs::Device* device_;
    std::unique_ptr<verbs::QueuePair> qp_;
    RcPathOptions options_;
    size_t slot_size_;
    std::vector<char> receive_slab_, send_slab_;
    verbs::MemoryRegion receive_mr_, send_mr_;
    bool receive_registered_ = false, send_registered_ = false;
    std::vector<uint32_t> free_sends_;
    bool failed_ = false;
};

}  // namespace zerohop::peer

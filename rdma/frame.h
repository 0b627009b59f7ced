#pragma once
// The peer wire: how two zerohopd daemons frame what they say to each other, over TCP or
// RDMA alike, and how each side keeps the other from sending more than it can take.
//
// Frames. Every message is one frame: a 32-byte header, then `length` bytes of body.
//
//   offset  size  field
//        0     2  magic 0x5A48 ("ZH", little-endian)
//        2     1  version (1)
//        3     1  kind: hello, challenge, proof, request, response, credit, ping, pong, goaway
//        4     4  length: body bytes, at most the connection's max_body (agreed at hello)
//        8     8  request id: which request a request or response frame belongs to (many
//                 sessions' requests share a connection); 0 for connection-level frames
//       16     8  deadline: absolute, nanoseconds since the Unix epoch (the daemons' clocks
//                 are NTP-synchronised; skew eats into every deadline); 0 for none. A request
//                 whose deadline has passed is dropped, not done, on either side
//       24     4  credits: receive buffers the sender has posted for the other side since its
//                 last grant (piggybacked on any frame)
//       28     2  flags: kMore (the body continues in the next frame of the same request id),
//                 kError (a response carrying a status, not a result), kLanding (a request
//                 whose body begins with where its answer may land), kPlaced, kLanded and
//                 kWritten (an answer to one: see "Landing" below); others must be 0
//       30     2  reserved, 0
//
// Landing. A caller may say where a large answer should land in its memory: the request's
// body then begins with 16 bytes, the address (u64), the remote key (u32, 0 on TCP) and the
// capacity (u32). The answer's first n bytes are the landing's:
//  - TCP: they come first, in frames of their own flagged kPlaced (and kMore), whose bodies
//    the caller's side receives straight into the landing, in order; then the rest of the
//    answer as a message flagged kLanded (n is what the placed frames carried);
//  - RDMA: the answering side writes them into the landing by RDMA WRITE, then sends the
//    rest of the answer flagged kWritten, followed by n (u64) (the frame, sent after the
//    write on the same queue pair, arrives after the bytes).
//
// The wire is hostile: Decode() checks every field before anything reads the body, and a
// frame that breaks a rule is an error for its connection alone (the transport closes it).
//
// Credits. A side may send a frame only while it holds a credit from the other: one per
// receive buffer the other has posted (on RDMA a posted RECV; on TCP a slot of its receive
// window). The receiver grants the buffers it posts in the `credits` field of whatever it
// sends next, and on its own in a `credit` frame once what it owes the sender reaches the
// low-water mark; a sender out of credits waits (backpressure), it never sends and never
// buffers without bound. Credit and ping frames themselves take no credit (a side keeps a
// reserve for them).
//
//   FrameReader reader(kMaxBody);
//   reader.Feed(bytes);                        // any split of the stream
//   while (auto f = reader.Next()) { ... }     // whole frames, the body in place when it can
//   if (!reader.status().ok()) close the connection;

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerohop::peer {

inline constexpr uint16_t kFrameMagic = 0x5A48;
inline constexpr uint8_t kFrameVersion = 1;
inline constexpr size_t kFrameHeaderSize = 32;
// No connection agrees to bodies larger than this (a large payload goes by RDMA WRITE or
// in many frames with kMore).
inline constexpr uint32_t kMaxFrameBody = 16u << 20;
// No side posts more receive buffers than this for one connection.
inline constexpr uint32_t kMaxCredits = 1u << 16;

enum class FrameKind : uint8_t {
    kHello = 1,      // connection set-up: version, max body, the sender's nonce
    kChallenge = 2,  // the listener's nonce and its proof of the pre-shared key
    kProof = 3,      // the dialer's proof
    kRequest = 4,
    kResponse = 5,
    kCredit = 6,  // only returns credits
    kPing = 7,
    kPong = 8,
    kGoaway = 9,  // no new requests on this connection; those in flight are answered
};

enum FrameFlags : uint16_t {
    kFrameMore = 1 << 0,
    kFrameError = 1 << 1,
    kFrameLanding = 1 << 2,
    kFrameLanded = 1 << 3,
    kFrameWritten = 1 << 4,
    kFramePlaced = 1 << 5,
};

// The landing descriptor at the start of a kFrameLanding request's body.
inline constexpr size_t kLandingSize = 16;

struct FrameHeader {
    FrameKind kind = FrameKind::kPing;
    uint32_t length = 0;
    uint64_t request_id = 0;
    uint64_t deadline_ns = 0;  // absolute, since the Unix epoch; 0: none
    uint32_t credits = 0;
    uint16_t flags = 0;
};

// Whether `kind` belongs to a request (and so carries a nonzero request id).
bool IsRequestLevel(FrameKind kind);
std::string_view FrameKindName(FrameKind kind);

// The 32 header bytes of `h` into `out`.
void EncodeHeader(const FrameHeader& h, char out[kFrameHeaderSize]);
// A frame (header and body) as one string, for tests and small frames.
std::string EncodeFrame(FrameHeader h, std::string_view body);

// Checks and decodes a header; `max_body` is the connection's agreed maximum. Every
// violation is InvalidArgument naming the field and its value.
absl::StatusOr<FrameHeader> DecodeHeader(std::string_view bytes, uint32_t max_body);

struct Frame {
    FrameHeader header;
    std::string_view body;  // valid until the next Feed() or Next()
};

// Cuts a byte stream (TCP) into frames. Bodies that arrived whole in one Feed() are handed
// out in place; a body split across feeds is gathered into the reader's own buffer (at most
// max_body bytes). After the first malformed frame every call returns nothing and status()
// says why: the connection must be closed.
class FrameReader {
public:
    explicit FrameReader(uint32_t max_body) : max_body_(max_body) {}

    // The next bytes of the stream; they must stay valid until the next Feed(). Call Next()
    // until it returns nothing before feeding more.
    void Feed(std::string_view bytes);
    std::optional<Frame> Next();
    // The body of `f`, the frame Next() just gave, as a string of its own: moved out of the
    // reader when it was gathered across feeds (a large body), copied when it is in place.
    std::string TakeBody(const Frame& f);
    const absl::Status& status() const { return status_; }
    // Frames from the next header on may be this large (the terms agreed at the handshake).
    void set_max_body(uint32_t max_body) { max_body_ = max_body; }
    // Whether a frame is begun and not finished (a peer that stopped mid-frame).
    bool mid_frame() const { return header_.has_value() || (!partial_.empty() && !delivered_); }

    // Where a frame's body goes instead of the reader's own buffer: asked once a header is
    // read (for a body of at least one byte); a destination of header.length bytes, or null
    // (the body is handed out as usual). A placed body is copied there from the feeds, or
    // received there by the caller (placing(), Placed()); Next() hands it out in place.
    void set_placement(std::function<char*(const FrameHeader&)> placement) { placement_ = std::move(placement); }
    // The body being placed, once every byte fed so far is consumed: where its next bytes go
    // and how many are still to come (left 0: none is being placed).
    struct Placing {
        char* at = nullptr;
        size_t left = 0;
    };
    Placing placing() const;
    // `n` bytes of the body being placed arrived at placing().at (received there directly).
    void Placed(size_t n);
    // The body being placed goes on in the reader's own buffer instead (its destination is no
    // longer to be written: the frame is then handed out with zeros for what was placed).
    void Unplace();

private:
    // The next `n` bytes of the stream: in place when the current feed holds them all, else
    // gathered in partial_ across feeds; nothing while they have not all arrived.
    std::optional<std::string_view> Take(size_t n);

    uint32_t max_body_;
    std::string_view input_;  // fed and not yet consumed
    std::string partial_;     // a header or body begun in an earlier feed
    bool delivered_ = false;  // partial_ is a body handed out by the last Next()
    std::optional<FrameHeader> header_;
    std::function<char*(const FrameHeader&)> placement_;
    char* place_ = nullptr;  // where header_'s body goes, if placed
    size_t placed_ = 0;      // of it, bytes there already
    absl::Status status_;
};

// One direction's credits, as the sender sees them: what the receiver granted minus what
// was sent.
class SendCredits {
public:
    explicit SendCredits(uint32_t initial) : available_(initial) {}
    // Takes one for a frame about to go; false when none is left (wait for a grant).
    bool TryTake();
    // A grant from the receiver. Refused (the connection is broken) when it would hold more
    // than kMaxCredits: a peer cannot inflate the window.
    absl::Status Grant(uint32_t credits);
    uint32_t available() const { return available_; }

private:
    uint32_t available_;
};

// The receiver's side: buffers it posted and has not granted yet, and frames it got
// without a credit it had given (a protocol violation).
class ReceiveCredits {
public:
    // `window`: buffers posted at the start (granted at hello); `low_water`: owe this many
    // and an explicit credit frame goes out without waiting for traffic to piggyback on.
    ReceiveCredits(uint32_t window, uint32_t low_water) : outstanding_(window), low_water_(low_water) {}
    // A frame arrived (it used one of our buffers). A frame beyond what was granted is an
    // error: the peer ignored flow control.
    absl::Status Received();
    // A buffer was posted again (its frame was handled).
    void Reposted() { ++owed_; }
    // The credits to put into the next frame sent (they are then granted).
    uint32_t TakeOwed();
    // Whether what is owed has reached the low-water mark: send a credit frame now.
    bool ShouldReturn() const { return owed_ >= low_water_; }
    uint32_t outstanding() const { return outstanding_; }

private:
    uint32_t outstanding_;  // granted to the peer and not yet used by it
    uint32_t owed_ = 0;     // posted and not yet granted
    uint32_t low_water_;
};

}  // namespace zerohop::peer

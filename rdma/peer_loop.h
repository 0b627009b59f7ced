#pragma once
// The peer transport, over TCP and over RDMA: one thread and one io_uring carry every
// connection of a daemon to and from its peers.
//
// Model. A PeerLoop owns listeners and connections. Accepting is one multishot accept per
// listener; receiving is one multishot receive per connection into buffers the loop
// provides to the kernel (a registered buffer ring), so an idle connection holds no buffer
// and a busy one costs no submission per read. Sends are batched: the frames queued on a
// connection go out in one sendmsg, one in flight at a time. No thread per connection.
//
// A connection starts with the handshake (handshake.h): the dialer's hello, the listener's
// challenge, the dialer's proof. Until it is done only those frames are taken; a wrong key,
// a malformed frame, a frame out of turn or a handshake that takes longer than
// `handshake_timeout` closes that connection, and only it.
//
// After it, requests and responses flow both ways under credits (frame.h): each side may
// have as many frames in flight to the other as the other posted receive buffers (its
// window); credits come back piggybacked on any frame, or in a credit frame once half the
// window is owed. A caller whose connection is out of credits waits in the connection's
// queue (backpressure); the queue is bounded (`max_queued`), beyond it a call fails with
// ResourceExhausted rather than take memory without limit.
//
// Deadlines. Every request carries its absolute deadline. The server side drops a request
// whose deadline passed before it was handed up (it answers DeadlineExceeded, never does
// the work); the calling side fails a call with DeadlineExceeded when its deadline passes
// (a late answer is then dropped).
//
//   auto loop = PeerLoop::Create({});
//   auto port = (*loop)->Listen("127.0.0.1", 0, secret_of,
//       [](PeerRequest r) { r.Respond(absl::OkStatus(), "answer"); });
//   auto peer = (*loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = key});
//   (*peer)->Call("question", absl::Now() + absl::Seconds(1),
//       [](absl::StatusOr<std::string> r) { ... });   // on the loop's thread
//
// A message larger than a frame (up to kMaxMessage) goes as several frames of one request
// id, each under a credit; the receiver gathers them (at most kMaxGathering bytes per
// connection at a time, or the connection is closed).
//
// RDMA. The same frames, handshake, credits and deadlines travel over a reliable-connected
// queue pair (rc_path.h: SENDs into receives posted in advance, one receive per credit);
// the loop watches the queue pair's completion channel on its io_uring like a socket. A
// call may give a landing (CallInto): where a large answer goes in the caller's memory. On
// RDMA the answering side writes it there (RDMA WRITE, no copy on either side; the landing's
// region is registered once through the loop's registration cache, registration_cache.h);
// on TCP the loop copies it there from the frames. The queue pair is made by the caller
// (rdmacm on a real device, a SimFabric in tests) and handed to DialRc or ServeRc.
//
// A broken connection is not made again here: its calls fail with Unavailable and the
// caller dials again (the peer backend does).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rdma/handshake.h"
#include "rdma/registration_cache.h"
#include "rdma/verbs.h"

namespace zerohop::peer {

// The largest request or answer a connection carries: larger than a frame, it travels as
// several (kFrameMore on all but the last), each under its own credit, gathered on arrival.
inline constexpr size_t kMaxMessage = size_t{256} << 20;

struct PeerOptions {
    ConnectionTerms terms;
    absl::Duration handshake_timeout = absl::Seconds(5);
    // Frames a connection holds for sending (waiting for credits or for the socket) before
    // calls fail with ResourceExhausted.
    size_t max_queued = 4096;
};

class PeerLoop;
struct Connection;

// Where a large answer may land in the caller's memory (frame.h, "Landing").
struct Landing {
    char* addr = nullptr;
    size_t capacity = 0;
    // The mapping `addr` lies in: on RDMA it is registered at its first use and stays so
    // until PeerLoop::ForgetRegion(region). Null: `addr` is registered for this call alone.
    char* region = nullptr;
    size_t region_size = 0;
    uint64_t region_id = 0;  // names the mapping (another at the same address has another id)
};

// An answer to a call with a landing: its first `landed` bytes are in the landing, `rest`
// is what followed them.
struct LandedAnswer {
    size_t landed = 0;
    std::string rest;
    bool written = false;  // the peer wrote them there (RDMA); else they were copied from frames
};

// Where the caller of a request said its answer may land (on its side of the connection).
struct RemoteLanding {
    uint64_t addr = 0;
    uint32_t rkey = 0;
    uint32_t capacity = 0;
};

// Whether a call failed because its connection broke, or was never up: the peer may or may
// not have done it (for a call that is safe to repeat: send it again on a new connection).
bool IsConnectionLoss(const absl::Status& s);

// A request as the serving side gets it; answer it once, from any thread.
class PeerRequest {
public:
    PeerRequest(std::shared_ptr<Connection> c, PeerLoop* loop, uint64_t id, uint64_t deadline_ns, std::string body,
                std::optional<RemoteLanding> landing);
    const std::string& body() const { return body_; }
    // How many bytes of an answer may go to the caller's landing (0: it gave none).
    size_t landing_capacity() const { return landing_ ? landing_->capacity : 0; }
    const std::string& key_id() const;  // the key the peer proved it holds

    absl::Time deadline() const;
    // A status that is not OK is sent as an error response (its code and message). The
    // first `land` bytes of `body` are for the caller's landing (at most landing_capacity();
    // 0 when it gave none): written into it by RDMA, or sent for its loop to put there.
    void Respond(const absl::Status& status, std::string body, size_t land = 0);

private:
    std::shared_ptr<Connection> conn_;
    PeerLoop* loop_;
    uint64_t id_;
    uint64_t deadline_ns_;
    std::string body_;
    std::optional<RemoteLanding> landing_;
};

// A dialed connection: calls to one peer.
class PeerClient {
public:
    PeerClient(std::shared_ptr<Connection> c, PeerLoop* loop) : conn_(std::move(c)), loop_(loop) {}
    ~PeerClient();
    // `done` runs once, on the loop's thread: the answer, the peer's error, DeadlineExceeded,
    // Unavailable (the connection broke: the outcome is unknown) or ResourceExhausted (too
    // much queued).
    using Done = absl::AnyInvocable<void(absl::StatusOr<std::string>) &&>;
    void Call(std::string body, absl::Time deadline, Done done);
    // The same, with a landing for the answer (which must stay valid until `done` runs).
    using LandedDone = absl::AnyInvocable<void(absl::StatusOr<LandedAnswer>) &&>;
    void CallInto(std::string body, absl::Time deadline, Landing landing, LandedDone done);
    // Whether the connection is still up.
    bool open() const;
    // "tcp" or "rdma".
    std::string_view transport() const;

private:
    std::shared_ptr<Connection> conn_;
    PeerLoop* loop_;
};

class PeerLoop {
public:
    static absl::StatusOr<std::unique_ptr<PeerLoop>> Create(PeerOptions options);
    ~PeerLoop();  // closes every connection (their calls fail with Unavailable) and stops

    // Serves the peers that prove a key `secret_of` knows; 0 as the port picks one. Returns
    // the port.
    absl::StatusOr<uint16_t> Listen(const std::string& address, uint16_t port, ListenerHandshake::SecretOf secret_of,
                                    std::function<void(PeerRequest)> on_request);
    // Connects and completes the handshake (waits for it): Unavailable when the peer cannot
    // be reached, PermissionDenied when it does not hold the key.
    absl::StatusOr<std::unique_ptr<PeerClient>> Dial(const std::string& host, uint16_t port, PeerKey key);
    // The same without waiting: `done` runs on the loop's thread.
    using Dialed = absl::AnyInvocable<void(absl::StatusOr<std::unique_ptr<PeerClient>>) &&>;
    void DialAsync(const std::string& host, uint16_t port, PeerKey key, Dialed done);
    // RDMA: a connection over `qp`, a queue pair connected to a peer's (made by rdmacm on a
    // real device, by a SimFabric in tests), on `device` (which must outlive the loop). The
    // same handshake and frames as over TCP; the same errors.
    absl::StatusOr<std::unique_ptr<PeerClient>> DialRc(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp,
                                                       PeerKey key);
    void DialRcAsync(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp, PeerKey key, Dialed done);
    // Serves the peer at the other end of `qp` as Listen serves those it accepts.
    void ServeRc(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp, ListenerHandshake::SecretOf secret_of,
                 std::function<void(PeerRequest)> on_request);
    // A landing region is about to be unmapped: its RDMA registrations go (at the end of
    // the calls using it). From any thread.
    void ForgetRegion(char* region);
    // The registration cache's counts for `device` (zeros when it was never used).
    RegistrationCache::Counts registrations(verbs::Device* device) const;

    // Runs `fn` on the loop's thread once `delay` has passed.
    void RunAfter(absl::Duration delay, absl::AnyInvocable<void() &&> fn);

    // Connections open now (dialed and accepted, handshaken or not), for tests and metrics.
    size_t connections() const;
    // Of them, those over RDMA.
    size_t rdma_connections() const;
    // Bytes of answers the kernel received straight into their callers' landings (TCP), as
    // opposed to copied there from the receive buffers; for tests and metrics.
    uint64_t received_into_landings() const;

    struct Impl;

private:
    explicit PeerLoop(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    friend class PeerRequest;
    friend class PeerClient;
};

}  // namespace zerohop::peer

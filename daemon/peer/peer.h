#pragma once
// A node's containers served to other nodes' daemons, and reached from them: the `peer`
// backend forwards every operation of the backend interface over the peer transport
// (rdma/peer_loop.h) to a data node's PeerServer, which runs it on its own backend.
//
// The wire, in the body of a peer request: the operation's number (u16, the table's), the
// request's length (u32), the request as the session wire encodes it (wire/protocol.h),
// then a put's bytes. A response's body is the result as the session wire encodes it; a
// get's is the bytes, the result, then the result's length (u32): the data node's backend
// writes the bytes straight into the answer, whose result is known only after them.
// Errors travel as the peer transport's error responses (code and message).
//
//   PeerServer server(route, {{"node-a", {{"c1", PeerRight::kWrite}}}});
//   loop->Listen(address, port, server.Secrets(keys), [&](PeerRequest r) { server.Serve(std::move(r)); });
//
//   auto backend = PeerBackend::Open(NodePeerLoop(), options);   // options.h
//   (*backend)->Stat(path, done);     // runs on the data node's backend
//
// A peer mount may name its container otherwise than the data node does (options.h: the
// local name of each container and the remote one); paths are mapped both ways.
//
// Transports. A mount given an RdmaConnector (a way to make a queue pair to the data node:
// rdmacm on a device, a simulated fabric in tests) dials by RDMA and falls back to TCP when
// that fails (the log says why; the metrics say which transport each mount uses). zerohopd's
// mounts use the node's connection manager (below): rdmacm where the machine has an RDMA
// device, none (TCP) where it has not.
//
// Over RDMA, a ranged get whose sink can lend memory up front (the daemon's session region:
// DataSink::Reserve) gives it as the call's landing: the data node writes the bytes straight
// into the client's session region, no copy in this daemon. Other gets (and every get by
// TCP) copy from the answer into the sink once.
//
// Streamed puts. A put whose bytes do not fit one peer message (or whose size is not known
// and turns out larger than a part) streams: a begin names the put and a token, parts of
// 8 MiB follow (at most two unacknowledged; each is acknowledged once the data node's
// backend has taken its bytes), an end asks for the result. The data node feeds the parts
// to its backend's PutObject as they come (a thread per streamed put, at most 16 at once and
// 4 per peer key);
// nothing is applied before the end, so a put whose stream breaks off is not applied (an
// abandoned stream is given up after 30 s without a part). The calling side streams on its
// own thread (a source too large for one message is read where blocking is allowed: an
// upload's thread).

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backend/backend.h"
#include "peer/options.h"
#include "rdma/cm.h"
#include "rdma/peer_loop.h"
#include "rdma/verbs.h"

namespace zerohop {

enum class PeerRight { kRead, kWrite };

// Peer operations beyond the backend's table: a put streamed in parts (above). Their
// requests begin with the stream's token (u64); a begin's continues with the put's request,
// a part's bytes travel as its extra.
inline constexpr uint16_t kPeerStreamBegin = 0xFF01;
inline constexpr uint16_t kPeerStreamPart = 0xFF02;
inline constexpr uint16_t kPeerStreamEnd = 0xFF03;
inline constexpr uint16_t kPeerStreamAbort = 0xFF04;

// What one peer key may reach on this node: containers and the right on each.
struct PeerGrant {
    std::string secret;
    absl::flat_hash_map<std::string, PeerRight> containers;
};

class PeerServer {
public:
    // `route`: the backend serving a container on this node, or null.
    using Route = std::function<Backend*(std::string_view container)>;
    PeerServer(Route route, absl::flat_hash_map<std::string, PeerGrant> grants);
    ~PeerServer();  // Close()

    // For PeerLoop::Listen: the secret of each key this node accepts.
    peer::ListenerHandshake::SecretOf Secrets() const;
    // Runs the request on the backend of its container, if the key may, and answers it.
    void Serve(peer::PeerRequest r);
    // From now on requests are refused (Unavailable): the backends are about to close.
    // Waits for the requests being handed to them, and gives up the streamed puts in
    // progress (not applied), waiting for their threads.
    void Close();

private:
    Route route_;
    absl::flat_hash_map<std::string, PeerGrant> grants_;
    std::shared_mutex closing_;
    bool closed_ = false;  // under closing_

    // Streamed puts in progress, by token.
    struct Stream;
    void StartStream(std::shared_ptr<peer::PeerRequest> r, std::string_view request);
    void ContinueStream(std::shared_ptr<peer::PeerRequest> r, uint16_t op, std::string_view request,
                        std::string_view extra);
    std::mutex streams_mu_;
    std::condition_variable streams_cv_;
    absl::flat_hash_map<uint64_t, std::shared_ptr<Stream>> streams_;
};

// A queue pair connected to a data node's, on `device`: what an RdmaConnector makes.
using RcConnected = peer::verbs::Connected;
// How a mount reaches its data node by RDMA; an error when it cannot (the mount uses TCP).
using RdmaConnector = std::function<absl::StatusOr<RcConnected>(const std::string& host, uint16_t port)>;

// The node-wide peer loop: every peer mount's connections and the data node's listener.
// Made at first use; it lives as long as the process.
peer::PeerLoop* NodePeerLoop();
// A client's session region is about to be unmapped: its RDMA registration, if a get landed
// in it, goes (PeerLoop::ForgetRegion). Cheap when there is none.
void ForgetLandingRegion(char* region);
// The node's peer transport's metrics (connections by transport, bytes received straight
// into sessions' regions), in the Prometheus text format; empty while it was never made.
std::string PeerTransportMetrics();

// The node's RDMA connection manager (rdma/cm.h): the one set (tests running daemons in
// their own process set a simulated one, before a server starts; it must outlive them), else
// rdmacm on the machine's RDMA devices (rdma/ibv.h), else null: no device, peers use TCP.
void SetNodeConnectionManager(peer::verbs::ConnectionManager* cm);
peer::verbs::ConnectionManager* NodeConnectionManager();
// A mount's way to its data node by RDMA through the node's manager; null when it has none.
RdmaConnector NodeRdmaConnector();

class PeerBackend : public Backend {
public:
    // Calls go through `loop` (which must outlive the backend) to the data node `options`
    // names. The connection is made now; when it cannot be (the node is down) the mount
    // still opens, and every call waits for a connection until its deadline. A connection
    // that breaks is made again with a backoff (50 ms doubling to 5 s); calls that are safe
    // to repeat and were in flight are sent again on it, others fail with Unavailable
    // (outcome unknown). PermissionDenied when the node refuses the key.
    static absl::StatusOr<std::unique_ptr<PeerBackend>> Open(peer::PeerLoop* loop, PeerBackendOptions options,
                                                            RdmaConnector rdma = nullptr);
    ~PeerBackend() override;

    std::string_view kind() const override { return "peer"; }
    // Per mount: whether its connection is up and by which transport, how many times it was
    // made, how many calls wait for it.
    std::string RenderMetrics() const override;
    ZH_BACKEND_OPERATIONS(ZH_BACKEND_OVERRIDE)

    // Sends one request (the envelope above) and hands back the answer's body.
    void Call(uint16_t op, bool repeatable, std::string request, std::string extra, peer::PeerClient::Done done);
    // The same with a landing for the answer's bytes (the transport's CallInto).
    void CallInto(uint16_t op, bool repeatable, std::string request, peer::Landing landing,
                  peer::PeerClient::LandedDone done);

    struct State;  // shared with the calls in flight

private:
    explicit PeerBackend(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
};

}  // namespace zerohop

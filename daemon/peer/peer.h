#pragma once
// A node's containers served to other nodes' daemons, and reached from them: the `peer`
// backend forwards every operation of the backend interface over the peer transport
// (rdma/tcp.h) to a data node's PeerServer, which runs it on its own backend.
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
// Not built yet: bodies larger than one frame (a get or put above the connection's
// max_body, 16 MiB, is refused), RDMA, and zero-copy (a get's bytes are copied from the
// frame into the caller's sink once).

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backend/backend.h"
#include "peer/options.h"
#include "rdma/tcp.h"

namespace zerohop {

enum class PeerRight { kRead, kWrite };

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

    // For PeerLoop::Listen: the secret of each key this node accepts.
    peer::ListenerHandshake::SecretOf Secrets() const;
    // Runs the request on the backend of its container, if the key may, and answers it.
    void Serve(peer::PeerRequest r);
    // From now on requests are refused (Unavailable): the backends are about to close.
    // Waits for the requests being handed to them.
    void Close();

private:
    Route route_;
    absl::flat_hash_map<std::string, PeerGrant> grants_;
    std::shared_mutex closing_;
    bool closed_ = false;  // under closing_
};

// The node-wide peer loop: every peer mount's connections and the data node's listener.
// Made at first use; it lives as long as the process.
peer::PeerLoop* NodePeerLoop();

class PeerBackend : public Backend {
public:
    // Calls go through `loop` (which must outlive the backend) to the data node `options`
    // names. The connection is made now; when it cannot be (the node is down) the mount
    // still opens, and every call waits for a connection until its deadline. A connection
    // that breaks is made again with a backoff (50 ms doubling to 5 s); calls that are safe
    // to repeat and were in flight are sent again on it, others fail with Unavailable
    // (outcome unknown). PermissionDenied when the node refuses the key.
    static absl::StatusOr<std::unique_ptr<PeerBackend>> Open(peer::PeerLoop* loop, PeerBackendOptions options);
    ~PeerBackend() override;

    std::string_view kind() const override { return "peer"; }
    // Per mount: whether its connection is up and by which transport, how many times it was
    // made, how many calls wait for it.
    std::string RenderMetrics() const override;
    ZH_BACKEND_OPERATIONS(ZH_BACKEND_OVERRIDE)

    // Sends one request (the envelope above) and hands back the answer's body.
    void Call(uint16_t op, bool repeatable, std::string request, std::string extra, peer::PeerClient::Done done);

    struct State;  // shared with the calls in flight

private:
    explicit PeerBackend(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
};

}  // namespace zerohop

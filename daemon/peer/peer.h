#pragma once
// A node's containers served to other nodes' daemons, and reached from them: the `peer`
// backend forwards every operation of the backend interface over the peer transport
// (rdma/tcp.h) to a data node's PeerServer, which runs it on its own backend.
//
// The wire, in the body of a peer request: the operation's number (u16, the table's), the
// request's length (u32), the request as the session wire encodes it (wire/protocol.h),
// then a put's bytes. A response's body is the result as the session wire encodes it; a
// get's is the result's length (u32), the result, then the bytes. Errors travel as the
// peer transport's error responses (code and message).
//
//   PeerServer server(route, {{"node-a", {{"c1", PeerRight::kWrite}}}});
//   loop->Listen(address, port, server.Secrets(keys), [&](PeerRequest r) { server.Serve(std::move(r)); });
//
//   auto backend = PeerBackend::Connect(loop, host, port, {.id = "node-a", .secret = key}, {});
//   (*backend)->Stat(path, done);     // runs on the data node's backend
//
// Not built yet: bodies larger than one frame (a get or put above the connection's
// max_body, 16 MiB, is refused), reconnecting after the connection breaks, and RDMA.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backend/backend.h"
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

private:
    Route route_;
    absl::flat_hash_map<std::string, PeerGrant> grants_;
};

struct PeerBackendOptions {
    // How long an operation may take, end to end, before it fails with DeadlineExceeded.
    absl::Duration timeout = absl::Seconds(30);
};

class PeerBackend : public Backend {
public:
    // Dials the data node (`loop` must outlive the backend).
    static absl::StatusOr<std::unique_ptr<PeerBackend>> Connect(peer::PeerLoop* loop, const std::string& host,
                                                                uint16_t port, peer::PeerKey key,
                                                                PeerBackendOptions options);

    std::string_view kind() const override { return "peer"; }
    ZH_BACKEND_OPERATIONS(ZH_BACKEND_OVERRIDE)

    // Sends one request (the envelope above) and hands back the answer's body.
    void Call(uint16_t op, std::string request, std::string extra, peer::PeerClient::Done done);

private:
    PeerBackend(std::unique_ptr<peer::PeerClient> client, PeerBackendOptions options)
        : client_(std::move(client)), options_(options) {}

    std::unique_ptr<peer::PeerClient> client_;
    PeerBackendOptions options_;
};

}  // namespace zerohop

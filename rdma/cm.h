#pragma once
// How RDMA connections between daemons are made: rdmacm's part (rdma_listen and
// rdma_connect, address resolution, the exchange of queue pair numbers), behind a seam like
// the verbs themselves (verbs.h). A data node listens on its peer_listen address and port;
// a caller connects to the host and port its mount names and gets a queue pair connected to
// the one the listener accepted. What travels on the pair is the peer loop's business
// (peer_loop.h: DialRc on the caller's side, ServeRc on the listener's).
//
// Implementations: rdmacm on a real device (ibv.h; these machines have none to run it on),
// and SimConnectionManager (sim_verbs.h) joining daemons of one process over a simulated
// fabric.
//
//   cm->Listen("0.0.0.0", 7464, [&](Connected c) { loop->ServeRc(c.device, std::move(c.qp), ...); });
//   auto c = cm->Connect("10.0.0.2", 7464);     // Unavailable: no RDMA path; use TCP

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rdma/verbs.h"

namespace zerohop::peer::verbs {

// One end of a connected queue pair and the device it lives on.
struct Connected {
    Device* device = nullptr;
    std::unique_ptr<QueuePair> qp;
};

class ConnectionManager {
public:
    virtual ~ConnectionManager() = default;
    // A queue pair connected to one the listener at host:port accepted. Unavailable when
    // there is no RDMA path (no device, no listener, unreachable).
    virtual absl::StatusOr<Connected> Connect(const std::string& host, uint16_t port) = 0;
    // Accepts connections at address:port; `accept` gets each accepted end (and must post
    // its receives promptly: the caller's first frame is on its way).
    using Accept = std::function<void(Connected)>;
    virtual absl::Status Listen(const std::string& address, uint16_t port, Accept accept) = 0;
    // Stops accepting at address:port.
    virtual void StopListening(const std::string& address, uint16_t port) = 0;
};

}  // namespace zerohop::peer::verbs

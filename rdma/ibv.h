#pragma once
// The verbs seam (verbs.h) and the connection-manager seam (cm.h) on a real RDMA device:
// rdma-core's libibverbs and librdmacm (InfiniBand, RoCE, iWARP alike).
//
// One protection domain per device, made at the first connection on it; a completion queue
// and a completion channel (non-blocking: the peer loop polls its descriptor) per queue
// pair; RC queue pairs made and connected by rdmacm, with the retries a transport between
// daemons wants (rnr_retry 7: a receive missing for a moment is waited for, never an error;
// retry_count 7 for lost packets). A listener runs a thread of its own on its rdmacm event
// channel: connection requests are accepted (queue pair made, then rdma_accept) and handed
// to the accept callback; disconnects are acknowledged.
//
//   auto cm = IbvConnectionManager::Open();        // Unavailable: no device, or no RDMA in the kernel
//   (*cm)->Listen("10.0.0.2", 7464, accept);
//   auto c = (*cm)->Connect("10.0.0.2", 7464);
//
// These machines have no RDMA device and their kernel no InfiniBand support: this builds
// and its refusal paths run here (tests/peer_ibv_test.cc); the transfer tests run only
// where libibverbs lists a device.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "rdma/cm.h"

namespace zerohop::peer::verbs {

// The names of the RDMA devices libibverbs finds (none on these machines).
std::vector<std::string> IbvDeviceNames();

class IbvConnectionManager : public ConnectionManager {
public:
    // Unavailable, saying why, when the machine has no RDMA device or rdmacm cannot start.
    static absl::StatusOr<std::unique_ptr<IbvConnectionManager>> Open();
    ~IbvConnectionManager() override;

    absl::StatusOr<Connected> Connect(const std::string& host, uint16_t port) override;
    absl::Status Listen(const std::string& address, uint16_t port, Accept accept) override;
    void StopListening(const std::string& address, uint16_t port) override;

    struct Impl;

private:
    explicit IbvConnectionManager(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace zerohop::peer::verbs

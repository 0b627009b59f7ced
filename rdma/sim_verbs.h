#pragma once
// A simulated RDMA fabric in this process: devices and reliable-connected queue pairs that
// behave as verbs.h says a real one does (in-order execution per queue pair,
// receiver-not-ready retries, rkey, bounds and rights checks on remote writes, the error
// state with flushed completions on both sides), with faults a test can inject: latency,
// lost packets that are retransmitted, a cut link. It exists so that the RDMA transport's
// logic runs where no RDMA device does (these machines, CI); it says nothing about how fast
// a real device is, and no performance is ever reported from it.
//
//   SimFabric fabric;
//   auto a = fabric.NewDevice("sim0"), b = fabric.NewDevice("sim1");
//   auto [qa, qb] = fabric.Connect(*a, *b, {});
//   fabric.CutLink(true);   // from now on every operation fails after its retries

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <map>
#include <mutex>

#include "absl/time/time.h"
#include "rdma/cm.h"
#include "rdma/verbs.h"

namespace zerohop::peer::verbs {

struct SimQpOptions {
    int rnr_retry = 7;                                      // receiver-not-ready retries
    absl::Duration rnr_delay = absl::Milliseconds(1);       // between them
    int retry_count = 7;                                    // retransmissions of a lost packet
    absl::Duration retransmit_timeout = absl::Milliseconds(1);
};

class SimDevice;

class SimFabric {
public:
    SimFabric();
    ~SimFabric();
    SimFabric(const SimFabric&) = delete;
    SimFabric& operator=(const SimFabric&) = delete;

    std::unique_ptr<SimDevice> NewDevice(std::string name);
    // Two queue pairs, one on each device, connected to each other (RC).
    std::pair<std::unique_ptr<QueuePair>, std::unique_ptr<QueuePair>> Connect(SimDevice& a, SimDevice& b,
                                                                              SimQpOptions options);

    // Every operation takes this long to execute (0: as soon as the fabric gets to it).
    void SetLatency(absl::Duration d);
    // The next `n` operations are lost once each: retransmitted after the timeout.
    void DropNext(int n);
    // While cut, every operation is lost: after its retries, transport retry exceeded.
    void CutLink(bool cut);

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

class SimDevice : public Device {
public:
    ~SimDevice() override;
    std::string_view name() const override;
    absl::StatusOr<MemoryRegion> Register(char* addr, size_t length, uint32_t access) override;
    void Deregister(const MemoryRegion& mr) override;
    // Regions registered now (a test's check that what was registered is let go).
    size_t registered_regions() const;

    struct State;

private:
    friend class SimFabric;
    explicit SimDevice(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
};

// Connection management over a SimFabric (cm.h), for the daemons of one process sharing one
// manager: a listener is known by its address and port ("0.0.0.0": every address); a
// connection to it is a pair of queue pairs on `device`, one handed to the listener, one to
// the caller. Queue pairs retry a missing receive as a real RC pair at rnr_retry 7 does
// (here: for a second).
class SimConnectionManager : public ConnectionManager {
public:
    SimConnectionManager(SimFabric* fabric, SimDevice* device) : fabric_(fabric), device_(device) {}
    absl::StatusOr<Connected> Connect(const std::string& host, uint16_t port) override;
    absl::Status Listen(const std::string& address, uint16_t port, Accept accept) override;
    void StopListening(const std::string& address, uint16_t port) override;

private:
    SimFabric* fabric_;
    SimDevice* device_;
    std::mutex mu_;
    std::map<std::pair<std::string, uint16_t>, Accept> listeners_;
};

}  // namespace zerohop::peer::verbs

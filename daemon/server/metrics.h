#pragma once
// Prometheus text metrics of zerohopd, served on 127.0.0.1:<metrics_port>/metrics.
//
//   zerohop_requests_total{op="get_item",backend="embedded"} 1234
//   zerohop_request_errors_total{op="get_item",backend="embedded",code="NOT_FOUND"} 3
//   zerohop_request_bytes_total{op="get_object",direction="out"} 1048576
//   zerohop_request_duration_seconds_bucket{op="get_item",le="2e-06"} 1200   (and _sum, _count)
//   zerohop_worker_requests_total{worker="0"} 617
//   zerohop_sessions_open 12, zerohop_sessions_total 40, zerohop_sessions_refused_total 1,
//   zerohop_bad_descriptors_total 0
//
// `backend` is the kind of backend that served the request ("zerohopd": the daemon answered
// it itself, as nop, status and a listing of "/"). Each worker keeps its own Metrics and is
// its only writer, so a bump is a plain add (no locked instruction, no cache line shared
// between workers); rendering sums the workers' counters as they are.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "shmring/unique_fd.h"

namespace zerohop {

class Metrics {
public:
    static constexpr size_t kOps = 64;  // protocol op numbers are below this
    static constexpr size_t kBackends = 4;  // backend labels: zerohopd itself and three kinds
    static constexpr size_t kCodes = 17;
    static constexpr std::array<double, 14> kBuckets = {1e-6, 2e-6,   5e-6, 1e-5, 2e-5, 5e-5, 1e-4,
                                                        2e-4, 5e-4,   1e-3, 1e-2, 1e-1, 1.0,  10.0};

    // One thread only (the owner): a request answered, by the backend labelled `backend`.
    void Record(uint16_t op, uint8_t backend, int code, double seconds, uint64_t bytes_in, uint64_t bytes_out);
    // One thread only (the owner): a descriptor refused as malformed.
    void BadDescriptor();

    // Any thread: this worker's totals.
    uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
    uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
    uint64_t bad_descriptors() const { return bad_descriptors_.load(std::memory_order_relaxed); }

    // The gauges and totals the server keeps itself.
    struct Sessions {
        uint64_t open = 0, total = 0, refused = 0;
    };
    // Any thread: the sum of the workers' metrics (worker i is workers[i]); `backends` names
    // the backend labels.
    static std::string Render(const std::vector<const Metrics*>& workers, const Sessions& sessions,
                              const std::vector<std::string>& backends);

private:
    struct PerOp {
        std::atomic<uint64_t> count{0};
        std::array<std::atomic<uint64_t>, kCodes> errors{};
        std::array<std::atomic<uint64_t>, kBuckets.size()> buckets{};
        std::atomic<uint64_t> sum_ns{0};
        std::atomic<uint64_t> bytes_in{0}, bytes_out{0};
    };
    std::array<std::array<PerOp, kBackends>, kOps> ops_;
    std::atomic<uint64_t> requests_{0}, errors_{0}, bad_descriptors_{0};
};

// A minimal HTTP/1.0 endpoint on 127.0.0.1 that answers every request with `render()`.
class MetricsEndpoint {
public:
    ~MetricsEndpoint();
    // On `port`; when it is taken and `any_if_taken`, on a free port the kernel picks.
    absl::Status Start(uint16_t port, bool any_if_taken, std::function<std::string()> render);
    void Stop();
    // The port it listens on; 0 before Start.
    uint16_t port() const { return port_; }

private:
    void Loop();

    shmring::UniqueFd listener_;
    shmring::UniqueFd stop_;
    uint16_t port_ = 0;
    std::function<std::string()> render_;
    std::thread thread_;
};

}  // namespace zerohop

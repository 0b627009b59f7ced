#pragma once
// zh-bench's load generator: a workload given by flags or a file (operation mix, value
// size, key count, client threads, requests in flight per thread, duration), driven through
// libzerohop and, with the same workload, through hiredis against a redis-server the bench
// starts itself. Reports ops/s and p50/p99/p999 per operation and in total.
//
// A workload file holds `name = value` lines (# starts a comment), with the flags' names:
//
//   mix = get_item=80, put_item=15, update_item=5
//   value_size = 100
//   keys = 10000
//   threads = 4
//   depth = 16
//   duration_ms = 5000
//   spin_us = 50            # a waiting client spins this long, then sleeps

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench_harness.h"

namespace zerohop {

struct LoadSpec {
    // Operation -> weight. Operations: get_item, put_item, update_item, get_object,
    // put_object, nop.
    std::vector<std::pair<std::string, double>> mix = {{"get_item", 1}};
    size_t value_size = 100;  // bytes of an item's value attribute, or of an object
    size_t keys = 10000;      // keys drawn uniformly
    int threads = 1;          // each with its own session
    int depth = 1;            // requests in flight per thread
    std::chrono::milliseconds duration{5000};
    int spin_us = 50;         // how long a waiting client thread spins before it sleeps
    bool baseline = true;     // run the same workload against redis-server
    std::string socket;       // a running zerohopd; empty: start one on a temporary store
    std::string access_key;

    // One `name=value` setting, as a flag or a file line gives it.
    absl::Status Set(const std::string& name, const std::string& value);
    absl::Status Validate() const;
    std::string Describe() const;  // one line, for humans and JSON
};

absl::StatusOr<LoadSpec> ReadLoadFile(const std::string& path, LoadSpec base);

// Per operation and in total, each beside Redis running the same workload.
std::vector<Comparison> RunLoad(const LoadSpec& spec, const std::string& dir);

}  // namespace zerohop

#pragma once
// zh-bench's shared-memory suite (see bench_shm.cc).

#include <chrono>
#include <string>
#include <vector>

#include "bench_harness.h"

namespace zerohop {

// Runs every shm workload with its baseline; prints the idle-session figures itself.
std::vector<Comparison> ShmSuite(std::chrono::milliseconds d, const std::string& dir, bool json);

}  // namespace zerohop

#pragma once
// zh-bench's FUSE suite (see bench_fuse.cc): zerohop-fuse beside tmpfs and passthrough_ll.

#include <chrono>
#include <string>
#include <vector>

#include "bench_harness.h"

namespace zerohop {

// Every workload against passthrough_ll and tmpfs; empty (with a message) without root,
// /dev/fuse or fio.
std::vector<Comparison> FuseSuite(std::chrono::milliseconds d, const std::string& dir);

}  // namespace zerohop

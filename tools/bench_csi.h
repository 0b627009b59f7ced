#pragma once
// zh-bench's CSI suite (see bench_csi.cc): how long zerohop-csi takes to publish a volume
// and how long a pod then waits for its first byte, beside what a reference CSI plugin
// (csi-driver-host-path) does for a publish: a bind mount.

#include <chrono>
#include <string>
#include <vector>

#include "bench_harness.h"

namespace zerohop {

// Empty (with a message) without root and /dev/fuse.
std::vector<Comparison> CsiSuite(std::chrono::milliseconds d, const std::string& dir);

}  // namespace zerohop

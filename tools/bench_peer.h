#pragma once
// zh-bench's peer suite (see bench_peer.cc).

#include <chrono>
#include <string>
#include <vector>

#include "bench_harness.h"

namespace zerohop {

// A pod's calls to a container of another node: through its daemon, the peer transport
// (TCP on loopback) and the data node's daemon, against Redis over loopback.
std::vector<Comparison> PeerSuite(std::chrono::milliseconds d, const std::string& dir);

}  // namespace zerohop

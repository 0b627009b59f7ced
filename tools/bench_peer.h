#pragma once
// zh-bench's peer suite (see bench_peer.cc).

#include <chrono>
#include <string>
#include <vector>

#include "bench_harness.h"

namespace zerohop {

// A pod's calls to a container of another node: through its daemon, the peer transport
// (TCP over a veth link between two network namespaces made for the run; root) and the data
// node's daemon, against a raw TCP ping-pong and stream, Redis and a gRPC echo over the
// same link.
std::vector<Comparison> PeerSuite(std::chrono::milliseconds d, const std::string& dir);

// zh-bench --peer-worker KIND ...: the suite's servers and client processes (this binary,
// started again in the right network namespace).
int PeerWorker(int argc, char** argv);

}  // namespace zerohop

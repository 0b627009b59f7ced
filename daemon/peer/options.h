#pragma once
// What a `peer` mount is configured with, and what this node serves to its peers. A light
// header: config/ produces these from zerohopd's configuration without linking the
// transport.
//
//   mounts:
//     - container: shared
//       backend: peer
//       options: {url: "peer://10.0.0.2:7464/data", key_id: node-a, secret_file: /etc/zerohop/peer-key}

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace zerohop {

struct PeerBackendOptions {
    static constexpr std::string_view kKind = "peer";
    std::vector<std::string> containers;  // the local names
    std::map<std::string, std::string> remote_of;  // local name -> the data node's name
    std::string host;
    uint16_t port = 0;
    std::string key_id;
    std::string secret;
    // How long an operation may take, end to end (waiting for a connection included).
    absl::Duration timeout = absl::Seconds(30);
};

// Serving this node's containers to other daemons (zerohopd's peer_listen and peer_keys).
struct PeerKeyConfig {
    std::string id;
    std::string secret;
    std::map<std::string, bool> containers;  // container -> writable
};

struct PeerListenConfig {
    bool enabled = false;
    std::string address = "0.0.0.0";
    uint16_t port = 7464;
};

}  // namespace zerohop

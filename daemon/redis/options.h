#pragma once
// What the redis backend and its client are configured with. A light header: config/
// produces these from zerohopd's configuration without linking the backend.
//
//   RedisBackendOptions o;
//   o.client.seeds = *redis::ParseRedisUrl("redis://10.0.0.1:7000,10.0.0.2:7000");
//   o.containers = {"users"};

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "zerohop/value.h"

namespace zerohop {
namespace redis {

struct Endpoint {
    std::string host;
    int port = 6379;
    std::string ToString() const;
    bool operator==(const Endpoint&) const = default;
};

// "redis://host:port[,host:port...]" (a bare "host:port[,...]" too). IPv6 hosts in brackets.
absl::StatusOr<std::vector<Endpoint>> ParseRedisUrl(absl::string_view url);

struct ClientOptions {
    std::vector<Endpoint> seeds;
    std::string user;      // ACL user ("" = default)
    std::string password;  // "" = none; never logged
    int database = 0;      // SELECT (standalone only; a cluster has only 0)
    absl::Duration connect_timeout = absl::Seconds(2);
    absl::Duration command_timeout = absl::Seconds(5);
    // How long a command that is safe to repeat is retried through lost connections,
    // failovers and CLUSTERDOWN before it fails.
    absl::Duration retry_window = absl::Seconds(15);
    int connections_per_node = 2;
};

}  // namespace redis

struct RedisBackendOptions {
    static constexpr std::string_view kKind = "redis";

    redis::ClientOptions client;
    std::string key_prefix = "zh";        // keys are {<prefix>:<container>}:...
    std::vector<std::string> containers;  // served by this backend
    size_t inline_max_bytes = 512 * 1024;  // larger objects are stored in chunks
    size_t chunk_bytes = 512 * 1024;
    // Writes are acknowledged once this many replicas have them (WAIT); 0: when the primary
    // has them. See docs/REDIS.md for what each setting promises.
    int replicas = 0;
    absl::Duration replica_timeout = absl::Seconds(1);
    size_t threads = 8;
    std::function<Timestamp()> clock;  // tests replace it
};

}  // namespace zerohop

#pragma once
// Host names of Redis servers, resolved off the event loops.
//
// A daemon worker drives its own Redis connections (RedisClient::Attach): a getaddrinfo
// that waits seconds for a DNS server would stall every session of that worker. Numeric
// addresses are converted at once (no lookup). A name is looked up on the resolver's own
// thread; until its first answer Lookup says "pending" and the caller parks its command
// (it is retried shortly). An address is kept for `ttl`, then looked up again in the
// background while the old one is still used; a failed lookup is tried again after
// `retry` (a name that resolved once keeps its last address meanwhile).
//
//   Resolver r;
//   bool pending = false;
//   auto a = r.Lookup({"redis.default.svc", 6379}, &pending);  // Unavailable + pending at first

#include <sys/socket.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "redis/redis_client.h"

namespace zerohop::redis {

struct SocketAddress {
    sockaddr_storage addr = {};
    socklen_t len = 0;
};

class Resolver {
public:
    explicit Resolver(absl::Duration ttl = absl::Seconds(30), absl::Duration retry = absl::Seconds(1));
    ~Resolver();  // a lookup still running finishes on its own and is dropped
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // Every address of `ep` (IPv6 and IPv4, in getaddrinfo's order; never empty), or
    // Unavailable: `*pending` says whether a lookup is under way (ask again soon) rather
    // than failed. Never blocks on the network. Thread-safe.
    absl::StatusOr<std::vector<SocketAddress>> Lookup(const Endpoint& ep, bool* pending);

private:
    struct State;
    std::shared_ptr<State> state_;  // shared with the lookup thread, which may outlive us
};

}  // namespace zerohop::redis

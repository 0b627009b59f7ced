#include "registry/registry.h"

#include <type_traits>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "embedded/embedded_backend.h"
#include "peer/peer.h"
#include "redis/redis_backend.h"

namespace zerohop {

namespace {

// Start-up errors name the configuration key (mounts) and the containers, and say what to do.
absl::StatusOr<std::unique_ptr<Backend>> Open(const EmbeddedOptions& o) {
    auto b = EmbeddedBackend::Open(o);
    if (!b.ok()) {
        bool locked = absl::StrContains(b.status().message(), "lock file");
        return absl::Status(b.status().code(),
                            absl::StrFormat("mounts (containers %s): %s%s", absl::StrJoin(o.containers, ", "),
                                            b.status().message(),
                                            locked ? " (another zerohopd uses this store; each instance needs a "
                                                     "dir of its own)"
                                                   : ""));
    }
    return std::unique_ptr<Backend>(std::move(*b));
}

absl::StatusOr<std::unique_ptr<Backend>> Open(const RedisBackendOptions& o) {
    auto b = RedisBackend::Open(o);
    if (!b.ok()) {
        std::vector<std::string> seeds;
        for (const redis::Endpoint& e : o.client.seeds) {
            seeds.push_back(e.ToString());
        }
        return absl::Status(b.status().code(),
                            absl::StrFormat("mounts (containers %s on redis://%s): %s", absl::StrJoin(o.containers, ", "),
                                            absl::StrJoin(seeds, ","), b.status().message()));
    }
    return std::unique_ptr<Backend>(std::move(*b));
}

absl::StatusOr<std::unique_ptr<Backend>> Open(const PeerBackendOptions& o) {
    auto b = PeerBackend::Open(NodePeerLoop(), o, NodeRdmaConnector());
    if (!b.ok()) {
        return absl::Status(b.status().code(),
                            absl::StrFormat("mounts (containers %s on peer://%s:%d): %s", absl::StrJoin(o.containers, ", "),
                                            o.host, o.port, b.status().message()));
    }
    return std::unique_ptr<Backend>(std::move(*b));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> OpenBackend(const BackendOptions& options) {
    // An alternative of BackendOptions without an Open above does not compile.
    return std::visit([](const auto& o) { return Open(o); }, options);
}

}  // namespace zerohop

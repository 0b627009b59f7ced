#include "registry/registry.h"

#include <type_traits>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "embedded/embedded_backend.h"
#include "redis/redis_backend.h"

namespace zerohop {

namespace {

absl::StatusOr<std::unique_ptr<Backend>> Open(const EmbeddedOptions& o) { return EmbeddedBackend::Open(o); }

absl::StatusOr<std::unique_ptr<Backend>> Open(const RedisBackendOptions& o) {
    auto b = RedisBackend::Open(o);
    if (!b.ok()) {
        std::vector<std::string> seeds;
        for (const redis::Endpoint& e : o.client.seeds) {
            seeds.push_back(e.ToString());
        }
        return absl::Status(b.status().code(),
                            absl::StrFormat("containers %s on redis://%s: %s", absl::StrJoin(o.containers, ", "),
                                            absl::StrJoin(seeds, ","), b.status().message()));
    }
    return std::unique_ptr<Backend>(std::move(*b));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> OpenBackend(const BackendOptions& options) {
    // An alternative of BackendOptions without an Open above does not compile.
    return std::visit([](const auto& o) { return Open(o); }, options);
}

}  // namespace zerohop

// The redis backend against the shared conformance suite, on a real standalone redis-server
// and on a real 6-node Redis Cluster (started once for the whole binary, flushed between
// cases).

#include <stdlib.h>

#include <filesystem>

#include "conformance/backend_conformance.h"
#include "redis/redis_backend.h"
#include "redis_fixture.h"

namespace zerohop::testing {
namespace {

std::string Scratch() {
    static std::string dir = [] {
        char tmpl[] = "/tmp/zh-redis-conformance-XXXXXX";
        return std::string(mkdtemp(tmpl));
    }();
    return dir;
}

RedisServer& Standalone() {
    static RedisServer* server = [] {
        auto* s = new RedisServer(Scratch() + "/standalone", {"--appendonly", "yes", "--appendfsync", "everysec"});
        s->Start();
        return s;
    }();
    return *server;
}

RedisCluster& Cluster() {
    static RedisCluster* cluster = [] {
        auto* c = new RedisCluster(Scratch() + "/cluster");
        c->Start();
        return c;
    }();
    return *cluster;
}

BackendUnderTest MakeRedis(std::vector<redis::Endpoint> seeds, size_t inline_max) {
    RedisBackendOptions o;
    o.client.seeds = std::move(seeds);
    o.containers = {"c1", "c2"};
    o.inline_max_bytes = inline_max;
    o.chunk_bytes = 64 * 1024;
    o.threads = 4;
    auto b = RedisBackend::Open(o);
    if (!b.ok()) {
        ADD_FAILURE() << b.status();
        return {};
    }
    return {std::move(*b), [] {}};
}

BackendUnderTest MakeStandalone() {
    Standalone().Command({"FLUSHALL"});
    return MakeRedis({{"127.0.0.1", Standalone().port()}}, 512 * 1024);
}

BackendUnderTest MakeCluster() {
    RedisCluster& c = Cluster();
    for (int i = 0; i < c.size(); ++i) {
        if (absl::StartsWith(c.node(i).Command({"ROLE"}), "master")) {
            c.node(i).Command({"FLUSHALL"});
        }
    }
    // Small chunks: the chunked paths run for every object over 16 KiB.
    return MakeRedis({{"127.0.0.1", c.node(0).port()}, {"127.0.0.1", c.node(1).port()}}, 16 * 1024);
}

INSTANTIATE_TEST_SUITE_P(Redis, BackendConformance,
                         ::testing::Values(BackendFactory{"standalone", MakeStandalone},
                                           BackendFactory{"cluster", MakeCluster}),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace zerohop::testing

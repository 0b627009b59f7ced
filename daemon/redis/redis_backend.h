#pragma once
// The redis backend: containers kept in Redis or Redis Cluster, so that the daemons of many
// nodes serve one namespace. See docs/REDIS.md for the layout and the promises.
//
// Every key of a container carries the container's hash tag ({prefix:container}), so a
// container lives in one cluster slot and every change to it is one atomic server-side
// script: conditions and update expressions are evaluated here, by our expression engine,
// and committed only if nothing they read has changed since (optimistic concurrency with
// per-entry versions; a conflict is retried). Containers spread over the cluster's
// primaries; one container is as large and as fast as the primary that holds its slot.
//
// Point reads (get_item, stat) and item writes run on the daemon workers' own event loops
// (JoinLoop): each worker has a lane of the client, its requests' commands go out at the end
// of its turn (resolves batched into one script per container) and complete on the worker.
// A put_item without a condition is one script. Multi-step operations (listing, objects,
// streams, renames) run on the backend's threads over the client's own connections.
//
//   RedisBackendOptions o;
//   o.client.seeds = *ParseRedisUrl("redis://10.0.0.1:7000,10.0.0.2:7000");
//   o.containers = {"users"};
//   auto backend = RedisBackend::Open(o);

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/backend.h"
#include "backend/task_pool.h"
#include "redis/options.h"
#include "redis/redis_client.h"

namespace zerohop {

namespace redis {
class Store;  // redis/internal/store.h
}

class RedisBackend : public Backend {
public:
    static absl::StatusOr<std::unique_ptr<RedisBackend>> Open(RedisBackendOptions options);
    ~RedisBackend() override;

    std::string_view kind() const override { return "redis"; }
    // A lane of the Redis client on the worker's thread: its point reads and item writes
    // go out and complete there.
    absl::StatusOr<std::unique_ptr<LoopHook>> JoinLoop() override;

    ZH_BACKEND_OPERATIONS(ZH_BACKEND_OVERRIDE)

private:
    struct ItemWrite;
    RedisBackend(std::unique_ptr<redis::Store> store, size_t threads);
    void WriteItemAsync(std::shared_ptr<ItemWrite> w);
    void WriteItemOnPool(std::shared_ptr<ItemWrite> w);
    std::unique_ptr<redis::Store> store_;
    std::unique_ptr<TaskPool> pool_;
};

}  // namespace zerohop

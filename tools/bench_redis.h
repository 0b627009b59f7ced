#pragma once
// zh-bench's Redis suite (see bench_redis.cc): get_item and put_item through zerohopd on the
// redis backend beside the same workload straight to Redis with hiredis.

#include <chrono>
#include <string>
#include <vector>

#include "bench_harness.h"

namespace zerohop {

std::vector<Comparison> RedisSuite(std::chrono::milliseconds d, const std::string& dir, const std::string& self);

// One client process of the many-process runs (zh-bench --redis-worker ...): runs its loop
// and prints how many operations it completed.
int RedisWorker(int argc, char** argv);

}  // namespace zerohop

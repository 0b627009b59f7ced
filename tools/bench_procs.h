#pragma once
// The processes zh-bench starts for itself: a zerohopd on a temporary store, a
// redis-server on loopback, and what it reads of them from /proc.

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "zerohop/client.h"

namespace zerohop {

// A child process, stopped with SIGTERM (and reaped) when this goes away.
class Child {
public:
    Child() = default;
    explicit Child(std::vector<std::string> argv);
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    pid_t pid() const { return pid_; }
    // Waits for it to exit on its own: its exit status (-1 when it did not exit normally).
    int Wait();

private:
    pid_t pid_ = -1;
};

// $ZEROHOPD, else the zerohopd built beside this binary, else the one on PATH.
std::string FindZerohopd();
// user+system CPU seconds of a process so far, and its resident memory.
double CpuSeconds(pid_t pid);
double RssBytes(pid_t pid);

// A zerohopd serving container "bench" (key "bench") from `dir`; `extra_yaml` is appended
// to its configuration, right after its list of credentials (so "  - {key: ...}" adds one).
struct BenchDaemon {
    std::unique_ptr<Child> process;
    ClientOptions options;  // socket and key
};
// `prefix` goes before its command line (`ip netns exec NS`: a daemon in another namespace).
BenchDaemon StartBenchDaemon(const std::string& dir, int workers, const std::string& extra_yaml = "",
                             std::vector<std::string> prefix = {});
// A client of it, waiting for the daemon to come up.
std::unique_ptr<Client> ConnectWaiting(const ClientOptions& options);

// A redis-server on a loopback port of its own, without persistence.
struct BenchRedis {
    std::unique_ptr<Child> process;
    int port = 0;
};
BenchRedis StartBenchRedis();
// A hiredis connection, waiting for the server to come up; exits on failure.
redisContext* ConnectRedis(int port, const std::string& host = "127.0.0.1");

// What more than one suite measures against Redis: a 100-byte item put at /bench/item
// through `client` and as `item` in Redis, then read synchronously and 16 in flight through
// each, in the same run; the workloads are named `prefix`_get_item_...
std::vector<Comparison> CompareGetItemWithRedis(const std::string& prefix, std::chrono::milliseconds d, Client& client,
                                                redisContext* rc);

}  // namespace zerohop

// zh-bench --suite redis: the redis backend against Redis itself, in one run.
//
// Starts a redis-server and a zerohopd whose container "bench" lives on it. The same
// workload (get_item and put_item of 100-byte items among 1,000 keys) runs through zerohop
// (libzerohop -> zerohopd -> Redis) and straight to Redis with hiredis (HGETALL / HSET of
// the same data):
//   1. one client thread, synchronous: latency (the target: p50 at most 1.2x direct);
//   2. 64 client processes, synchronous each: throughput (the target: at least 2x 64 direct
//      clients with a connection each: the daemon shares and pipelines its connections).

#include "bench_redis.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench_procs.h"
#include "zerohop/client.h"

namespace zerohop {
namespace {

constexpr int kKeys = 1000;
const std::string kValue(100, 'v');

std::string ItemPath(int i) { return absl::StrCat("/bench/t/k", i); }
std::string DirectKey(int i) { return absl::StrCat("t:k", i); }

// Runs `argv` with its stdout read back whole.
struct Worker {
    pid_t pid = -1;
    int out = -1;
};

Worker Spawn(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        std::perror("pipe");
        std::exit(1);
    }
    Worker w;
    w.pid = fork();
    if (w.pid == 0) {
        dup2(fds[1], 1);
        std::vector<char*> argv;
        for (const std::string& a : args) {
            argv.push_back(const_cast<char*>(a.c_str()));
        }
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(fds[1]);
    w.out = fds[0];
    return w;
}

uint64_t Collect(Worker& w) {
    std::string text;
    char buf[256];
    ssize_t n;
    while ((n = read(w.out, buf, sizeof buf)) > 0) {
        text.append(buf, static_cast<size_t>(n));
    }
    close(w.out);
    int status = 0;
    waitpid(w.pid, &status, 0);
    uint64_t count = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !absl::SimpleAtoi(text, &count)) {
        std::cerr << "zh-bench: a worker process failed (" << text << ")\n";
        std::exit(1);
    }
    return count;
}

// `processes` workers of `kind` ("zerohop" or "direct") doing `op` for `d`: ops per second.
Result ManyProcesses(const std::string& name, const std::string& self, const std::string& kind,
                     const std::string& target, const std::string& op, int processes, std::chrono::milliseconds d) {
    std::vector<Worker> workers;
    for (int i = 0; i < processes; ++i) {
        workers.push_back(Spawn({self, "--redis-worker", kind, target, op, std::to_string(d.count()),
                                 std::to_string(i)}));
    }
    uint64_t total = 0;
    for (Worker& w : workers) {
        total += Collect(w);
    }
    Result r;
    r.name = name;
    r.ops_per_s = static_cast<double>(total) / (static_cast<double>(d.count()) / 1000.0);
    return r;
}

}  // namespace

int RedisWorker(int argc, char** argv) {
    // zh-bench --redis-worker zerohop|direct SOCKET|PORT get_item|put_item MS SEED
    if (argc != 7) {
        return 2;
    }
    std::string kind = argv[2], target = argv[3], op = argv[4];
    int ms = std::atoi(argv[5]);
    std::mt19937 rng(static_cast<uint32_t>(std::atoi(argv[6])));
    std::unique_ptr<Client> client;
    redisContext* rc = nullptr;
    if (kind == "zerohop") {
        ClientOptions o;
        o.socket_path = target;
        o.access_key = "bench";
        if (const char* spin = getenv("ZH_BENCH_CLIENT_SPIN_US")) {
            o.spin = absl::Microseconds(std::atoi(spin));
        }
        client = ConnectWaiting(o);
    } else {
        rc = ConnectRedis(std::atoi(target.c_str()));
    }
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    uint64_t n = 0;
    while (std::chrono::steady_clock::now() < end) {
        int k = static_cast<int>(rng() % kKeys);
        bool ok;
        if (client) {
            Path p = *Path::Parse(ItemPath(k));
            ok = op == "get_item" ? client->GetItem({.path = p}).ok()
                                  : client->PutItem({.path = p, .attributes = {{"v", Value::String(kValue)}}}).ok();
        } else {
            std::string key = DirectKey(k);
            auto* r = static_cast<redisReply*>(
                op == "get_item" ? redisCommand(rc, "HGETALL %s", key.c_str())
                                 : redisCommand(rc, "HSET %s v %b", key.c_str(), kValue.data(), kValue.size()));
            ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
            if (r != nullptr) {
                freeReplyObject(r);
            }
        }
        if (!ok) {
            return 1;
        }
        ++n;
    }
    std::cout << n;
    return 0;
}

struct ScriptStats {
    double calls = 0, usec = 0;
};

// EVALSHA and EVAL calls so far, and the time Redis spent in them (INFO commandstats).
ScriptStats Scripts(redisContext* rc) {
    ScriptStats out;
    auto* r = static_cast<redisReply*>(redisCommand(rc, "INFO commandstats"));
    if (r == nullptr || r->type != REDIS_REPLY_STRING) {
        return out;
    }
    for (absl::string_view line : absl::StrSplit(absl::string_view(r->str, r->len), '\n')) {
        if (!absl::StartsWith(line, "cmdstat_evalsha:") && !absl::StartsWith(line, "cmdstat_eval:")) {
            continue;
        }
        for (absl::string_view kv : absl::StrSplit(line.substr(line.find(':') + 1), ',')) {
            std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, '=');
            double v = 0;
            if (absl::SimpleAtod(p.second, &v)) {
                out.calls += p.first == "calls" ? v : 0;
                out.usec += p.first == "usec" ? v : 0;
            }
        }
    }
    freeReplyObject(r);
    return out;
}

// CPU seconds so far of the reaped worker processes (the clients), the daemon and Redis.
struct CpuSplit {
    double clients = 0, daemon = 0, redis = 0;
};

CpuSplit CpuNow(pid_t daemon, pid_t redis) {
    rusage ru = {};
    getrusage(RUSAGE_CHILDREN, &ru);
    auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return {secs(ru.ru_utime) + secs(ru.ru_stime), CpuSeconds(daemon), CpuSeconds(redis)};
}

// Where the CPU of a many-process run went, per operation: what bounds the throughput on
// a machine with fewer cores than clients.
void PrintCpuPerOperation(const std::string& what, const CpuSplit& before, const CpuSplit& after, double ops) {
    double n = std::max(1.0, ops);
    double clients = (after.clients - before.clients) / n * 1e6;
    double daemon = (after.daemon - before.daemon) / n * 1e6;
    double redis = (after.redis - before.redis) / n * 1e6;
    std::cout << absl::StrFormat("  %s, CPU per operation: clients %.1f us, zerohopd %.1f us, Redis %.1f us, total %.1f us\n",
                                 what, clients, daemon, redis, clients + daemon + redis);
}

std::vector<Comparison> RedisSuite(std::chrono::milliseconds d, const std::string& dir, const std::string& self) {
    std::vector<Comparison> out;
    BenchRedis redis = StartBenchRedis();
    redisContext* rc = ConnectRedis(redis.port);
    BenchDaemon daemon;
    daemon.options.socket_path = dir + "/zh-redis.sock";
    daemon.options.access_key = "bench";
    std::ofstream(dir + "/zerohopd-redis.yaml")
        << "listen: " << daemon.options.socket_path << "\nworkers: 1\nmetrics_port: 0\nlog_level: warning\n"
        << "limits: {max_sessions: 2000}\n"
        << "mounts: [{container: bench, backend: redis, options: {url: 'redis://127.0.0.1:" << redis.port
        << "', threads: 64}}]\n"
        << "credentials: [{key: bench, containers: {bench: rw}}]\n";
    daemon.process =
        std::make_unique<Child>(std::vector<std::string>{FindZerohopd(), "--config", dir + "/zerohopd-redis.yaml"});
    std::unique_ptr<Client> client = ConnectWaiting(daemon.options);
    Check(client->Mkdir({.path = *Path::Parse("/bench/t")}).status(), "mkdir");
    for (int i = 0; i < kKeys; ++i) {
        Check(client->PutItem({.path = *Path::Parse(ItemPath(i)), .attributes = {{"v", Value::String(kValue)}}})
                  .status(),
              "put");
        freeReplyObject(redisCommand(rc, "HSET %s v %b", DirectKey(i).c_str(), kValue.data(), kValue.size()));
    }
    std::mt19937 rng(7);
    // 1. One thread: latency.
    for (const std::string op : {"get_item", "put_item"}) {
        Comparison c;
        c.ours = MeasureEach(absl::StrCat("redis_backend_", op, "_1thread"), d, [&] {
            Path p = *Path::Parse(ItemPath(static_cast<int>(rng() % kKeys)));
            bool ok = op == "get_item"
                          ? client->GetItem({.path = p}).ok()
                          : client->PutItem({.path = p, .attributes = {{"v", Value::String(kValue)}}}).ok();
            if (!ok) {
                std::abort();
            }
        });
        c.baseline = MeasureEach(absl::StrCat("redis_direct_", op, "_1thread"), d, [&] {
            std::string key = DirectKey(static_cast<int>(rng() % kKeys));
            auto* r = static_cast<redisReply*>(
                op == "get_item" ? redisCommand(rc, "HGETALL %s", key.c_str())
                                 : redisCommand(rc, "HSET %s v %b", key.c_str(), kValue.data(), kValue.size()));
            if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
                std::abort();
            }
            freeReplyObject(r);
        });
        c.baseline_name = op == "get_item" ? "HGETALL with hiredis, one connection" : "HSET with hiredis, one connection";
        out.push_back(std::move(c));
        std::cout << absl::StrFormat("  %s p50 latency ratio (ours / direct): %.2f\n", op,
                                     out.back().ours.p50_us / out.back().baseline->p50_us);
    }
    // 2. 64 processes: throughput.
    constexpr int kProcesses = 64;
    for (const std::string op : {"get_item", "put_item"}) {
        Comparison c;
        ScriptStats before = Scripts(rc);
        CpuSplit cpu_before = CpuNow(daemon.process->pid(), redis.process->pid());
        c.ours = ManyProcesses(absl::StrCat("redis_backend_", op, "_64proc"), self, "zerohop",
                               daemon.options.socket_path, op, kProcesses, d);
        CpuSplit cpu_after = CpuNow(daemon.process->pid(), redis.process->pid());
        ScriptStats after = Scripts(rc);
        double ops = c.ours.ops_per_s * std::chrono::duration<double>(d).count();
        PrintCpuPerOperation(op + " through zerohop", cpu_before, cpu_after, ops);
        // What each operation cost Redis (its own accounting of script time), and how many
        // operations shared a script call (resolves batched per worker turn).
        std::cout << absl::StrFormat("  %s through zerohop: %.1f operations per script call, %.2f us of scripts in Redis per operation\n",
                                     op, ops / std::max<double>(1, after.calls - before.calls),
                                     (after.usec - before.usec) / std::max(1.0, ops));
        cpu_before = CpuNow(daemon.process->pid(), redis.process->pid());
        c.baseline = ManyProcesses(absl::StrCat("redis_direct_", op, "_64proc"), self, "direct",
                                   std::to_string(redis.port), op, kProcesses, d);
        cpu_after = CpuNow(daemon.process->pid(), redis.process->pid());
        PrintCpuPerOperation(op + " direct", cpu_before, cpu_after,
                             c.baseline->ops_per_s * std::chrono::duration<double>(d).count());
        c.baseline_name = "64 processes with a hiredis connection each";
        out.push_back(std::move(c));
    }
    redisFree(rc);
    return out;
}

}  // namespace zerohop

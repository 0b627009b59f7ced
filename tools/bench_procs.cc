#include "bench_procs.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench_harness.h"

namespace zerohop {

Child::Child(std::vector<std::string> argv) {
    pid_ = fork();
    if (pid_ == 0) {
        // Gone with the bench, even when it exits on an error without unwinding.
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        std::vector<char*> args;
        for (auto& a : argv) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp(args[0], args.data());
        _exit(127);
    }
}

Child::~Child() {
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
}

int Child::Wait() {
    int status = 0;
    if (pid_ <= 0 || waitpid(pid_, &status, 0) != pid_) {
        return -1;
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string FindZerohopd() {
    if (const char* env = getenv("ZEROHOPD")) {
        return env;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        std::string dir(self);
        dir = dir.substr(0, dir.rfind('/'));
        for (std::string candidate : {dir + "/../daemon/zerohopd", dir + "/zerohopd"}) {
            if (access(candidate.c_str(), X_OK) == 0) {
                return candidate;
            }
        }
    }
    return "zerohopd";
}

double CpuSeconds(pid_t pid) {
    std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::string> fields = absl::StrSplit(all.substr(all.rfind(')') + 2), ' ');
    return (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK);
}

double RssBytes(pid_t pid) {
    std::ifstream f(absl::StrCat("/proc/", pid, "/statm"));
    double pages = 0, rss = 0;
    f >> pages >> rss;
    return rss * sysconf(_SC_PAGESIZE);
}

BenchDaemon StartBenchDaemon(const std::string& dir, int workers, const std::string& extra_yaml,
                             std::vector<std::string> prefix) {
    BenchDaemon d;
    d.options.socket_path = dir + "/zh.sock";
    d.options.access_key = "bench";
    std::ofstream(dir + "/zerohopd.yaml") << "listen: " << d.options.socket_path << "\nworkers: " << workers
                                          << "\nmetrics_port: 0\nlog_level: warning\n"
                                          << "mounts: [{container: bench, options: {dir: " << dir << "/shm-store}}]\n"
                                          << "credentials:\n  - {key: bench, containers: {bench: rw}}\n"
                                          << extra_yaml;
    for (std::string a : {FindZerohopd(), std::string("--config"), dir + "/zerohopd.yaml"}) {
        prefix.push_back(std::move(a));
    }
    d.process = std::make_unique<Child>(std::move(prefix));
    return d;
}

std::unique_ptr<Client> ConnectWaiting(const ClientOptions& options) {
    for (int i = 0; i < 500; ++i) {
        auto c = Client::Connect(options);
        if (c.ok()) {
            return std::move(*c);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Check(absl::UnavailableError("zerohopd did not start (set ZEROHOPD to its path)"), "connect");
    return nullptr;
}

BenchRedis StartBenchRedis() {
    // A port below the ephemeral range that is free now (tests running beside us take
    // ports of their own there).
    static std::atomic<int> next{0};
    BenchRedis r;
    for (int tries = 0; tries < 1000; ++tries) {
        r.port = 20000 + (getpid() * 7 + next.fetch_add(1)) % 20000;
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in addr = {};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<uint16_t>(r.port));
        bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::close(fd);
        if (free) {
            break;
        }
    }
    r.process = std::make_unique<Child>(std::vector<std::string>{
        "redis-server", "--port", std::to_string(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"});
    return r;
}

redisContext* ConnectRedis(int port, const std::string& host) {
    for (int i = 0; i < 500; ++i) {
        redisContext* rc = redisConnect(host.c_str(), port);
        if (rc != nullptr && rc->err == 0) {
            return rc;
        }
        if (rc != nullptr) {
            redisFree(rc);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Check(absl::UnavailableError("redis-server did not start"), "redis");
    return nullptr;
}

std::vector<Comparison> CompareGetItemWithRedis(const std::string& prefix, std::chrono::milliseconds d, Client& client,
                                                redisContext* rc) {
    const std::string value(100, 'v');
    Path key = *Path::Parse("/bench/item");
    Check(client.PutItem({.path = key, .attributes = {{"v", Value::String(value)}}}).status(), "put the item");
    freeReplyObject(redisCommand(rc, "SET item %b", value.data(), value.size()));
    std::vector<Comparison> out;
    // One thread, synchronous.
    Comparison sync;
    sync.ours = MeasureEach(prefix + "_get_item_100B_sync", d, [&] {
        if (!client.GetItem({.path = key}).ok()) {
            std::abort();
        }
    });
    sync.baseline = MeasureEach("redis_get_100B_sync", d, [&] {
        auto* r = static_cast<redisReply*>(redisCommand(rc, "GET item"));
        if (r == nullptr || r->type != REDIS_REPLY_STRING) {
            std::abort();
        }
        freeReplyObject(r);
    });
    sync.baseline_name = "Redis GET over loopback TCP (hiredis)";
    out.push_back(std::move(sync));
    // 16 in flight against Redis pipelining at the same depth (ops/s counts calls).
    constexpr int kDepth = 16;
    Comparison deep;
    deep.ours = Measure(prefix + "_get_item_100B_async_depth16", d, [&] {
        int done = 0;
        for (int i = 0; i < kDepth; ++i) {
            client.GetItemAsync({.path = key}, [&done](absl::StatusOr<Item> got) {
                if (!got.ok()) {
                    std::abort();
                }
                ++done;
            });
        }
        while (done < kDepth) {
            if (client.Poll() == 0) {
                client.WaitAndPoll(absl::Milliseconds(10));
            }
        }
    });
    deep.ours.ops_per_s *= kDepth;
    deep.baseline = Measure("redis_get_100B_pipelined_depth16", d, [&] {
        for (int i = 0; i < kDepth; ++i) {
            redisAppendCommand(rc, "GET item");
        }
        for (int i = 0; i < kDepth; ++i) {
            void* reply = nullptr;
            if (redisGetReply(rc, &reply) != REDIS_OK) {
                std::abort();
            }
            freeReplyObject(reply);
        }
    });
    deep.baseline->ops_per_s *= kDepth;
    deep.baseline_name = "Redis GET pipelined 16 deep (hiredis)";
    out.push_back(std::move(deep));
    return out;
}

}  // namespace zerohop

#pragma once
// Real redis-server processes for tests: a standalone server, or a 6-node Redis Cluster
// (3 primaries, 3 replicas) made with `redis-cli --cluster create`, on loopback ports of
// their own, in a temporary directory, killed with the test.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon_fixture.h"

namespace zerohop::testing {

// A loopback port that is free, and whose cluster bus port (+10000) is free too: below
// the kernel's ephemeral range, so that the bus port exists.
inline int FreeClusterPort() {
    static std::atomic<int> next{20000 + (getpid() * 7) % 20000};
    for (int tries = 0; tries < 1000; ++tries) {
        int port = 20000 + (next.fetch_add(1) % 25000);
        bool free = true;
        for (int p : {port, port + 10000}) {
            shmring::UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            struct sockaddr_in addr = {};
            addr.sin_family = AF_INET;
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            addr.sin_port = htons(static_cast<uint16_t>(p));
            free = free && ::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        }
        if (free) {
            return port;
        }
    }
    return 0;
}

// One redis-server child. Extra arguments are redis-server options ("--requirepass", "x").
class RedisServer {
public:
    RedisServer(std::string dir, std::vector<std::string> extra = {}, bool cluster_node = false)
        : dir_(std::move(dir)), extra_(std::move(extra)) {
        std::filesystem::create_directories(dir_);
        port_ = cluster_node ? FreeClusterPort() : FreeLoopbackPort();
    }
    ~RedisServer() { Kill(); }

    int port() const { return port_; }
    const std::string& dir() const { return dir_; }
    pid_t pid() const { return pid_; }

    // Starts it (again, on the same port and directory) and waits until it answers.
    void Start() {
        std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                         "--dir", dir_, "--save", "", "--appendonly", "no",
                                         "--protected-mode", "no", "--daemonize", "no", "--enable-debug-command", "yes", "--logfile",
                                         dir_ + "/redis.log"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        pid_ = fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            std::vector<char*> argv;
            for (std::string& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            execvp("redis-server", argv.data());
            _exit(127);
        }
        for (int i = 0; i < 500; ++i) {
            redisContext* c = redisConnect("127.0.0.1", port_);
            bool up = c != nullptr && c->err == 0;
            if (c != nullptr) {
                redisFree(c);
            }
            if (up) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL() << "redis-server on port " << port_ << " did not come up";
    }

    void Kill(int sig = SIGKILL) {
        if (pid_ > 0) {
            kill(pid_, sig);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }

    // Runs a command on it directly (hiredis, blocking); its reply as text ("" on failure).
    std::string Command(const std::vector<std::string>& args, const std::string& password = "") const {
        redisContext* c = redisConnect("127.0.0.1", port_);
        if (c == nullptr || c->err != 0) {
            if (c != nullptr) {
                redisFree(c);
            }
            return "";
        }
        if (!password.empty()) {
            freeReplyObject(redisCommand(c, "AUTH %s", password.c_str()));
        }
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const std::string& a : args) {
            argv.push_back(a.c_str());
            lens.push_back(a.size());
        }
        auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
        std::string out = r == nullptr ? "" : Text(r);
        if (r != nullptr) {
            freeReplyObject(r);
        }
        redisFree(c);
        return out;
    }

private:
    static std::string Text(const redisReply* r) {
        switch (r->type) {
            case REDIS_REPLY_INTEGER:
                return std::to_string(r->integer);
            case REDIS_REPLY_ARRAY: {
                std::vector<std::string> parts;
                for (size_t i = 0; i < r->elements; ++i) {
                    parts.push_back(Text(r->element[i]));
                }
                return absl::StrJoin(parts, "\n");
            }
            case REDIS_REPLY_NIL:
                return "(nil)";
            default:
                return std::string(r->str, r->len);
        }
    }

    std::string dir_;
    std::vector<std::string> extra_;
    int port_ = 0;
    pid_t pid_ = -1;
};

// Six servers joined into a cluster: three primaries with a replica each.
class RedisCluster {
public:
    explicit RedisCluster(const std::string& dir, int node_timeout_ms = 1000) {
        for (int i = 0; i < 6; ++i) {
            nodes_.push_back(std::make_unique<RedisServer>(
                dir + "/node" + std::to_string(i),
                std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                         "--cluster-node-timeout", std::to_string(node_timeout_ms),
                                         "--appendonly", "yes", "--repl-diskless-sync-delay", "0"},
                /*cluster_node=*/true));
        }
    }

    void Start() {
        std::string addrs;
        for (auto& n : nodes_) {
            n->Start();
            addrs += " 127.0.0.1:" + std::to_string(n->port());
        }
        int code = -1;
        std::string out = RunShell("redis-cli --cluster create" + addrs + " --cluster-replicas 1 --cluster-yes", &code);
        ASSERT_EQ(code, 0) << out;
        ASSERT_TRUE(WaitHealthy(std::chrono::seconds(30))) << "the cluster did not become healthy";
    }

    // Until every live node says cluster_state:ok with all slots served, and every replica
    // is in sync with its primary.
    bool WaitHealthy(std::chrono::seconds limit) {
        auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            bool ok = true;
            for (auto& n : nodes_) {
                if (n->pid() < 0) {
                    continue;
                }
                std::string info = n->Command({"CLUSTER", "INFO"});
                ok = ok && absl::StrContains(info, "cluster_state:ok") &&
                     absl::StrContains(info, "cluster_slots_ok:16384");
                // A replica that has not synced yet could not take over from its primary.
                std::string repl = n->Command({"INFO", "replication"});
                ok = ok && (absl::StrContains(repl, "role:master") || absl::StrContains(repl, "master_link_status:up"));
            }
            if (ok) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return false;
    }

    RedisServer& node(int i) { return *nodes_[i]; }
    int size() const { return static_cast<int>(nodes_.size()); }

    // The node serving `slot` as primary now (index), or -1.
    int PrimaryOf(int slot) {
        for (int i = 0; i < size(); ++i) {
            if (nodes_[i]->pid() < 0) {
                continue;
            }
            std::string role = nodes_[i]->Command({"ROLE"});
            if (!absl::StartsWith(role, "master")) {
                continue;
            }
            std::string owner = nodes_[i]->Command({"CLUSTER", "NODES"});
            std::string myself;
            for (auto line : absl::StrSplit(owner, '\n')) {
                if (absl::StrContains(line, "myself")) {
                    myself = std::string(line);
                }
            }
            // Slot ranges are the 9th field on: "0-5460", "5461", ...
            std::vector<std::string> f = absl::StrSplit(myself, ' ', absl::SkipEmpty());
            for (size_t k = 8; k < f.size(); ++k) {
                std::vector<std::string> r = absl::StrSplit(f[k], '-');
                int from = 0, to = 0;
                if (r.empty() || !absl::SimpleAtoi(r[0], &from)) {
                    continue;
                }
                to = from;
                if (r.size() > 1 && !absl::SimpleAtoi(r[1], &to)) {
                    continue;
                }
                if (slot >= from && slot <= to) {
                    return i;
                }
            }
        }
        return -1;
    }

private:
    std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace zerohop::testing

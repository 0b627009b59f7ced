#pragma once
// A real zerohopd child process on a temporary store and socket, for tests that talk to
// the daemon (ZEROHOPD names the binary; meson sets it).

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "shmring/unique_fd.h"
#include "zerohop/client.h"

namespace zerohop::testing {

// Runs `command` with /bin/sh, stderr folded into stdout; its output, and its exit code in
// *exit_code (-1 if it did not exit normally).
inline std::string RunShell(const std::string& command, int* exit_code) {
    FILE* f = popen((command + " 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while (f != nullptr && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        out.append(buf, n);
    }
    int status = f != nullptr ? pclose(f) : -1;
    *exit_code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

// A loopback port nobody listens on now (the kernel's pick).
inline int FreeLoopbackPort() {
    shmring::UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return 0;  // metrics off
    }
    return ntohs(addr.sin_port);
}

// A zerohopd child process on a temporary store and socket.
class Daemon {
public:
    // `store_options`: more options of the embedded store (", io_threads: 1", say).
    // `demo_mount`: the mount of container "demo" instead of the embedded store
    // ("backend: redis, options: {url: ...}").
    explicit Daemon(std::string dir, int workers = 2, const std::string& store_options = "",
                    const std::string& demo_mount = "")
        : dir_(std::move(dir)) {
        std::string demo = demo_mount.empty() ? "options: {dir: " + dir_ + "/store" + store_options + "}" : demo_mount;
        socket_ = dir_ + "/zh.sock";
        metrics_port_ = FreeLoopbackPort();
        std::ofstream(dir_ + "/zerohopd.yaml") << "listen: " << socket_ << "\n"
                                               << "metrics_port: " << metrics_port_ << "\n"
                                               << "workers: " << workers << "\nlog_level: warning\n"
                                               << "limits: {max_in_flight: 64, max_client_bytes: 4Mi, "
                                                  "max_daemon_bytes: 4Mi}\n"
                                               << "mounts:\n"
                                               << "  - {container: demo, " << demo << "}\n"
                                               << "  - {container: other, options: {dir: " << dir_ << "/store"
                                               << store_options << "}}\n"
                                               << "credentials:\n"
                                               << "  - {key: rw-key, containers: {demo: rw}}\n"
                                               << "  - {key: ro-key, containers: {demo: r}}\n"
                                               << "  - {key: other-key, containers: {other: rw}}\n"
                                               << "  - {key: admin-key, admin: true}\n";
    }
    ~Daemon() { Kill(SIGTERM); }

    void Start() {
        const char* bin = getenv("ZEROHOPD");
        ASSERT_NE(bin, nullptr) << "ZEROHOPD must name the zerohopd binary";
        // Under ASan, freed memory waits in a quarantine (256 MiB by default) and counts in
        // RSS: a small one keeps use-after-free detection and makes RSS mean something.
        std::vector<std::string> env;
        for (char** e = environ; *e != nullptr; ++e) {
            if (std::string_view(*e).rfind("ASAN_OPTIONS=", 0) != 0) {
                env.emplace_back(*e);
            }
        }
        const char* asan = getenv("ASAN_OPTIONS");
        env.push_back(std::string("ASAN_OPTIONS=") + (asan != nullptr && *asan ? std::string(asan) + ":" : "") +
                      "quarantine_size_mb=8");
        std::vector<char*> envp;
        for (auto& e : env) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);
        std::string cfg = dir_ + "/zerohopd.yaml";
        pid_ = fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives a crashed test
            if (!netns_.empty()) {  // (made by `ip netns add`)
                int ns = open(("/var/run/netns/" + netns_).c_str(), O_RDONLY | O_CLOEXEC);
                if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
                    _exit(126);
                }
            }
            char* argv[] = {const_cast<char*>("zerohopd"), const_cast<char*>("--config"), cfg.data(), nullptr};
            execve(bin, argv, envp.data());
            _exit(127);
        }
        for (int i = 0; i < 500; ++i) {
            if (Connect("rw-key").ok()) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL() << "zerohopd did not come up";
    }

    void Kill(int sig) {
        if (pid_ > 0) {
            kill(pid_, sig);
            int status = 0;
            waitpid(pid_, &status, 0);
            pid_ = -1;
            if (sig == SIGTERM) {
                // A clean stop: exit 0, and no sanitizer report (those abort).
                EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "zerohopd ended with status " << status;
            }
        }
    }

    absl::StatusOr<std::unique_ptr<Client>> Connect(std::string key, ClientOptions o = {}) {
        o.socket_path = socket_;
        o.access_key = std::move(key);
        o.client_bytes = 2 << 20;
        o.daemon_bytes = 2 << 20;
        o.timeout = absl::Seconds(20);
        return Client::Connect(o);
    }

    // Descriptors a session holds: its socket, memfd and eventfd (the store's files, which
    // RocksDB opens and closes as it compacts, are not counted).
    size_t SessionFds() const {
        size_t n = 0;
        std::string dir = absl::StrCat("/proc/", pid_, "/fd");
        DIR* d = opendir(dir.c_str());
        if (d == nullptr) {
            return 0;
        }
        while (struct dirent* e = readdir(d)) {
            char target[256];
            ssize_t len = readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
            if (len <= 0) {
                continue;
            }
            std::string_view t(target, static_cast<size_t>(len));
            if (t.starts_with("socket:") || t.starts_with("/memfd:") || t == "anon_inode:[eventfd]") {
                ++n;
            }
        }
        closedir(d);
        return n;
    }

    size_t RssBytes() const {
        std::ifstream f(absl::StrCat("/proc/", pid_, "/statm"));
        size_t pages = 0, rss = 0;
        f >> pages >> rss;
        return rss * static_cast<size_t>(sysconf(_SC_PAGESIZE));
    }

    // Start() runs the daemon in this network namespace (its name under /var/run/netns).
    void set_netns(std::string name) { netns_ = std::move(name); }

    pid_t pid() const { return pid_; }
    int metrics_port() const { return metrics_port_; }
    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }
    std::string config_path() const { return dir_ + "/zerohopd.yaml"; }

    // GET /metrics over loopback.
    std::string Metrics() const {
        shmring::UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        struct sockaddr_in addr = {};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(metrics_port_));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            return "";
        }
        std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
        (void)::send(s.get(), req.data(), req.size(), 0);
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(s.get(), buf, sizeof buf, 0)) > 0) {
            out.append(buf, n);
        }
        return out;
    }

private:
    std::string dir_;
    std::string netns_;
    std::string socket_;
    int metrics_port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace zerohop::testing

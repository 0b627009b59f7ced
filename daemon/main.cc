// zerohopd: the per-node daemon.
//
//   zerohopd --config /etc/zerohop/zerohopd.yaml
//
// Runs until SIGTERM or SIGINT, then stops accepting, finishes what it holds, closes
// its stores (everything acknowledged is in their logs) and exits 0.

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "base/log.h"
#include "server/server.h"

int main(int argc, char** argv) {
    // Debian builds abseil with the Mutex deadlock detector on: tens of ns per lock.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    std::string config_path = "/etc/zerohop/zerohopd.yaml";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (a == "--help" || a == "-h") {
            std::cout << "usage: zerohopd [--config FILE]   (default /etc/zerohop/zerohopd.yaml)\n"
                         "Serves the node's zerohop namespace on the socket the configuration names.\n";
            return 0;
        } else {
            std::cerr << "zerohopd: unknown argument " << a << " (try --help)\n";
            return 2;
        }
    }
    auto config = zerohop::LoadConfig(config_path);
    if (!config.ok()) {
        std::cerr << "zerohopd: " << config.status().message() << "\n";
        return 1;
    }
    // Signals are taken synchronously by this thread; every other thread inherits the mask.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto server = zerohop::Server::Start(*config);
    if (!server.ok()) {
        std::cerr << "zerohopd: " << server.status().message() << "\n";
        return 1;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    zerohop::Log(zerohop::LogLevel::kInfo, "stopping", "signal", sig);
    (*server)->Stop();
    auto st = (*server)->stats();
    zerohop::Log(zerohop::LogLevel::kInfo, "stopped", "sessions_total", st.sessions_total, "requests", st.requests);
    return 0;
}

#pragma once
// A real zerohopd inside a fuzzer's process, for the targets that speak to it: container
// `c` on an embedded store in a fresh temporary directory, key `fuzz` with `rw` on it.

#include <stdlib.h>

#include <string>

#include "config/config.h"
#include "server/server.h"

namespace zerohop::fuzz {

inline Server* daemon = nullptr;  // see StartDaemon

// Starts it (aborting if it cannot: a fuzzer without its daemon tests nothing) and returns
// its socket. `limits`: a YAML flow map for the `limits` key, or "". `credential`: one more
// entry of `credentials` (a YAML flow map), or "". Never stopped:
// RocksDB's own statics go away at exit before the server's destructor would run; the
// server stays reachable from a global, so LeakSanitizer does not count it.
inline std::string StartDaemon(const std::string& limits, const std::string& credential = "") {
    char tmpl[] = "/tmp/zh-fuzz-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    std::string socket = dir + "/zh.sock";
    std::string yaml = "listen: " + socket + "\nworkers: 1\nmetrics_port: 0\nlog_level: error\n" +
                       (limits.empty() ? "" : "limits: " + limits + "\n") + "mounts: [{container: c, options: {dir: " +
                       dir + "/store}}]\n" + "credentials: [{key: fuzz, containers: {c: rw}}" +
                       (credential.empty() ? "" : ", " + credential) + "]\n";
    auto cfg = ParseConfig(yaml, "fuzz");
    if (!cfg.ok()) {
        abort();
    }
    auto started = Server::Start(*cfg);
    if (!started.ok()) {
        abort();
    }
    daemon = started->release();
    return socket;
}

}  // namespace zerohop::fuzz

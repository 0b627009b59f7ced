#include "config/config.h"

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "zerohop/path.h"

namespace zerohop {

namespace {

class Parser {
public:
    explicit Parser(std::string_view source) : source_(source) {}

    absl::Status Error(const std::string& key, std::string_view problem) const {
        return absl::InvalidArgumentError(absl::StrFormat("config %s: %s: %s", source_, key, problem));
    }

    // Only the keys we know: a typo must not pass silently.
    absl::Status OnlyKeys(const YAML::Node& node, const std::string& where, std::set<std::string> allowed) const {
        if (!node.IsMap()) {
            return Error(where.empty() ? "(top level)" : where, "expected a mapping");
        }
        for (const auto& kv : node) {
            std::string k = kv.first.as<std::string>();
            if (!allowed.count(k)) {
                return Error(where.empty() ? k : where + "." + k,
                             absl::StrFormat("unknown key (known: %s)", absl::StrJoin(allowed, ", ")));
            }
        }
        return absl::OkStatus();
    }

    absl::StatusOr<std::string> String(const YAML::Node& n, const std::string& key) const {
        if (!n.IsScalar()) {
            return Error(key, "expected a string");
        }
        return n.as<std::string>();
    }

    absl::StatusOr<uint64_t> Number(const YAML::Node& n, const std::string& key, uint64_t lo, uint64_t hi) const {
        if (!n.IsScalar()) {
            return Error(key, "expected a number");
        }
        std::string text = n.as<std::string>();
        uint64_t mult = 1;
        for (auto [suffix, m] : {std::pair{"Ki", uint64_t{1} << 10}, {"Mi", uint64_t{1} << 20}, {"Gi", uint64_t{1} << 30}}) {
            std::string_view sv(text);
            if (sv.size() > 2 && sv.substr(sv.size() - 2) == suffix) {
                mult = m;
                text.resize(text.size() - 2);
            }
        }
        uint64_t v;
        if (!absl::SimpleAtoi(text, &v) || v > hi / mult || v * mult < lo) {
            return Error(key, absl::StrFormat("\"%s\" is not a number in %d..%d", n.as<std::string>(), lo, hi));
        }
        return v * mult;
    }

private:
    std::string source_;
};

#define ZH_TRY(var, expr)            \
    auto var##_or = (expr);          \
    if (!var##_or.ok()) {            \
        return var##_or.status();    \
    }                                \
    auto var = std::move(*var##_or)

absl::StatusOr<DaemonConfig> Build(const YAML::Node& root, const Parser& p) {
    DaemonConfig cfg;
    if (root.IsNull()) {
        return p.Error("(top level)", "the file is empty");
    }
    if (absl::Status s = p.OnlyKeys(root, "", {"listen", "workers", "wait_with", "metrics_port", "log_level", "limits",
                                               "mounts", "credentials"});
        !s.ok()) {
        return s;
    }
    if (root["listen"]) {
        ZH_TRY(listen, p.String(root["listen"], "listen"));
        if (listen.empty() || listen[0] != '/' || listen.size() > 107) {
            return p.Error("listen", "must be an absolute socket path of at most 107 bytes");
        }
        cfg.listen = listen;
    }
    if (root["workers"]) {
        ZH_TRY(workers, p.Number(root["workers"], "workers", 1, 256));
        cfg.workers = static_cast<uint32_t>(workers);
    }
    if (root["wait_with"]) {
        ZH_TRY(how, p.String(root["wait_with"], "wait_with"));
        if (how != "auto" && how != "io_uring" && how != "epoll") {
            return p.Error("wait_with", absl::StrFormat("\"%s\" is not one of auto, io_uring, epoll", how));
        }
        cfg.wait_with = how;
    }
    if (root["metrics_port"]) {
        ZH_TRY(port, p.Number(root["metrics_port"], "metrics_port", 0, 65535));
        cfg.metrics_port = static_cast<uint16_t>(port);
    }
    if (root["log_level"]) {
        ZH_TRY(level, p.String(root["log_level"], "log_level"));
        if (level != "debug" && level != "info" && level != "warning" && level != "error") {
            return p.Error("log_level", absl::StrFormat("\"%s\" is not one of debug, info, warning, error", level));
        }
        cfg.log_level = level;
    }
    if (const YAML::Node limits = root["limits"]) {
        if (absl::Status s = p.OnlyKeys(limits, "limits",
                                        {"max_in_flight", "max_client_bytes", "max_daemon_bytes", "max_sessions"});
            !s.ok()) {
            return s;
        }
        if (limits["max_in_flight"]) {
            ZH_TRY(v, p.Number(limits["max_in_flight"], "limits.max_in_flight", 1, 1 << 16));
            cfg.limits.max_in_flight = static_cast<uint32_t>(v);
        }
        if (limits["max_client_bytes"]) {
            ZH_TRY(v, p.Number(limits["max_client_bytes"], "limits.max_client_bytes", 1 << 16, uint64_t{1} << 34));
            cfg.limits.max_client_bytes = v;
        }
        if (limits["max_daemon_bytes"]) {
            ZH_TRY(v, p.Number(limits["max_daemon_bytes"], "limits.max_daemon_bytes", 1 << 16, uint64_t{1} << 34));
            cfg.limits.max_daemon_bytes = v;
        }
        if (limits["max_sessions"]) {
            ZH_TRY(v, p.Number(limits["max_sessions"], "limits.max_sessions", 1, 1 << 20));
            cfg.limits.max_sessions = static_cast<uint32_t>(v);
        }
    }
    std::set<std::string> containers;
    if (const YAML::Node mounts = root["mounts"]) {
        if (!mounts.IsSequence()) {
            return p.Error("mounts", "expected a list");
        }
        for (size_t i = 0; i < mounts.size(); ++i) {
            std::string where = absl::StrFormat("mounts[%d]", i);
            const YAML::Node m = mounts[i];
            if (absl::Status s = p.OnlyKeys(m, where, {"container", "backend", "options"}); !s.ok()) {
                return s;
            }
            MountConfig mc;
            if (!m["container"]) {
                return p.Error(where + ".container", "missing");
            }
            ZH_TRY(container, p.String(m["container"], where + ".container"));
            if (absl::Status s = Path::ValidateComponent(container); !s.ok()) {
                return p.Error(where + ".container", std::string(s.message()));
            }
            if (!containers.insert(container).second) {
                return p.Error(where + ".container", absl::StrFormat("\"%s\" is mounted twice", container));
            }
            mc.container = container;
            ZH_TRY(backend, m["backend"] ? p.String(m["backend"], where + ".backend") : absl::StatusOr<std::string>("embedded"));
            if (backend != "embedded" && backend != "redis") {
                return p.Error(where + ".backend",
                               absl::StrFormat("unknown backend \"%s\" (known: embedded, redis)", backend));
            }
            mc.backend = backend;
            const std::set<std::string> known =
                backend == "embedded"
                    ? std::set<std::string>{"dir", "sync_writes", "inline_max_bytes", "io_threads"}
                    : std::set<std::string>{"url", "prefix", "user", "password", "password_file", "database",
                                               "connect_timeout_ms", "command_timeout_ms", "retry_window_ms",
                                               "replicas", "replica_timeout_ms", "threads", "connections",
                                               "inline_max_bytes"};
            if (const YAML::Node o = m["options"]) {
                if (absl::Status s = p.OnlyKeys(o, where + ".options", known); !s.ok()) {
                    return s;
                }
                for (const auto& kv : o) {
                    std::string k = kv.first.as<std::string>();
                    ZH_TRY(v, p.String(kv.second, where + ".options." + k));
                    mc.options[k] = v;
                }
            }
            if (backend == "embedded") {
                if (!mc.options.count("dir") || mc.options["dir"].empty() || mc.options["dir"][0] != '/') {
                    return p.Error(where + ".options.dir", "the embedded backend needs an absolute directory");
                }
                if (mc.options.count("sync_writes") && mc.options["sync_writes"] != "true" &&
                    mc.options["sync_writes"] != "false") {
                    return p.Error(where + ".options.sync_writes", "expected true or false");
                }
            } else {
                if (!absl::StartsWith(mc.options["url"], "redis://")) {
                    return p.Error(where + ".options.url", "the redis backend needs redis://host:port[,host:port...]");
                }
                if (mc.options.count("password") && mc.options.count("password_file")) {
                    // (the password itself is never repeated in a message)
                    return p.Error(where + ".options", "give password or password_file, not both");
                }
                if (mc.options.count("password_file") &&
                    (mc.options["password_file"].empty() || mc.options["password_file"][0] != '/')) {
                    return p.Error(where + ".options.password_file", "expected an absolute path");
                }
            }
            for (const char* number : {"inline_max_bytes", "io_threads", "database", "connect_timeout_ms",
                                       "command_timeout_ms", "retry_window_ms", "replicas", "replica_timeout_ms",
                                       "threads", "connections"}) {
                size_t v;
                if (mc.options.count(number) && !absl::SimpleAtoi(mc.options[number], &v)) {
                    return p.Error(absl::StrCat(where, ".options.", number), "expected a whole number");
                }
            }
            cfg.mounts.push_back(std::move(mc));
        }
    }
    if (cfg.mounts.empty()) {
        return p.Error("mounts", "at least one container must be mounted");
    }
    std::set<std::string> keys;
    if (const YAML::Node creds = root["credentials"]) {
        if (!creds.IsSequence()) {
            return p.Error("credentials", "expected a list");
        }
        for (size_t i = 0; i < creds.size(); ++i) {
            std::string where = absl::StrFormat("credentials[%d]", i);
            const YAML::Node c = creds[i];
            if (absl::Status s = p.OnlyKeys(c, where, {"key", "containers", "uids"}); !s.ok()) {
                return s;
            }
            CredentialConfig cc;
            if (!c["key"]) {
                return p.Error(where + ".key", "missing");
            }
            ZH_TRY(key, p.String(c["key"], where + ".key"));
            if (key.empty() || key.size() > 256) {
                return p.Error(where + ".key", "must be 1..256 bytes");
            }
            if (!keys.insert(key).second) {
                return p.Error(where + ".key", "the same key is listed twice");
            }
            cc.key = key;
            const YAML::Node cs = c["containers"];
            if (!cs || !cs.IsMap() || cs.size() == 0) {
                return p.Error(where + ".containers", "expected a mapping of container: r | rw");
            }
            for (const auto& kv : cs) {
                std::string name = kv.first.as<std::string>();
                ZH_TRY(rights, p.String(kv.second, where + ".containers." + name));
                if (!containers.count(name)) {
                    return p.Error(where + ".containers." + name, "no such container in mounts");
                }
                if (rights != "r" && rights != "rw") {
                    return p.Error(where + ".containers." + name, absl::StrFormat("\"%s\" is not r or rw", rights));
                }
                cc.containers[name] = rights == "rw" ? (kRightRead | kRightWrite) : kRightRead;
            }
            if (const YAML::Node uids = c["uids"]) {
                if (!uids.IsSequence()) {
                    return p.Error(where + ".uids", "expected a list of numbers");
                }
                for (size_t j = 0; j < uids.size(); ++j) {
                    ZH_TRY(uid, p.Number(uids[j], absl::StrFormat("%s.uids[%d]", where, j), 0, UINT32_MAX));
                    cc.uids.push_back(static_cast<uint32_t>(uid));
                }
            }
            cfg.credentials.push_back(std::move(cc));
        }
    }
    if (cfg.credentials.empty()) {
        return p.Error("credentials", "at least one access key is needed, or no client can connect");
    }
    if (cfg.workers == 0) {
        cfg.workers = std::max(1u, std::thread::hardware_concurrency());
    }
    return cfg;
}

}  // namespace

absl::StatusOr<DaemonConfig> ParseConfig(std::string_view yaml, std::string_view source) {
    Parser p(source);
    try {
        YAML::Node root = YAML::Load(std::string(yaml));
        return Build(root, p);
    } catch (const YAML::Exception& e) {
        return absl::InvalidArgumentError(absl::StrFormat("config %s: line %d, column %d: %s", source, e.mark.line + 1,
                                                          e.mark.column + 1, e.msg));
    }
}

absl::StatusOr<DaemonConfig> LoadConfig(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return absl::NotFoundError(absl::StrFormat("config %s: cannot be read", path));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ParseConfig(ss.str(), path);
}

}  // namespace zerohop

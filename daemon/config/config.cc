#include "config/config.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <type_traits>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "zerohop/path.h"

namespace zerohop {

namespace {

// A secret kept in a file of its own (a mounted Kubernetes Secret): its first line.
absl::StatusOr<std::string> FirstLineOf(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return absl::NotFoundError(absl::StrFormat("cannot read %s", path));
    }
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    return line;
}

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

// ---- backend options ------------------------------------------------------------------

// The `options` of one mount, read key by key into its kind's typed options.
class OptionReader {
public:
    // `where` names the mount ("mounts[2]": its options are below ".options"), or, with
    // `below` empty, the mapping itself ("peer_keys[0]").
    OptionReader(const Parser& p, std::string where, const std::map<std::string, std::string>& options,
                 std::string_view below = ".options")
        : p_(p), where_(std::move(where) + std::string(below)), options_(options) {}

    absl::Status Error(const std::string& key, absl::string_view problem) const {
        return p_.Error(key.empty() ? where_ : absl::StrCat(where_, ".", key), std::string(problem));
    }
    bool Has(const std::string& key) const { return options_.count(key) != 0; }

    absl::Status OnlyKeys(const std::set<std::string>& known) const {
        for (const auto& [k, v] : options_) {
            if (!known.count(k)) {
                return Error(k, absl::StrFormat("unknown key (known: %s)", absl::StrJoin(known, ", ")));
            }
        }
        return absl::OkStatus();
    }
    void Text(const std::string& key, std::string* out) const {
        if (auto it = options_.find(key); it != options_.end()) {
            *out = it->second;
        }
    }
    absl::Status Flag(const std::string& key, bool* out) const {
        auto it = options_.find(key);
        if (it == options_.end()) {
            return absl::OkStatus();
        }
        if (it->second != "true" && it->second != "false") {
            return Error(key, "expected true or false");
        }
        *out = it->second == "true";
        return absl::OkStatus();
    }
    template <typename N>
    absl::Status Count(const std::string& key, uint64_t lo, uint64_t hi, N* out) const {
        auto it = options_.find(key);
        if (it == options_.end()) {
            return absl::OkStatus();
        }
        uint64_t v;
        if (!absl::SimpleAtoi(it->second, &v) || v < lo || v > hi) {
            return Error(key, absl::StrFormat("expected a whole number in %d..%d, not \"%s\"", lo, hi, it->second));
        }
        *out = static_cast<N>(v);
        return absl::OkStatus();
    }
    absl::Status Millis(const std::string& key, absl::Duration* out) const {
        int64_t ms = 0;
        ZH_RETURN_IF_ERROR(Count(key, 1, 24 * 3600 * 1000, &ms));
        if (ms > 0) {
            *out = absl::Milliseconds(ms);
        }
        return absl::OkStatus();
    }

private:
    const Parser& p_;
    std::string where_;
    const std::map<std::string, std::string>& options_;
};

absl::Status ReadOptions(const OptionReader& r, EmbeddedOptions* o) {
    ZH_RETURN_IF_ERROR(r.OnlyKeys({"dir", "sync_writes", "inline_max_bytes", "io_threads"}));
    r.Text("dir", &o->dir);
    if (o->dir.empty() || o->dir[0] != '/') {
        return r.Error("dir", "the embedded backend needs an absolute directory");
    }
    ZH_RETURN_IF_ERROR(r.Flag("sync_writes", &o->sync_writes));
    ZH_RETURN_IF_ERROR(r.Count("inline_max_bytes", 0, 64 << 20, &o->inline_max_bytes));
    ZH_RETURN_IF_ERROR(r.Count("io_threads", 0, 256, &o->io_threads));
    return absl::OkStatus();
}

absl::Status ReadOptions(const OptionReader& r, RedisBackendOptions* o) {
    ZH_RETURN_IF_ERROR(r.OnlyKeys({"url", "prefix", "user", "password", "password_file", "database",
                                   "connect_timeout_ms", "command_timeout_ms", "retry_window_ms", "replicas",
                                   "replica_timeout_ms", "threads", "connections", "inline_max_bytes"}));
    std::string url;
    r.Text("url", &url);
    if (!absl::StartsWith(url, "redis://")) {
        return r.Error("url", "the redis backend needs redis://host:port[,host:port...]");
    }
    auto seeds = redis::ParseRedisUrl(url);
    if (!seeds.ok()) {
        return r.Error("url", seeds.status().message());
    }
    o->client.seeds = std::move(*seeds);
    if (r.Has("password") && r.Has("password_file")) {
        return r.Error("", "give password or password_file, not both");  // (never the password itself)
    }
    r.Text("password", &o->client.password);
    std::string password_file;
    r.Text("password_file", &password_file);
    if (r.Has("password_file")) {
        if (password_file.empty() || password_file[0] != '/') {
            return r.Error("password_file", "expected an absolute path");
        }
        auto password = FirstLineOf(password_file);
        if (!password.ok()) {
            return r.Error("password_file", std::string(password.status().message()));
        }
        o->client.password = *password;
    }
    r.Text("prefix", &o->key_prefix);
    r.Text("user", &o->client.user);
    ZH_RETURN_IF_ERROR(r.Count("database", 0, 1 << 16, &o->client.database));
    ZH_RETURN_IF_ERROR(r.Millis("connect_timeout_ms", &o->client.connect_timeout));
    ZH_RETURN_IF_ERROR(r.Millis("command_timeout_ms", &o->client.command_timeout));
    ZH_RETURN_IF_ERROR(r.Millis("retry_window_ms", &o->client.retry_window));
    ZH_RETURN_IF_ERROR(r.Count("replicas", 0, 64, &o->replicas));
    ZH_RETURN_IF_ERROR(r.Millis("replica_timeout_ms", &o->replica_timeout));
    ZH_RETURN_IF_ERROR(r.Count("threads", 1, 256, &o->threads));
    ZH_RETURN_IF_ERROR(r.Count("connections", 1, 64, &o->client.connections_per_node));
    ZH_RETURN_IF_ERROR(r.Count("inline_max_bytes", 0, 64 << 20, &o->inline_max_bytes));
    return absl::OkStatus();
}

// peer://host:port/container
struct PeerUrl {
    std::string host;
    uint16_t port = 0;
    std::string container;
};
absl::StatusOr<PeerUrl> ParsePeerUrl(std::string_view url) {
    constexpr std::string_view kScheme = "peer://";
    auto bad = absl::InvalidArgumentError("the peer backend needs peer://host:port/container");
    if (url.substr(0, kScheme.size()) != kScheme) {
        return bad;
    }
    std::string_view rest = url.substr(kScheme.size());
    size_t slash = rest.find('/');
    size_t colon = rest.rfind(':', slash);
    if (slash == std::string_view::npos || colon == std::string_view::npos || colon == 0) {
        return bad;
    }
    PeerUrl u;
    u.host = std::string(rest.substr(0, colon));
    if (u.host.size() > 2 && u.host.front() == '[' && u.host.back() == ']') {
        u.host = u.host.substr(1, u.host.size() - 2);  // [IPv6]
    }
    uint32_t port;
    if (!absl::SimpleAtoi(absl::string_view(rest.data() + colon + 1, slash - colon - 1), &port) || port == 0 ||
        port > 65535) {
        return absl::InvalidArgumentError("the port of peer://host:port/container is 1..65535");
    }
    u.port = static_cast<uint16_t>(port);
    u.container = std::string(rest.substr(slash + 1));
    if (absl::Status s = Path::ValidateComponent(u.container); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrFormat("the container of the url: %s", s.message()));
    }
    return u;
}

// A secret given inline or in a file (a mounted Kubernetes Secret), one of the two.
absl::Status ReadSecret(const OptionReader& r, const std::string& inline_key, const std::string& file_key,
                        std::string* out) {
    if (r.Has(inline_key) == r.Has(file_key)) {
        return r.Error(inline_key, absl::StrFormat("give %s or %s, one of them", inline_key, file_key));
    }
    r.Text(inline_key, out);
    if (r.Has(file_key)) {
        std::string file;
        r.Text(file_key, &file);
        auto read = file.empty() || file[0] != '/' ? absl::InvalidArgumentError("expected an absolute path")
                                                   : FirstLineOf(file);
        if (!read.ok()) {
            return r.Error(file_key, read.status().message());
        }
        *out = *read;
    }
    return absl::OkStatus();
}

absl::Status ReadOptions(const OptionReader& r, PeerBackendOptions* o) {
    ZH_RETURN_IF_ERROR(r.OnlyKeys({"url", "key_id", "secret", "secret_file", "timeout_ms"}));
    std::string url;
    r.Text("url", &url);
    auto u = ParsePeerUrl(url);
    if (!u.ok()) {
        return r.Error("url", u.status().message());
    }
    o->host = u->host;
    o->port = u->port;
    o->remote_of[""] = u->container;  // (each mount's own name is filled in by the grouping)
    r.Text("key_id", &o->key_id);
    ZH_RETURN_IF_ERROR(ReadSecret(r, "secret", "secret_file", &o->secret));
    if (o->key_id.empty() || o->key_id.size() > 255) {
        return r.Error("key_id", "the peer key's id: 1 to 255 bytes");
    }
    if (o->secret.size() < 16) {
        return r.Error("secret", "a peer key's secret needs at least 16 bytes");
    }
    ZH_RETURN_IF_ERROR(r.Millis("timeout_ms", &o->timeout));
    return absl::OkStatus();
}

// The typed options of a mount of kind `kind`: the kind is looked up among BackendOptions'
// alternatives, so that a kind the variant lists cannot lack a parser.
template <size_t I = 0>
absl::StatusOr<BackendOptions> ReadBackend(std::string_view kind, const OptionReader& r) {
    if constexpr (I == std::variant_size_v<BackendOptions>) {
        return r.Error("", absl::StrFormat("no backend \"%s\"", std::string(kind)));  // (checked before)
    } else {
        using Options = std::variant_alternative_t<I, BackendOptions>;
        if (kind != Options::kKind) {
            return ReadBackend<I + 1>(kind, r);
        }
        Options o;
        ZH_RETURN_IF_ERROR(ReadOptions(r, &o));
        return BackendOptions(std::move(o));
    }
}

template <size_t... I>
std::vector<std::string> KindNames(std::index_sequence<I...>) {
    return {std::string(std::variant_alternative_t<I, BackendOptions>::kKind)...};
}
const std::vector<std::string>& KnownKinds() {
    static const auto* kinds =
        new std::vector<std::string>(KindNames(std::make_index_sequence<std::variant_size_v<BackendOptions>>()));
    return *kinds;
}

// The mounts grouped into the backends that serve them: one embedded store per directory,
// one redis backend per distinct set of options. A store's options are those any of its
// mounts gives (two mounts giving one option different values is an error).
struct Group {
    std::string kind;
    std::map<std::string, std::string> options;
    std::vector<std::string> containers;
    std::string first;  // where the first mount is, for messages
};

absl::Status AddToGroup(const Parser& p, const std::string& where, const MountConfig& mount,
                        std::vector<Group>* groups) {
    for (Group& g : *groups) {
        if (g.kind != mount.backend) {
            continue;
        }
        if (mount.backend == EmbeddedOptions::kKind) {
            if (g.options.at("dir") != mount.options.at("dir")) {
                continue;
            }
            for (const auto& [k, v] : mount.options) {
                auto [it, fresh] = g.options.emplace(k, v);
                if (!fresh && it->second != v) {
                    return p.Error(absl::StrCat(where, ".options.", k),
                                   absl::StrFormat("\"%s\" differs from \"%s\" in %s, which shares the store in %s",
                                                   v, it->second, g.first, g.options.at("dir")));
                }
            }
        } else if (g.options != mount.options) {
            continue;
        }
        g.containers.push_back(mount.container);
        return absl::OkStatus();
    }
    groups->push_back({mount.backend, mount.options, {mount.container}, where});
    return absl::OkStatus();
}

// A key's `containers: {name: r | rw}` (credentials and peer keys alike): whether each is
// writable. Each must be mounted.
absl::StatusOr<std::map<std::string, bool>> ReadRights(const Parser& p, const YAML::Node& cs, const std::string& where,
                                                       const std::set<std::string>& containers) {
    if (!cs || !cs.IsMap() || cs.size() == 0) {
        return p.Error(where + ".containers", "expected a mapping of container: r | rw");
    }
    std::map<std::string, bool> out;
    for (const auto& kv : cs) {
        std::string name = kv.first.as<std::string>();
        ZH_ASSIGN_OR_RETURN(auto rights, p.String(kv.second, where + ".containers." + name));
        if (!containers.count(name)) {
            return p.Error(where + ".containers." + name, "no such container in mounts");
        }
        if (rights != "r" && rights != "rw") {
            return p.Error(where + ".containers." + name, absl::StrFormat("\"%s\" is not r or rw", rights));
        }
        out[name] = rights == "rw";
    }
    return out;
}

// peer_listen: {address, port}; peer_keys: [{id, secret | secret_file, containers: {name: r | rw}}].
absl::Status ReadPeers(const YAML::Node& root, const Parser& p, const std::set<std::string>& containers,
                       DaemonConfig* cfg) {
    if (const YAML::Node l = root["peer_listen"]) {
        ZH_RETURN_IF_ERROR(p.OnlyKeys(l, "peer_listen", {"address", "port"}));
        cfg->peer_listen.enabled = true;
        if (l["address"]) {
            ZH_ASSIGN_OR_RETURN(cfg->peer_listen.address, p.String(l["address"], "peer_listen.address"));
        }
        if (l["port"]) {
            ZH_ASSIGN_OR_RETURN(auto port, p.Number(l["port"], "peer_listen.port", 0, 65535));
            cfg->peer_listen.port = static_cast<uint16_t>(port);
        }
    }
    const YAML::Node keys = root["peer_keys"];
    if (cfg->peer_listen.enabled && (!keys || !keys.IsSequence() || keys.size() == 0)) {
        return p.Error("peer_keys", "peer_listen needs a list of the peer keys it accepts");
    }
    if (keys && !cfg->peer_listen.enabled) {
        return p.Error("peer_keys", "no peer_listen to accept them on");
    }
    std::set<std::string> ids;
    for (size_t i = 0; keys && i < keys.size(); ++i) {
        std::string where = absl::StrFormat("peer_keys[%d]", i);
        const YAML::Node k = keys[i];
        ZH_RETURN_IF_ERROR(p.OnlyKeys(k, where, {"id", "secret", "secret_file", "containers"}));
        std::map<std::string, std::string> fields;
        for (const char* f : {"id", "secret", "secret_file"}) {
            if (k[f]) {
                ZH_ASSIGN_OR_RETURN(fields[f], p.String(k[f], where + "." + f));
            }
        }
        OptionReader r(p, where, fields, "");
        PeerKeyConfig key;
        r.Text("id", &key.id);
        if (key.id.empty() || key.id.size() > 255 || !ids.insert(key.id).second) {
            return r.Error("id", "1 to 255 bytes, each id once");
        }
        ZH_RETURN_IF_ERROR(ReadSecret(r, "secret", "secret_file", &key.secret));
        if (key.secret.size() < 16) {
            return r.Error("secret", "a peer key's secret needs at least 16 bytes");
        }
        ZH_ASSIGN_OR_RETURN(key.containers, ReadRights(p, k["containers"], where, containers));
        cfg->peer_keys.push_back(std::move(key));
    }
    return absl::OkStatus();
}

absl::StatusOr<DaemonConfig> Build(const YAML::Node& root, const Parser& p) {
    DaemonConfig cfg;
    if (root.IsNull()) {
        return p.Error("(top level)", "the file is empty");
    }
    ZH_RETURN_IF_ERROR(p.OnlyKeys(root, "", {"listen", "runtime_dir", "workers", "wait_with", "metrics_port",
                                             "log_level", "limits", "mounts", "credentials", "peer_listen",
                                             "peer_keys"}));
    if (root["listen"]) {
        ZH_ASSIGN_OR_RETURN(auto listen, p.String(root["listen"], "listen"));
        if (listen.empty() || listen[0] != '/' || listen.size() > 107) {
            return p.Error("listen", "must be an absolute socket path of at most 107 bytes");
        }
        cfg.listen = listen;
    }
    if (root["runtime_dir"]) {
        ZH_ASSIGN_OR_RETURN(auto dir, p.String(root["runtime_dir"], "runtime_dir"));
        if (dir.empty() || dir[0] != '/' || dir.size() > 60) {
            return p.Error("runtime_dir",
                           "must be an absolute directory of at most 60 bytes (volume sockets go below it)");
        }
        cfg.runtime_dir = dir;
    }
    if (root["workers"]) {
        ZH_ASSIGN_OR_RETURN(auto workers, p.Number(root["workers"], "workers", 1, 256));
        cfg.workers = static_cast<uint32_t>(workers);
    }
    if (root["wait_with"]) {
        ZH_ASSIGN_OR_RETURN(auto how, p.String(root["wait_with"], "wait_with"));
        if (how != "auto" && how != "io_uring" && how != "epoll") {
            return p.Error("wait_with", absl::StrFormat("\"%s\" is not one of auto, io_uring, epoll", how));
        }
        cfg.wait_with = how;
    }
    if (root["metrics_port"]) {
        if (root["metrics_port"].IsScalar() && root["metrics_port"].as<std::string>() == "auto") {
            cfg.metrics_port_auto = true;  // the default port if it is free
        } else {
            ZH_ASSIGN_OR_RETURN(auto port, p.Number(root["metrics_port"], "metrics_port", 0, 65535));
            cfg.metrics_port = static_cast<uint16_t>(port);
        }
    }
    if (root["log_level"]) {
        ZH_ASSIGN_OR_RETURN(auto level, p.String(root["log_level"], "log_level"));
        if (level != "debug" && level != "info" && level != "warning" && level != "error") {
            return p.Error("log_level", absl::StrFormat("\"%s\" is not one of debug, info, warning, error", level));
        }
        cfg.log_level = level;
    }
    if (const YAML::Node limits = root["limits"]) {
        ZH_RETURN_IF_ERROR(
            p.OnlyKeys(limits, "limits", {"max_in_flight", "max_client_bytes", "max_daemon_bytes", "max_sessions"}));
        if (limits["max_in_flight"]) {
            ZH_ASSIGN_OR_RETURN(auto v, p.Number(limits["max_in_flight"], "limits.max_in_flight", 1, 1 << 16));
            cfg.limits.max_in_flight = static_cast<uint32_t>(v);
        }
        if (limits["max_client_bytes"]) {
            ZH_ASSIGN_OR_RETURN(auto v, p.Number(limits["max_client_bytes"], "limits.max_client_bytes", 1 << 16, uint64_t{1} << 34));
            cfg.limits.max_client_bytes = v;
        }
        if (limits["max_daemon_bytes"]) {
            ZH_ASSIGN_OR_RETURN(auto v, p.Number(limits["max_daemon_bytes"], "limits.max_daemon_bytes", 1 << 16, uint64_t{1} << 34));
            cfg.limits.max_daemon_bytes = v;
        }
        if (limits["max_sessions"]) {
            ZH_ASSIGN_OR_RETURN(auto v, p.Number(limits["max_sessions"], "limits.max_sessions", 1, 1 << 20));
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
            ZH_RETURN_IF_ERROR(p.OnlyKeys(m, where, {"container", "backend", "options"}));
            MountConfig mc;
            if (!m["container"]) {
                return p.Error(where + ".container", "missing");
            }
            ZH_ASSIGN_OR_RETURN(auto container, p.String(m["container"], where + ".container"));
            if (absl::Status s = Path::ValidateComponent(container); !s.ok()) {
                return p.Error(where + ".container", std::string(s.message()));
            }
            if (!containers.insert(container).second) {
                return p.Error(where + ".container", absl::StrFormat("\"%s\" is mounted twice", container));
            }
            mc.container = container;
            ZH_ASSIGN_OR_RETURN(auto backend, m["backend"] ? p.String(m["backend"], where + ".backend") : absl::StatusOr<std::string>("embedded"));
            if (std::find(KnownKinds().begin(), KnownKinds().end(), backend) == KnownKinds().end()) {
                return p.Error(where + ".backend", absl::StrFormat("unknown backend \"%s\" (known: %s)", backend,
                                                                   absl::StrJoin(KnownKinds(), ", ")));
            }
            mc.backend = backend;
            if (const YAML::Node o = m["options"]) {
                if (!o.IsMap()) {
                    return p.Error(where + ".options", "expected a mapping");
                }
                for (const auto& kv : o) {
                    std::string k = kv.first.as<std::string>();
                    ZH_ASSIGN_OR_RETURN(auto v, p.String(kv.second, where + ".options." + k));
                    mc.options[k] = v;
                }
            }
            cfg.mounts.push_back(std::move(mc));
        }
    }
    if (cfg.mounts.empty()) {
        return p.Error("mounts", "at least one container must be mounted");
    }
    // Each mount's options are checked where they are written; then each group's, together.
    std::vector<Group> groups;
    for (size_t i = 0; i < cfg.mounts.size(); ++i) {
        std::string where = absl::StrFormat("mounts[%d]", i);
        const MountConfig& mount = cfg.mounts[i];
        ZH_RETURN_IF_ERROR(ReadBackend(mount.backend, OptionReader(p, where, mount.options)).status());
        ZH_RETURN_IF_ERROR(AddToGroup(p, where, mount, &groups));
    }
    for (const Group& g : groups) {
        ZH_ASSIGN_OR_RETURN(BackendOptions options, ReadBackend(g.kind, OptionReader(p, g.first, g.options)));
        std::visit([&](auto& typed) { typed.containers = g.containers; }, options);
        if (auto* peer = std::get_if<PeerBackendOptions>(&options)) {
            std::string remote = peer->remote_of[""];
            peer->remote_of.clear();
            for (const std::string& c : g.containers) {
                peer->remote_of[c] = remote;  // (mounts of one url share it)
            }
        }
        cfg.backends.push_back(std::move(options));
    }
    std::set<std::string> keys;
    if (const YAML::Node creds = root["credentials"]) {
        if (!creds.IsSequence()) {
            return p.Error("credentials", "expected a list");
        }
        for (size_t i = 0; i < creds.size(); ++i) {
            std::string where = absl::StrFormat("credentials[%d]", i);
            const YAML::Node c = creds[i];
            ZH_RETURN_IF_ERROR(p.OnlyKeys(c, where, {"key", "key_file", "containers", "uids", "admin"}));
            CredentialConfig cc;
            if (!c["key"] == !c["key_file"]) {
                return p.Error(where + ".key", "give key or key_file (a file holding it: a mounted Secret), one of them");
            }
            std::string key;
            if (c["key"]) {
                ZH_ASSIGN_OR_RETURN(key, p.String(c["key"], where + ".key"));
            } else {
                ZH_ASSIGN_OR_RETURN(auto file, p.String(c["key_file"], where + ".key_file"));
                auto read = file.empty() || file[0] != '/' ? absl::InvalidArgumentError("expected an absolute path")
                                                           : FirstLineOf(file);
                if (!read.ok()) {
                    return p.Error(where + ".key_file", std::string(read.status().message()));
                }
                key = *read;
            }
            if (key.empty() || key.size() > 256) {
                return p.Error(where + ".key", "must be 1..256 bytes");
            }
            if (!keys.insert(key).second) {
                return p.Error(where + ".key", "the same key is listed twice");
            }
            cc.key = key;
            if (const YAML::Node admin = c["admin"]) {
                ZH_ASSIGN_OR_RETURN(auto flag, p.String(admin, where + ".admin"));
                if (flag != "true" && flag != "false") {
                    return p.Error(where + ".admin", "expected true or false");
                }
                cc.admin = flag == "true";
            }
            const YAML::Node cs = c["containers"];
            if (cc.admin && !cs) {
                cfg.credentials.push_back(std::move(cc));  // an admin key needs no container of its own
                continue;
            }
            ZH_ASSIGN_OR_RETURN(auto rights, ReadRights(p, cs, where, containers));
            for (const auto& [name, writable] : rights) {
                cc.containers[name] = writable ? (kRightRead | kRightWrite) : kRightRead;
            }
            if (const YAML::Node uids = c["uids"]) {
                if (!uids.IsSequence()) {
                    return p.Error(where + ".uids", "expected a list of numbers");
                }
                for (size_t j = 0; j < uids.size(); ++j) {
                    ZH_ASSIGN_OR_RETURN(auto uid, p.Number(uids[j], absl::StrFormat("%s.uids[%d]", where, j), 0, UINT32_MAX));
                    cc.uids.push_back(static_cast<uint32_t>(uid));
                }
            }
            cfg.credentials.push_back(std::move(cc));
        }
    }
    if (cfg.credentials.empty()) {
        return p.Error("credentials", "at least one access key is needed, or no client can connect");
    }
    ZH_RETURN_IF_ERROR(ReadPeers(root, p, containers, &cfg));
    if (cfg.runtime_dir.empty()) {
        cfg.runtime_dir = cfg.listen.substr(0, cfg.listen.rfind('/'));
        if (cfg.runtime_dir.empty()) {
            cfg.runtime_dir = "/";
        }
    }
    if (cfg.workers == 0) {
        cfg.workers = std::max(1u, std::thread::hardware_concurrency());
    }
    return cfg;
}

}  // namespace

std::string_view BackendKind(const BackendOptions& options) {
    return std::visit([](const auto& o) { return std::decay_t<decltype(o)>::kKind; }, options);
}

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

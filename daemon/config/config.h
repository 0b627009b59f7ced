#pragma once
// zerohopd's configuration: one YAML document (a Kubernetes ConfigMap carries it as is).
//
//   listen: /run/zerohop/zerohop.sock
//   runtime_dir: /run/zerohop       # volume sockets and their records; default: listen's directory
//   workers: 2                      # default: one per core
//   wait_with: auto                 # how idle workers sleep: auto (io_uring, else epoll) | io_uring | epoll
//   metrics_port: 9464              # on 127.0.0.1; 0 disables; auto: 9464 if free, else any free port
//   log_level: info                 # debug | info | warning | error
//   limits: {max_in_flight: 256, max_client_bytes: 64Mi, max_daemon_bytes: 64Mi, max_sessions: 4096}
//   mounts:
//     - {container: demo, backend: embedded, options: {dir: /var/lib/zerohop}}
//     - {container: shared, backend: redis, options: {url: "redis://10.0.0.1:7000,10.0.0.2:7000",
//        password_file: /etc/zerohop/redis-password, replicas: 1}}   # see docs/REDIS.md
//   credentials:
//     - {key: dev-key, containers: {demo: rw}, uids: [0, 1000]}   # uids: optional
//     - {key: csi-node-key, admin: true}      # may publish volume sockets (the CSI node plugin)
//
// The options of each backend kind (each key checked, numbers in range):
//   embedded  dir (absolute, required), sync_writes (true|false), inline_max_bytes, io_threads
//   redis     url (redis://host:port[,...], required), prefix, user, password | password_file,
//             database, connect_timeout_ms, command_timeout_ms, retry_window_ms, replicas,
//             replica_timeout_ms, threads, connections, inline_max_bytes
//
// The mounts become backends: one embedded store per directory (its containers must agree
// on its options), one redis backend per distinct set of options. Each comes out typed
// (DaemonConfig::backends), ready for the backend registry (registry/registry.h) to open.
//
// A bad file stops start-up with an error that names the key and the problem:
//   config /etc/zerohop/zerohopd.yaml: mounts[1].backend: unknown backend "s3" (known: embedded, redis)
//
//   auto cfg = LoadConfig("/etc/zerohop/zerohopd.yaml");

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "embedded/options.h"
#include "peer/options.h"
#include "redis/options.h"

namespace zerohop {

inline constexpr uint32_t kRightRead = 1;
inline constexpr uint32_t kRightWrite = 2;

// One backend to open, by kind: the list of every kind zerohopd knows.
using BackendOptions = std::variant<EmbeddedOptions, RedisBackendOptions, PeerBackendOptions>;

// "embedded", "redis": the kind's name in the configuration.
std::string_view BackendKind(const BackendOptions& options);

// One entry of `mounts`, as written.
struct MountConfig {
    std::string container;
    std::string backend;                         // the kind
    std::map<std::string, std::string> options;  // the kind's options, as written
};

struct CredentialConfig {
    std::string key;
    std::map<std::string, uint32_t> containers;  // container -> kRightRead | kRightWrite
    std::vector<uint32_t> uids;                  // peers allowed to use the key; empty: any
    bool admin = false;                          // may publish volume sockets (PublishVolumeRequest)
};

struct LimitsConfig {
    uint32_t max_in_flight = 256;             // requests per session
    uint64_t max_client_bytes = 64 << 20;     // client buffer region per session
    uint64_t max_daemon_bytes = 64 << 20;     // daemon buffer region per session
    uint32_t max_sessions = 4096;
};

struct DaemonConfig {
    std::string listen = "/run/zerohop/zerohop.sock";
    // Where volume sockets (<runtime_dir>/volumes/) and their records live; empty: the
    // directory of `listen`.
    std::string runtime_dir;
    uint32_t workers = 0;  // 0: one per core
    uint16_t metrics_port = 9464;
    bool metrics_port_auto = false;  // a taken metrics_port is not an error: take any free one
    std::string log_level = "info";
    std::string wait_with = "auto";
    LimitsConfig limits;
    std::vector<MountConfig> mounts;
    std::vector<BackendOptions> backends;  // the mounts, grouped into the backends that serve them
    std::vector<CredentialConfig> credentials;
    // Serving this node's containers to other nodes' daemons (their `peer` mounts).
    PeerListenConfig peer_listen;
    std::vector<PeerKeyConfig> peer_keys;
};

absl::StatusOr<DaemonConfig> ParseConfig(std::string_view yaml, std::string_view source);
absl::StatusOr<DaemonConfig> LoadConfig(const std::string& path);

}  // namespace zerohop

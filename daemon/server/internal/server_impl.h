#pragma once
// What a Server is made of: its backends and mount table, its credentials, the listening
// socket and its acceptor (handshake.cc), the workers, the metrics endpoint (server.cc).

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "backend/backend.h"
#include "config/config.h"
#include "peer/peer.h"
#include "server/internal/session.h"
#include "server/internal/worker.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/volumes.h"
#include "shmring/doorbell.h"
#include "shmring/unique_fd.h"

namespace zerohop {

class Server::Impl {
public:
    explicit Impl(DaemonConfig config) : config_(std::move(config)) {}
    ~Impl() { Stop(); }

    absl::Status Open();
    void Stop();
    DaemonStatus stats() const;
    DaemonInfo info() const;
    const std::string& socket_path() const { return config_.listen; }

    // Where a container is served: its backend, and that backend's metrics label.
    struct Mount {
        Backend* backend = nullptr;
        uint8_t label = 0;
    };
    absl::StatusOr<Mount> Route(const Path& path) const;
    const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }
    // Whether the session's key grants `write` (else read) on the container of `path`.
    absl::Status Allow(const Session& s, const Path& path, bool write) const;
    std::vector<std::string> GrantedContainers(const Session& s) const;

    // Volumes: whether the session may publish `req` (an admin key; the volume's key grants
    // its container), then VolumeSockets::Publish once its root is found to be a directory.
    absl::Status CheckPublish(const Session& s, const PublishVolumeRequest& req) const;
    VolumeSockets& volumes() { return *volumes_; }
    absl::Status UnpublishVolume(const Session& s, const UnpublishVolumeRequest& req);

private:
    absl::Status OpenBackends();
    absl::Status Listen();
    absl::Status ServePeers();
    // handshake.cc
    void AcceptLoop();
    static bool HelloArrived(int sock);
    // `scope`: the connection came on a volume's socket.
    void Handshake(shmring::UniqueFd sock, std::shared_ptr<const Scope> scope);

    DaemonConfig config_;
    std::vector<std::unique_ptr<Backend>> backends_;
    std::vector<std::string> labels_;  // metrics labels of backends: 0 is zerohopd itself
    absl::flat_hash_map<std::string, Mount> mounts_;
    absl::flat_hash_map<std::string, const CredentialConfig*> keys_;
    shmring::UniqueFd listener_;
    std::optional<shmring::EventFd> stop_bell_;
    std::thread acceptor_;
    std::vector<std::unique_ptr<Worker>> workers_;
    MetricsEndpoint metrics_endpoint_;
    std::unique_ptr<VolumeSockets> volumes_;
    // This node's containers served to other daemons (peer_listen); null when not configured.
    std::unique_ptr<PeerServer> peer_server_;
    uint16_t rdma_port_ = 0;  // listening for RDMA peers there (through the node's manager)
    std::atomic<uint64_t> next_session_{1};
    std::atomic<uint64_t> sessions_total_{0}, sessions_refused_{0};
    std::atomic<bool> stopped_{false};
    std::atomic<size_t> next_worker_{0};
    // Hellos run on threads of their own, so a client that never says hello delays nobody.
    std::atomic<int> handshakes_{0};
    static constexpr int kMaxHandshakes = 64;
};

}  // namespace zerohop

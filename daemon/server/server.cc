// zerohopd's server: its backends and mount table, the listening socket, the workers and
// the metrics endpoint; routing and rights. The acceptor is handshake.cc, a worker's loop
// worker.cc, the dispatch of requests dispatch.cc, streamed puts uploads.cc.

#include "server/server.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_format.h"
#include "base/fingerprint.h"
#include "base/status_macros.h"
#include "registry/registry.h"
#include "server/internal/server_impl.h"
#include "base/log.h"
#include "shmring/unix_socket.h"

namespace zerohop {

absl::StatusOr<Server::Impl::Mount> Server::Impl::Route(const Path& path) const {
    auto it = mounts_.find(absl::string_view(path.container().data(), path.container().size()));
    if (it == mounts_.end()) {
        return absl::NotFoundError(absl::StrFormat("%s: container \"%s\" is not mounted", path.str(), path.container()));
    }
    return it->second;
}

absl::Status Server::Impl::Allow(const Session& s, const Path& path, bool write) const {
    auto it = s.credential->containers.find(std::string(path.container()));
    uint32_t need = write ? kRightWrite : kRightRead;
    if (path.is_root() || it == s.credential->containers.end() || (it->second & need) == 0) {
        return absl::PermissionDeniedError(absl::StrFormat("%s: this access key does not grant %s on container \"%s\"",
                                                           path.str(), write ? "write" : "read", path.container()));
    }
    return absl::OkStatus();
}

std::vector<std::string> Server::Impl::GrantedContainers(const Session& s) const {
    std::vector<std::string> out;
    for (const auto& [name, rights] : s.credential->containers) {
        if (rights & kRightRead) {
            out.push_back(name);
        }
    }
    return out;
}

absl::Status Server::Impl::OpenBackends() {
    labels_ = {"zerohopd"};  // what the daemon answers itself
    for (const BackendOptions& options : config_.backends) {
        ZH_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, OpenBackend(options));
        // Metrics label requests by the kind of backend that served them.
        auto label = std::find(labels_.begin(), labels_.end(), backend->kind());
        if (label == labels_.end()) {
            if (labels_.size() == Metrics::kBackends) {
                return absl::InternalError("more kinds of backends than metrics label slots");
            }
            label = labels_.insert(labels_.end(), std::string(backend->kind()));
        }
        Mount mount{backend.get(), static_cast<uint8_t>(label - labels_.begin())};
        std::visit([&](const auto& o) {
            for (const std::string& c : o.containers) {
                mounts_[c] = mount;
            }
        }, options);
        backends_.push_back(std::move(backend));
    }
    for (const CredentialConfig& c : config_.credentials) {
        keys_[c.key] = &c;
    }
    // The volumes published before a restart listen again (those whose key still grants them).
    volumes_ = std::make_unique<VolumeSockets>(config_.runtime_dir);
    volumes_->Restore([this](const std::string& fingerprint) -> const CredentialConfig* {
        for (const CredentialConfig& c : config_.credentials) {
            if (Fingerprint(c.key) == fingerprint) {
                return &c;
            }
        }
        return nullptr;
    });
    return absl::OkStatus();
}

absl::Status Server::Impl::CheckPublish(const Session& s, const PublishVolumeRequest& req) const {
    if (!s.credential->admin) {
        return absl::PermissionDeniedError("publish_volume: this access key is not an admin key");
    }
    ZH_RETURN_IF_ERROR(VolumeSockets::ValidateId(req.scope_id));
    if (req.root.is_root()) {
        return absl::InvalidArgumentError("publish_volume: the root must name a container");
    }
    ZH_RETURN_IF_ERROR(Route(req.root).status());
    auto key = keys_.find(req.access_key);
    std::string container(req.root.container());
    uint32_t need = req.read_only ? kRightRead : (kRightRead | kRightWrite);
    if (key == keys_.end()) {
        return absl::PermissionDeniedError("publish_volume: the volume's access key is unknown");
    }
    auto granted = key->second->containers.find(container);
    if (granted == key->second->containers.end() || (granted->second & need) != need) {
        return absl::PermissionDeniedError(absl::StrFormat("publish_volume: the volume's access key does not grant %s "
                                                           "on container \"%s\"",
                                                           req.read_only ? "read" : "read-write", container));
    }
    return absl::OkStatus();
}

absl::Status Server::Impl::UnpublishVolume(const Session& s, const UnpublishVolumeRequest& req) {
    if (!s.credential->admin) {
        return absl::PermissionDeniedError("unpublish_volume: this access key is not an admin key");
    }
    ZH_RETURN_IF_ERROR(VolumeSockets::ValidateId(req.scope_id));
    if (volumes_->Unpublish(req.scope_id)) {
        for (auto& w : workers_) {
            w->CloseScope(req.scope_id);  // its pod is gone: so are its sessions
        }
    }
    return absl::OkStatus();
}

absl::Status Server::Impl::Listen() {
    // The socket: a stale one from a dead daemon is replaced; a live one is an error.
    if (shmring::ConnectUnix(config_.listen).ok()) {
        return absl::AlreadyExistsError(absl::StrFormat(
            "listen: another zerohopd is serving %s; stop it, or give this one a listen path of its own",
            config_.listen));
    }
    // Access is decided by the key and the peer's uid, not the socket's mode.
    auto listener = shmring::ListenUnix(config_.listen, 0666, 1024);
    if (!listener.ok()) {
        return absl::FailedPreconditionError(absl::StrFormat("listen: cannot listen on %s: %s (does its directory exist?)",
                                                             config_.listen, listener.status().message()));
    }
    listener_ = std::move(*listener);
    return absl::OkStatus();
}

absl::Status Server::Impl::ServePeers() {
    absl::flat_hash_map<std::string, PeerGrant> grants;
    for (const PeerKeyConfig& k : config_.peer_keys) {
        PeerGrant g{.secret = k.secret};
        for (const auto& [container, writable] : k.containers) {
            g.containers[container] = writable ? PeerRight::kWrite : PeerRight::kRead;
        }
        grants[k.id] = std::move(g);
    }
    peer_server_ = std::make_unique<PeerServer>(
        [this](std::string_view container) -> Backend* {
            auto it = mounts_.find(absl::string_view(container.data(), container.size()));
            return it == mounts_.end() ? nullptr : it->second.backend;
        },
        std::move(grants));
    peer::PeerLoop* loop = NodePeerLoop();
    if (loop == nullptr) {
        return absl::UnavailableError("peer_listen: the peer transport did not start (see the log)");
    }
    auto port = loop->Listen(config_.peer_listen.address, config_.peer_listen.port, peer_server_->Secrets(),
                             [s = peer_server_.get()](peer::PeerRequest r) { s->Serve(std::move(r)); });
    if (!port.ok()) {
        return port.status();
    }
    std::string transports = "tcp";
    if (peer::verbs::ConnectionManager* cm = NodeConnectionManager()) {
        // RDMA on the same port, through the node's connection manager.
        absl::Status s = cm->Listen(config_.peer_listen.address, *port,
                                    [loop, secrets = peer_server_->Secrets(), srv = peer_server_.get()](
                                        peer::verbs::Connected c) {
                                        loop->ServeRc(c.device, std::move(c.qp), secrets,
                                                      [srv](peer::PeerRequest r) { srv->Serve(std::move(r)); });
                                    });
        if (s.ok()) {
            rdma_port_ = *port;
            transports = "tcp+rdma";
        } else {
            Log(LogLevel::kWarning, "peers: RDMA cannot listen; TCP only", "error", std::string(s.message()));
        }
    }
    Log(LogLevel::kInfo, "serving peers", "address", config_.peer_listen.address, "port", *port, "transport",
        transports, "keys", config_.peer_keys.size());
    return absl::OkStatus();
}

absl::Status Server::Impl::Open() {
    SetLogLevel(config_.log_level);
    ZH_RETURN_IF_ERROR(OpenBackends());
    ZH_RETURN_IF_ERROR(Listen());
    ZH_ASSIGN_OR_RETURN(shmring::EventFd bell, shmring::EventFd::Create());
    stop_bell_.emplace(std::move(bell));
    Poller::Kind kind = config_.wait_with == "io_uring" ? Poller::Kind::kUring
                        : config_.wait_with == "epoll"  ? Poller::Kind::kEpoll
                                                        : Poller::Kind::kAuto;
    for (uint32_t i = 0; i < config_.workers; ++i) {
        auto w = std::make_unique<Worker>(this, i);
        ZH_RETURN_IF_ERROR(w->Start(kind));
        workers_.push_back(std::move(w));
    }
    if (config_.peer_listen.enabled) {
        ZH_RETURN_IF_ERROR(ServePeers());  // (before the metrics endpoint, which reads it)
    }
    if (config_.metrics_port != 0) {
        ZH_RETURN_IF_ERROR(metrics_endpoint_.Start(config_.metrics_port, config_.metrics_port_auto, [this] {
            DaemonStatus st = stats();
            std::vector<const Metrics*> workers;
            for (const auto& w : workers_) {
                workers.push_back(&w->metrics());
            }
            std::string out =
                Metrics::Render(workers, {st.sessions_open, st.sessions_total, st.sessions_refused}, labels_) +
                volumes_->RenderMetrics();
            for (const auto& b : backends_) {
                out += b->RenderMetrics();  // (untyped: several backends may give one name)
            }
            return out + PeerTransportMetrics();
        }));
    }
    acceptor_ = std::thread([this] { AcceptLoop(); });
    Log(LogLevel::kInfo, "zerohopd listening", "socket", config_.listen, "workers", config_.workers, "waiting_with",
        workers_.front()->poller_name(), "containers", mounts_.size(), "metrics",
        metrics_endpoint_.port() != 0 ? absl::StrFormat("127.0.0.1:%d", metrics_endpoint_.port()) : "off");
    return absl::OkStatus();
}

void Server::Impl::Stop() {
    if (stopped_.exchange(true)) {
        return;
    }
    if (stop_bell_) {
        stop_bell_->Signal();
    }
    if (acceptor_.joinable()) {
        acceptor_.join();
    }
    while (handshakes_.load() > 0) {  // each ends within its 2 s socket timeout
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    metrics_endpoint_.Stop();
    if (rdma_port_ != 0) {
        NodeConnectionManager()->StopListening(config_.peer_listen.address, rdma_port_);
    }
    if (peer_server_) {
        peer_server_->Close();  // peers' requests from now on: Unavailable; the backends go below
    }
    for (auto& w : workers_) {
        w->Stop();  // answers what is in flight, then closes its sessions
    }
    if (listener_.valid()) {
        ::unlink(config_.listen.c_str());
    }
    // Closes the stores (everything acknowledged is in their logs). Their threads finish
    // what they hold first; answers still posted to the workers are dropped with them.
    backends_.clear();
    workers_.clear();
}

DaemonStatus Server::Impl::stats() const {
    DaemonStatus st;
    st.version = protocol::kProtocolVersion;
    st.workers = config_.workers;
    for (const auto& w : workers_) {
        st.sessions_open += w->open_sessions();
        st.requests += w->metrics().requests();
        st.request_errors += w->metrics().errors();
        st.bad_descriptors += w->metrics().bad_descriptors();
    }
    st.sessions_total = sessions_total_.load();
    st.sessions_refused = sessions_refused_.load();
    return st;
}

DaemonInfo Server::Impl::info() const {
    DaemonInfo out;
    out.version = ZEROHOP_VERSION;
    out.socket = config_.listen;
    if (metrics_endpoint_.port() != 0) {
        out.metrics = absl::StrFormat("127.0.0.1:%d", metrics_endpoint_.port());
    }
    return out;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const DaemonConfig& config) {
    auto impl = std::make_unique<Impl>(config);
    ZH_RETURN_IF_ERROR(impl->Open());
    return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }
void Server::Stop() { impl_->Stop(); }
DaemonStatus Server::stats() const { return impl_->stats(); }
const std::string& Server::socket_path() const { return impl_->socket_path(); }

}  // namespace zerohop

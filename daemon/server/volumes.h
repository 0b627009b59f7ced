#pragma once
// Volume sockets: sessions scoped to one part of the namespace, for pods.
//
// An admin key (the CSI node plugin's) publishes a volume: zerohopd checks the volume's own
// access key once, then listens on <runtime_dir>/volumes/<scope>/zerohop.sock. The
// publisher bind-mounts that directory into a pod. A session accepted there needs no key:
// it sees one container, whose root is the volume's root, read-only or read-write as
// published; every path it sends is mapped below that root, and it can name nothing else.
// Scopes are recorded in <runtime_dir>/scopes/ (without the key, with its fingerprint), so
// a restarted zerohopd listens on the same sockets again and pods reconnect by themselves.
//
//   VolumeSockets volumes(config.runtime_dir);
//   volumes.Restore(keys);                                   // at start
//   auto published = volumes.Publish(req, credential_of_its_key);
//   for (auto& [fd, scope] : volumes.Listeners()) ...        // the acceptor's
//   volumes.Unpublish(id);

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "shmring/doorbell.h"
#include "shmring/unique_fd.h"
#include "zerohop/operations.h"

namespace zerohop {

struct Scope {
    std::string id;
    Path root;  // /<container>[/<sub-path>]
    bool read_only = false;
    std::string pod;                 // "namespace/name" (or "") for logs and metrics
    PublishVolumeRequest published;  // as published, the key replaced by its fingerprint
    CredentialConfig credential;     // what its sessions may do: {container: r | rw}
    mutable std::atomic<int> sessions{0};
    // Set when it is unpublished: a session the handshake handed to a worker just before
    // is closed as the worker adopts it (the worker's sweep of its sessions ran earlier).
    mutable std::atomic<bool> unpublished{false};

    // The path a scoped session's `path` stands for: /<container>/<rest> maps to
    // <root>/<rest>. NotFound for another container.
    absl::StatusOr<Path> Map(const Path& path) const;
    // `text` (an error message) with the root's paths written as the session names them.
    std::string Unmap(std::string_view text) const;
};

class VolumeSockets {
public:
    explicit VolumeSockets(std::string runtime_dir);
    ~VolumeSockets();

    // The scopes a previous zerohopd recorded, listening again. `key_of` finds the
    // credential whose key has a fingerprint (nullptr: gone, and the scope is dropped).
    void Restore(const std::function<const CredentialConfig*(const std::string& fingerprint)>& key_of);

    // Listens for `req`, whose key the caller has checked to grant its root's container (rw
    // unless read-only). The same scope with the same arguments again: the same socket.
    absl::StatusOr<PublishedVolume> Publish(const PublishVolumeRequest& req);
    // Stops listening and forgets the scope; true if there was one. Its sessions are the
    // caller's to close.
    bool Unpublish(const std::string& id);

    // For the acceptor: every volume's listening descriptor and scope, and a descriptor that
    // becomes readable when the set changes.
    std::vector<std::pair<int, std::shared_ptr<const Scope>>> Listeners() const;
    int changed_fd() const { return changed_.fd(); }
    void DrainChanged() { changed_.Drain(); }

    // Prometheus lines: sessions open per volume and pod.
    std::string RenderMetrics() const;

    // Whether `id` may name a scope: 1..64 of [A-Za-z0-9._-].
    static absl::Status ValidateId(const std::string& id);

private:
    struct Listening {
        std::shared_ptr<const Scope> scope;
        shmring::UniqueFd fd;
    };
    absl::StatusOr<Listening> Listen(std::shared_ptr<const Scope> scope);
    std::string Directory(const std::string& id) const { return runtime_dir_ + "/volumes/" + id; }
    std::string RecordPath(const std::string& id) const { return runtime_dir_ + "/scopes/" + id; }

    std::string runtime_dir_;
    shmring::EventFd changed_;
    mutable absl::Mutex mu_;
    std::map<std::string, Listening> scopes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerohop

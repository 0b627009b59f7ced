#pragma once
// zerohop-csi's ways to zerohopd, all through libzerohop:
//  - an admin session (the node plugin's key) that publishes and unpublishes volume sockets;
//  - short sessions with a volume's own key (from the CSI secret), for what that key may do:
//    make a volume's directory, remove it;
//  - a session on a published volume's socket, for its usage.
//
//   DaemonLink daemon(socket, admin_key);
//   ZH_RETURN_IF_ERROR(daemon.Probe());
//   ZH_ASSIGN_OR_RETURN(PublishedVolume v, daemon.Publish(req));

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "zerohop/client.h"

namespace zerohop::csi {

struct Usage {
    int64_t bytes = 0;     // object bytes below the root
    int64_t entries = 0;   // files, directories and other entries below it
    bool complete = true;  // false: the walk stopped at its limit (at least this much)
};

class DaemonLink {
public:
    // `admin_key` may be empty for a controller, which only uses volumes' own keys.
    DaemonLink(std::string socket, std::string admin_key)
        : socket_(std::move(socket)), admin_key_(std::move(admin_key)) {}

    const std::string& socket() const { return socket_; }

    // zerohopd answers (through the admin session, or any key for a controller).
    absl::Status Probe();
    absl::StatusOr<PublishedVolume> Publish(const PublishVolumeRequest& req);
    absl::Status Unpublish(const std::string& scope_id);

    // With a volume's own key.
    absl::Status MakeDirectories(const std::string& key, const Path& root);
    // Stat of `root` (NotFound if it is not there).
    absl::StatusOr<ObjectInfo> Stat(const std::string& key, const Path& root);
    // Removes `root` and everything below it (gone already: OK).
    absl::Status RemoveTree(const std::string& key, const Path& root);

    // What is stored below the volume root, through the volume's own socket (its session
    // sees the root as /<container>). Walks at most `max_entries` entries.
    static absl::StatusOr<Usage> UsageThrough(const std::string& volume_socket, const std::string& container,
                                              int64_t max_entries = 200000);

private:
    absl::StatusOr<std::shared_ptr<Client>> Admin();
    absl::StatusOr<std::unique_ptr<Client>> Keyed(const std::string& key) const;

    std::string socket_;
    std::string admin_key_;
    absl::Mutex mu_;
    std::shared_ptr<Client> admin_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerohop::csi

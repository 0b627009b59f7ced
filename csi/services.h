#pragma once
// zerohop-csi's three CSI services (csi/proto/csi.proto), each over zerohopd through a
// DaemonLink:
//   Identity    identity.cc    name, capabilities, Probe (ready while zerohopd answers)
//   Node        node.cc        publish and unpublish at a pod's target: the FUSE view, the
//                              scoped socket, or both; usage and condition; survives restarts
//   Controller  controller.cc  CreateVolume / DeleteVolume: a directory in a container
//
// Every handler checks its arguments before it touches anything, answers with the codes
// the CSI spec names, and never logs a secret.

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "csi.grpc.pb.h"  // generated from proto/csi.proto
#include "daemon_link.h"
#include "fuse_processes.h"
#include "node_state.h"

namespace zerohop::csi {

// The plugin's name: domain notation, at most 63 characters, a letter at each end.
inline constexpr char kPluginName[] = "csi.zerohop.dev";

// absl::Status and grpc::Status share their codes.
grpc::Status ToGrpc(const absl::Status& s);

class IdentityService final : public ::csi::v1::Identity::Service {
public:
    IdentityService(DaemonLink* daemon, bool controller) : daemon_(daemon), controller_(controller) {}

    grpc::Status GetPluginInfo(grpc::ServerContext*, const ::csi::v1::GetPluginInfoRequest*,
                               ::csi::v1::GetPluginInfoResponse* out) override;
    grpc::Status GetPluginCapabilities(grpc::ServerContext*, const ::csi::v1::GetPluginCapabilitiesRequest*,
                                       ::csi::v1::GetPluginCapabilitiesResponse* out) override;
    grpc::Status Probe(grpc::ServerContext*, const ::csi::v1::ProbeRequest*, ::csi::v1::ProbeResponse* out) override;

private:
    DaemonLink* daemon_;
    bool controller_;
};

struct NodeOptions {
    std::string node_id;
    std::string state_dir;     // node-state.json and the FUSE views' mount points
    std::string zerohop_fuse;  // the binary
    int takeover_secs = 60;
    // Kubelet's root directory: targets are below it (kubelet publishes into
    // <kubelet_dir>/pods/<uid>/volumes/...), never elsewhere on the node.
    std::string kubelet_dir = "/var/lib/kubelet";
};

class NodeService final : public ::csi::v1::Node::Service {
public:
    NodeService(NodeOptions options, DaemonLink* daemon);
    ~NodeService() override;  // stops supervising; leaves every mount as it is

    // Reads the state a previous plugin left, restarts FUSE views whose zerohop-fuse is
    // gone, and starts supervising them. A damaged state file is an error.
    absl::Status Recover();

    grpc::Status NodePublishVolume(grpc::ServerContext*, const ::csi::v1::NodePublishVolumeRequest* req,
                                   ::csi::v1::NodePublishVolumeResponse*) override;
    grpc::Status NodeUnpublishVolume(grpc::ServerContext*, const ::csi::v1::NodeUnpublishVolumeRequest* req,
                                     ::csi::v1::NodeUnpublishVolumeResponse*) override;
    grpc::Status NodeGetVolumeStats(grpc::ServerContext*, const ::csi::v1::NodeGetVolumeStatsRequest* req,
                                    ::csi::v1::NodeGetVolumeStatsResponse* out) override;
    grpc::Status NodeGetCapabilities(grpc::ServerContext*, const ::csi::v1::NodeGetCapabilitiesRequest*,
                                     ::csi::v1::NodeGetCapabilitiesResponse* out) override;
    grpc::Status NodeGetInfo(grpc::ServerContext*, const ::csi::v1::NodeGetInfoRequest*,
                             ::csi::v1::NodeGetInfoResponse* out) override;

private:
    struct Publication;  // one publish's arguments, checked (node.cc)

    absl::Status Publish(const Publication& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    absl::Status Unpublish(const std::string& volume_id, const std::string& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    // The FUSE view of `p` (started if it is the first user); its id.
    absl::StatusOr<std::string> AcquireView(const Publication& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    // `target` no longer uses view `id`; the last user stops it.
    absl::Status ReleaseView(const std::string& id, const std::string& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    // Starts view `id` again if its zerohop-fuse is gone; rebinds its targets if its mount
    // had to be made afresh.
    void Revive(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    void ReviveAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    void Supervise();

    NodeOptions options_;
    DaemonLink* daemon_;
    FuseProcesses fuse_;
    absl::Mutex mu_;
    NodeState state_ ABSL_GUARDED_BY(mu_);
    bool stopping_ ABSL_GUARDED_BY(mu_) = false;
    std::thread supervisor_;
};

class ControllerService final : public ::csi::v1::Controller::Service {
public:
    explicit ControllerService(DaemonLink* daemon) : daemon_(daemon) {}

    grpc::Status CreateVolume(grpc::ServerContext*, const ::csi::v1::CreateVolumeRequest* req,
                              ::csi::v1::CreateVolumeResponse* out) override;
    grpc::Status DeleteVolume(grpc::ServerContext*, const ::csi::v1::DeleteVolumeRequest* req,
                              ::csi::v1::DeleteVolumeResponse*) override;
    grpc::Status ValidateVolumeCapabilities(grpc::ServerContext*,
                                            const ::csi::v1::ValidateVolumeCapabilitiesRequest* req,
                                            ::csi::v1::ValidateVolumeCapabilitiesResponse* out) override;
    grpc::Status ControllerGetCapabilities(grpc::ServerContext*, const ::csi::v1::ControllerGetCapabilitiesRequest*,
                                           ::csi::v1::ControllerGetCapabilitiesResponse* out) override;

private:
    DaemonLink* daemon_;
};

// Shared by Node and Controller: a capability zerohop can serve (a mount of any access
// mode: file systems and sockets are shared by nature); INVALID_ARGUMENT otherwise.
absl::Status CheckCapability(const ::csi::v1::VolumeCapability& cap);
// The CSI secret's accessKey; INVALID_ARGUMENT (naming the secret, never its value) if absent.
absl::StatusOr<std::string> AccessKeyOf(const google::protobuf::Map<std::string, std::string>& secrets,
                                        std::string_view rpc);
Context ToContext(const google::protobuf::Map<std::string, std::string>& map);

}  // namespace zerohop::csi

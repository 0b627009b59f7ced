// libFuzzer target: CSI requests, as a container orchestrator (kubelet, the external
// provisioner) sends them, at zerohop-csi's three services.
//
// Each input is one call: its first byte picks which of the twelve RPCs, the rest is the
// request message in protobuf wire form (what gRPC would hand the service; bytes that do not
// parse as the message are what gRPC refuses before us). The services are the real ones over
// a real in-process zerohopd (an admin key for the node, key `fuzz` on container `c`), and
// the node publishes for real: FUSE views (zerohop-fuse processes), scoped sockets, bind
// mounts. As root it runs in a mount namespace of its own, so nothing it binds reaches the
// machine; targets are below its own kubelet directory (anything else is refused by the
// plugin itself). Whatever a call returns, a publish that succeeded must unpublish again
// and leave nothing mounted at its target.
//
// ZH_CSI_WRITE_SEEDS=DIR writes a seed corpus (one well-formed request per RPC, and
// publishes of each kind) to DIR and exits.

#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "csi/mounts.h"
#include "csi/services.h"
#include "fuzz_daemon.h"

namespace {

namespace v1 = ::csi::v1;
using zerohop::csi::ControllerService;
using zerohop::csi::DaemonLink;
using zerohop::csi::IdentityService;
using zerohop::csi::NodeService;

// Fixed, so that the seeds' target paths name it.
constexpr char kSandbox[] = "/tmp/zh-fuzz-csi";
const std::string kPods = std::string(kSandbox) + "/kubelet/pods";
const std::string kTargetParent = kPods + "/0b5e/volumes/kubernetes.io~csi/pvc-1";

DaemonLink* g_link = nullptr;
IdentityService* g_identity = nullptr;
NodeService* g_node = nullptr;
ControllerService* g_controller = nullptr;

enum Rpc : uint8_t {
    kGetPluginInfo,
    kGetPluginCapabilities,
    kProbe,
    kNodePublish,
    kNodeUnpublish,
    kNodeGetVolumeStats,
    kNodeGetCapabilities,
    kNodeGetInfo,
    kCreateVolume,
    kDeleteVolume,
    kValidateVolumeCapabilities,
    kControllerGetCapabilities,
    kRpcs
};

template <typename Req, typename Resp, typename Service>
grpc::Status Call(Service* service, grpc::Status (Service::*method)(grpc::ServerContext*, const Req*, Resp*),
                  const Req& req) {
    grpc::ServerContext ctx;
    Resp resp;
    return (service->*method)(&ctx, &req, &resp);
}

template <typename Req, typename Resp, typename Service>
void Parsed(Service* service, grpc::Status (Service::*method)(grpc::ServerContext*, const Req*, Resp*),
            const uint8_t* data, size_t size) {
    Req req;
    if (req.ParseFromArray(data, static_cast<int>(size))) {
        (void)Call(service, method, req);
    }
}

void Publish(const uint8_t* data, size_t size) {
    v1::NodePublishVolumeRequest req;
    if (!req.ParseFromArray(data, static_cast<int>(size))) {
        return;
    }
    if (!Call(g_node, &NodeService::NodePublishVolume, req).ok()) {
        return;
    }
    v1::NodeUnpublishVolumeRequest un;
    un.set_volume_id(req.volume_id());
    un.set_target_path(req.target_path());
    grpc::Status s = Call(g_node, &NodeService::NodeUnpublishVolume, un);
    if (!s.ok()) {
        std::fprintf(stderr, "a published volume does not unpublish: %s\n", s.error_message().c_str());
        abort();
    }
    std::string target = req.target_path();
    while (target.size() > 1 && target.back() == '/') {
        target.pop_back();
    }
    if (zerohop::csi::IsMountPoint(target)) {
        std::fprintf(stderr, "unpublished, yet something is mounted at %s\n", target.c_str());
        abort();
    }
}

void WriteSeed(const std::string& dir, const std::string& name, Rpc rpc, const google::protobuf::Message& m) {
    std::ofstream(dir + "/" + name, std::ios::binary) << static_cast<char>(rpc) << m.SerializeAsString();
}

void WriteSeeds(const std::string& dir) {
    std::filesystem::create_directories(dir);
    WriteSeed(dir, "plugin-info", kGetPluginInfo, v1::GetPluginInfoRequest());
    WriteSeed(dir, "plugin-capabilities", kGetPluginCapabilities, v1::GetPluginCapabilitiesRequest());
    WriteSeed(dir, "probe", kProbe, v1::ProbeRequest());
    WriteSeed(dir, "node-capabilities", kNodeGetCapabilities, v1::NodeGetCapabilitiesRequest());
    WriteSeed(dir, "node-info", kNodeGetInfo, v1::NodeGetInfoRequest());
    WriteSeed(dir, "controller-capabilities", kControllerGetCapabilities, v1::ControllerGetCapabilitiesRequest());
    v1::VolumeCapability cap;
    cap.mutable_mount();
    cap.mutable_access_mode()->set_mode(v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
    int i = 0;
    for (const char* publish : {"fuse", "socket", "fuse,socket"}) {
        v1::NodePublishVolumeRequest p;
        p.set_volume_id("c/vols/a");
        p.set_target_path(kTargetParent + "/mount");
        *p.mutable_volume_capability() = cap;
        (*p.mutable_secrets())["accessKey"] = "fuzz";
        (*p.mutable_volume_context())["publish"] = publish;
        (*p.mutable_volume_context())["createSubPath"] = "true";
        (*p.mutable_volume_context())["csi.storage.k8s.io/pod.name"] = "fn";
        WriteSeed(dir, "publish-" + std::to_string(i++), kNodePublish, p);
    }
    v1::NodePublishVolumeRequest inline_volume;
    inline_volume.set_volume_id("csi-0b5e");
    inline_volume.set_target_path(kTargetParent + "/mount");
    *inline_volume.mutable_volume_capability() = cap;
    (*inline_volume.mutable_secrets())["accessKey"] = "fuzz";
    (*inline_volume.mutable_volume_context())["csi.storage.k8s.io/ephemeral"] = "true";
    (*inline_volume.mutable_volume_context())["container"] = "c";
    (*inline_volume.mutable_volume_context())["subPath"] = "inline/x";
    (*inline_volume.mutable_volume_context())["createSubPath"] = "true";
    WriteSeed(dir, "publish-inline", kNodePublish, inline_volume);
    v1::NodeUnpublishVolumeRequest un;
    un.set_volume_id("c/vols/a");
    un.set_target_path(kTargetParent + "/mount");
    WriteSeed(dir, "unpublish", kNodeUnpublish, un);
    v1::NodeGetVolumeStatsRequest stats;
    stats.set_volume_id("c/vols/a");
    stats.set_volume_path(kTargetParent + "/mount");
    WriteSeed(dir, "stats", kNodeGetVolumeStats, stats);
    v1::CreateVolumeRequest create;
    create.set_name("pvc-1");
    *create.add_volume_capabilities() = cap;
    (*create.mutable_parameters())["container"] = "c";
    (*create.mutable_parameters())["parentPath"] = "vols";
    (*create.mutable_secrets())["accessKey"] = "fuzz";
    WriteSeed(dir, "create", kCreateVolume, create);
    v1::DeleteVolumeRequest del;
    del.set_volume_id("c/vols/pvc-1");
    (*del.mutable_secrets())["accessKey"] = "fuzz";
    WriteSeed(dir, "delete", kDeleteVolume, del);
    v1::ValidateVolumeCapabilitiesRequest validate;
    validate.set_volume_id("c/vols/a");
    *validate.add_volume_capabilities() = cap;
    (*validate.mutable_secrets())["accessKey"] = "fuzz";
    WriteSeed(dir, "validate", kValidateVolumeCapabilities, validate);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* seeds = getenv("ZH_CSI_WRITE_SEEDS")) {
        WriteSeeds(seeds);
        exit(0);
    }
    if (geteuid() == 0) {
        // Binds made here stay here, and go with the process.
        if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            std::perror("a mount namespace of its own");
            abort();
        }
    }
    std::error_code ec;
    std::filesystem::remove_all(kSandbox, ec);
    std::filesystem::create_directories(kTargetParent);
    std::string socket = zerohop::fuzz::StartDaemon("", "{key: admin, admin: true}");
    g_link = new DaemonLink(socket, "admin");
    const char* fuse = getenv("ZEROHOP_FUSE");
    zerohop::csi::NodeOptions node;
    node.node_id = "fuzz-node";
    node.state_dir = std::string(kSandbox) + "/state";
    node.zerohop_fuse = fuse != nullptr ? fuse : ZH_FUSE_BINARY;
    node.takeover_secs = 5;
    node.kubelet_dir = std::string(kSandbox) + "/kubelet";
    g_node = new NodeService(node, g_link);
    if (!g_node->Recover().ok()) {
        abort();
    }
    g_identity = new IdentityService(g_link, /*controller=*/true);
    g_controller = new ControllerService(g_link);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) {
        return 0;
    }
    const uint8_t* body = data + 1;
    size_t n = size - 1;
    switch (static_cast<Rpc>(data[0] % kRpcs)) {
        case kGetPluginInfo:
            Parsed(g_identity, &IdentityService::GetPluginInfo, body, n);
            break;
        case kGetPluginCapabilities:
            Parsed(g_identity, &IdentityService::GetPluginCapabilities, body, n);
            break;
        case kProbe:
            Parsed(g_identity, &IdentityService::Probe, body, n);
            break;
        case kNodePublish:
            Publish(body, n);
            break;
        case kNodeUnpublish:
            Parsed(g_node, &NodeService::NodeUnpublishVolume, body, n);
            break;
        case kNodeGetVolumeStats:
            Parsed(g_node, &NodeService::NodeGetVolumeStats, body, n);
            break;
        case kNodeGetCapabilities:
            Parsed(g_node, &NodeService::NodeGetCapabilities, body, n);
            break;
        case kNodeGetInfo:
            Parsed(g_node, &NodeService::NodeGetInfo, body, n);
            break;
        case kCreateVolume:
            Parsed(g_controller, &ControllerService::CreateVolume, body, n);
            break;
        case kDeleteVolume:
            Parsed(g_controller, &ControllerService::DeleteVolume, body, n);
            break;
        case kValidateVolumeCapabilities:
            Parsed(g_controller, &ControllerService::ValidateVolumeCapabilities, body, n);
            break;
        default:
            Parsed(g_controller, &ControllerService::ControllerGetCapabilities, body, n);
            break;
    }
    return 0;
}

// Node: publishes a volume at a pod's target path, and takes it away again.
//
// What a target holds (volume attribute `publish`):
//   fuse          the FUSE view, bound at the target: one zerohop-fuse per volume, key and
//                 mode on the node (a "view"), shared by every target that uses it
//   socket        zerohopd's directory for a scope of this target's own (its socket needs
//                 no key), bound at the target: the pod connects to <target>/zerohop.sock
//   fuse,socket   that directory, with the FUSE view bound inside it at fs/
// Every step of a publish is undone if a later one fails: an inline volume gets no retry.

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/fingerprint.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "mounts.h"
#include "services.h"

namespace zerohop::csi {

namespace {

using ::csi::v1::VolumeCapability;

// Steps to take back, last first, unless the whole publish succeeds.
class Undo {
public:
    ~Undo() {
        for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
            (*it)();
        }
    }
    void Add(std::function<void()> step) { steps_.push_back(std::move(step)); }
    void Commit() { steps_.clear(); }

private:
    std::vector<std::function<void()>> steps_;
};

// A target path as recorded: without trailing slashes.
std::string WithoutTrailingSlash(std::string path) {
    while (path.size() > 1 && path.back() == '/') {
        path.pop_back();
    }
    return path;
}

// A target must be below kubelet's directory, named without "." or ".." or empty
// components: a request naming /etc, or climbing out of kubelet's tree, binds nothing.
absl::Status CheckTarget(const std::string& target, const std::string& kubelet_dir) {
    std::string root = WithoutTrailingSlash(kubelet_dir) + "/";
    if (target.size() <= root.size() || target.compare(0, root.size(), root) != 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("NodePublishVolume: target_path %s is not below kubelet's directory %s (--kubelet-dir)",
                            target, kubelet_dir));
    }
    for (size_t at = 1; at <= target.size();) {
        size_t end = std::min(target.find('/', at), target.size());
        std::string_view c = std::string_view(target).substr(at, end - at);
        at = end + 1;
        if (c.empty() || c == "." || c == "..") {
            return absl::InvalidArgumentError(absl::StrFormat(
                "NodePublishVolume: target_path %s has an empty, \".\" or \"..\" component", target));
        }
    }
    return absl::OkStatus();
}

bool ReadOnlyMode(const VolumeCapability& cap) {
    using Mode = VolumeCapability::AccessMode;
    Mode::Mode m = cap.access_mode().mode();
    return m == Mode::SINGLE_NODE_READER_ONLY || m == Mode::MULTI_NODE_READER_ONLY;
}

void Warn(std::string_view what, const absl::Status& s, std::string_view key, std::string_view value) {
    if (!s.ok()) {
        Log(LogLevel::kWarning, what, "error", std::string(s.message()), key, value);
    }
}

}  // namespace

struct NodeService::Publication {
    std::string volume_id;
    std::string target;
    VolumeSpec spec;
    bool read_only = false;
    bool no_exec = false;
    std::string key;
    PodInfo pod;
    std::string digest;  // of everything above: what "the same arguments" means
};

NodeService::NodeService(NodeOptions options, DaemonLink* daemon)
    : options_(std::move(options)),
      daemon_(daemon),
      fuse_({.zerohop_fuse = options_.zerohop_fuse,
             .state_dir = options_.state_dir,
             .takeover_secs = options_.takeover_secs}),
      state_(options_.state_dir) {}

NodeService::~NodeService() {
    {
        absl::MutexLock lock(&mu_);
        stopping_ = true;
    }
    if (supervisor_.joinable()) {
        supervisor_.join();
    }
}

absl::Status NodeService::Recover() {
    {
        absl::MutexLock lock(&mu_);
        if (::mkdir(options_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
            return absl::FailedPreconditionError(
                absl::StrFormat("--state-dir %s: %s", options_.state_dir, strerror(errno)));
        }
        ZH_RETURN_IF_ERROR(state_.Load());
        Log(LogLevel::kInfo, "node state read", "targets", state_.targets.size(), "views", state_.instances.size());
        for (const auto& [target, record] : state_.targets) {
            if (!IsMountPoint(target)) {
                Log(LogLevel::kWarning,
                    "a published target is not mounted (kubelet will publish it again or "
                    "unpublish it)",
                    "target", target, "volume", record.volume_id);
            }
        }
        ReviveAll();
    }
    supervisor_ = std::thread([this] { Supervise(); });
    return absl::OkStatus();
}

void NodeService::Supervise() {
    absl::MutexLock lock(&mu_);
    while (!stopping_) {
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(200));
        if (stopping_) {
            break;
        }
        ReviveAll();
    }
}

void NodeService::ReviveAll() {
    for (const auto& [id, view] : state_.instances) {
        Revive(id);
    }
}

void NodeService::Revive(const std::string& id) {
    InstanceRecord& view = state_.instances.at(id);
    if (view.targets.empty() || fuse_.Serving(view)) {
        return;  // not wanted (being taken down), or alive
    }
    // Held: its successor takes the mount over and nobody notices. Not held (the whole
    // container restarted, say): the mount is dead and is made afresh.
    bool held = IsMountPoint(view.mountpoint) && fuse_.Held(id);
    bool fresh = !held;
    Log(LogLevel::kWarning, "zerohop-fuse of a view is gone: starting it again", "view", id, "pid", view.pid, "mount",
        held ? "held" : "dead or gone");
    for (int i = 0; !held && i < 8 && IsMountPoint(view.mountpoint); ++i) {
        Warn("unmount a dead view", Unmount(view.mountpoint), "view", id);
    }
    if (absl::Status s = fuse_.Start(id, view); !s.ok()) {
        Log(LogLevel::kError, "a view could not be started again (retrying)", "view", id, "error",
            std::string(s.message()));
        view.pid = -1;  // still wanted: the supervisor tries again
        return;
    }
    if (fresh) {
        // A new mount: the targets' binds still show the old, dead one.
        for (const std::string& target : view.targets) {
            const TargetRecord& t = state_.targets.at(target);
            std::string at = t.spec.socket ? t.scope_dir + "/fs" : target;
            Warn("unmount", Unmount(at), "target", at);
            Warn("bind the view again", BindMount(view.mountpoint, at, {.read_only = t.read_only}), "target", at);
            if (t.spec.socket) {
                Warn("unmount", Unmount(target), "target", target);
                Warn("bind again", BindMount(t.scope_dir, target, {.recursive = true}), "target", target);
            }
        }
    }
    Warn("save the node state", state_.Save(), "view", id);
}

// ---- publish ----------------------------------------------------------------------------

grpc::Status NodeService::NodePublishVolume(grpc::ServerContext*, const ::csi::v1::NodePublishVolumeRequest* req,
                                            ::csi::v1::NodePublishVolumeResponse*) {
    auto started = std::chrono::steady_clock::now();
    auto check = [&]() -> absl::StatusOr<Publication> {
        if (req->volume_id().empty()) {
            return absl::InvalidArgumentError("NodePublishVolume: volume_id is missing");
        }
        if (req->target_path().empty() || req->target_path()[0] != '/') {
            return absl::InvalidArgumentError("NodePublishVolume: target_path must be an absolute path");
        }
        if (!req->has_volume_capability()) {
            return absl::InvalidArgumentError("NodePublishVolume: volume_capability is missing");
        }
        ZH_RETURN_IF_ERROR(CheckCapability(req->volume_capability()));
        Publication p;
        p.volume_id = req->volume_id();
        p.target = WithoutTrailingSlash(req->target_path());
        ZH_RETURN_IF_ERROR(CheckTarget(p.target, options_.kubelet_dir));
        Context context = ToContext(req->volume_context());
        ZH_ASSIGN_OR_RETURN(p.spec, VolumeFromRequest(p.volume_id, context));
        p.pod = PodFromContext(context);
        p.read_only = req->readonly() || ReadOnlyMode(req->volume_capability());
        for (const std::string& flag : req->volume_capability().mount().mount_flags()) {
            p.read_only |= flag == "ro";
            p.no_exec |= flag == "noexec";
        }
        ZH_ASSIGN_OR_RETURN(p.key, AccessKeyOf(req->secrets(), "NodePublishVolume"));
        p.digest =
            Fingerprint(absl::StrCat(p.volume_id, "\n", VolumeHandle(p.spec), "\n", p.spec.PublishText(), "\n",
                                p.spec.create_sub_path, p.spec.ephemeral, p.read_only, p.no_exec, "\n", Fingerprint(p.key),
                                "\n", p.pod.name_space, "/", p.pod.name, "/", p.pod.uid, "/", p.pod.service_account));
        return p;
    };
    auto p = check();
    absl::Status s = p.status();
    if (p.ok()) {
        absl::MutexLock lock(&mu_);
        s = Publish(*p);
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarning, "NodePublishVolume", "volume", req->volume_id(), "target",
        req->target_path(), "publish", p.ok() ? p->spec.PublishText() : "", "read_only",
        p.ok() && p->read_only ? "true" : "false", "pod",
        p.ok() ? absl::StrCat(p->pod.name_space, "/", p->pod.name) : "", "code", absl::StatusCodeToString(s.code()),
        "error", std::string(s.message()), "ms", ms);
    return ToGrpc(s);
}

absl::Status NodeService::Publish(const Publication& p) {
    if (auto it = state_.targets.find(p.target); it != state_.targets.end()) {
        if (it->second.digest != p.digest) {
            return absl::AlreadyExistsError(absl::StrFormat("%s already holds volume %s published with other arguments",
                                                            p.target, it->second.volume_id));
        }
        if (IsMountPoint(p.target)) {
            return absl::OkStatus();  // the same publish again
        }
        // Recorded but not mounted (the node restarted): take the rest down and publish afresh.
        ZH_RETURN_IF_ERROR(Unpublish(p.volume_id, p.target));
    }
    struct stat st;
    bool exists = ::stat(p.target.c_str(), &st) == 0;
    if (exists && !S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError(absl::StrFormat("%s exists and is not a directory", p.target));
    }
    if (exists && IsMountPoint(p.target)) {
        return absl::AlreadyExistsError(
            absl::StrFormat("something this plugin did not publish is mounted at %s", p.target));
    }
    Undo undo;
    if (p.spec.create_sub_path) {
        ZH_RETURN_IF_ERROR(daemon_->MakeDirectories(p.key, p.spec.Root()));
    }
    TargetRecord record;
    record.volume_id = p.volume_id;
    record.digest = p.digest;
    record.spec = p.spec;
    record.read_only = p.read_only;
    record.pod = p.pod;
    std::string view_mount;
    if (p.spec.fuse) {
        ZH_ASSIGN_OR_RETURN(record.instance, AcquireView(p));
        view_mount = state_.instances.at(record.instance).mountpoint;
        undo.Add([this, id = record.instance, target = p.target] {
            Warn("release a view", ReleaseView(id, target), "view", id);
        });
    }
    if (p.spec.socket) {
        PublishVolumeRequest scope;
        scope.scope_id = "t-" + Fingerprint(p.target);
        scope.root = p.spec.Root();
        scope.read_only = p.read_only;
        scope.access_key = p.key;
        scope.pod_namespace = p.pod.name_space;
        scope.pod_name = p.pod.name;
        scope.pod_uid = p.pod.uid;
        scope.service_account = p.pod.service_account;
        ZH_ASSIGN_OR_RETURN(PublishedVolume published, daemon_->Publish(scope));
        record.scope_id = scope.scope_id;
        record.scope_dir = published.directory;
        undo.Add([this, id = scope.scope_id] { Warn("unpublish a scope", daemon_->Unpublish(id), "scope", id); });
    }
    if (!exists) {
        if (::mkdir(p.target.c_str(), 0750) != 0) {
            return errno == ENOENT
                       ? absl::FailedPreconditionError(absl::StrFormat("the parent of %s does not exist", p.target))
                       : absl::InternalError(absl::StrFormat("mkdir %s: %s", p.target, strerror(errno)));
        }
        record.created_target = true;
        undo.Add([target = p.target] { ::rmdir(target.c_str()); });
    }
    if (p.spec.socket && p.spec.fuse) {
        std::string fs = record.scope_dir + "/fs";
        if (::mkdir(fs.c_str(), 0755) != 0 && errno != EEXIST) {
            return absl::InternalError(absl::StrFormat("mkdir %s: %s", fs, strerror(errno)));
        }
        undo.Add([fs] { ::rmdir(fs.c_str()); });
        ZH_RETURN_IF_ERROR(BindMount(view_mount, fs, {.read_only = p.read_only, .no_exec = p.no_exec}));
        undo.Add([fs] { Warn("unmount", Unmount(fs), "at", fs); });
        ZH_RETURN_IF_ERROR(BindMount(record.scope_dir, p.target, {.recursive = true, .no_exec = p.no_exec}));
    } else if (p.spec.socket) {
        ZH_RETURN_IF_ERROR(BindMount(record.scope_dir, p.target, {.no_exec = true}));
    } else {
        ZH_RETURN_IF_ERROR(BindMount(view_mount, p.target, {.read_only = p.read_only, .no_exec = p.no_exec}));
    }
    undo.Add([target = p.target] { Warn("unmount", Unmount(target), "target", target); });
    state_.targets[p.target] = record;
    if (absl::Status s = state_.Save(); !s.ok()) {
        state_.targets.erase(p.target);
        return s;
    }
    undo.Commit();
    return absl::OkStatus();
}

absl::StatusOr<std::string> NodeService::AcquireView(const Publication& p) {
    std::string root = p.spec.Root().str();
    std::string id = "f-" + Fingerprint(absl::StrCat(p.volume_id, "\n", root, "\n", Fingerprint(p.key), "\n", p.read_only));
    // The view's own scope: its zerohop-fuse needs no key either. Publishing it again checks
    // the key again (it may have been revoked since the view started).
    PublishVolumeRequest scope;
    scope.scope_id = id;
    scope.root = p.spec.Root();
    scope.read_only = p.read_only;
    scope.access_key = p.key;
    ZH_ASSIGN_OR_RETURN(PublishedVolume published, daemon_->Publish(scope));
    auto [it, fresh] = state_.instances.try_emplace(id);
    InstanceRecord& view = it->second;
    if (fresh) {
        view.volume_id = p.volume_id;
        view.root = root;
        view.read_only = p.read_only;
        view.scope_id = id;
        view.socket = published.socket;
        view.mountpoint = fuse_.Directory(id) + "/mnt";
    }
    if (!fuse_.Serving(view)) {
        if (absl::Status s = fuse_.Start(id, view); !s.ok()) {
            if (view.targets.empty()) {
                state_.instances.erase(id);
                Warn("unpublish a scope", daemon_->Unpublish(id), "scope", id);
            }
            return s;
        }
    }
    view.targets.insert(p.target);
    return id;
}

// ---- unpublish --------------------------------------------------------------------------

grpc::Status NodeService::NodeUnpublishVolume(grpc::ServerContext*, const ::csi::v1::NodeUnpublishVolumeRequest* req,
                                              ::csi::v1::NodeUnpublishVolumeResponse*) {
    absl::Status s;
    if (req->volume_id().empty()) {
        s = absl::InvalidArgumentError("NodeUnpublishVolume: volume_id is missing");
    } else if (req->target_path().empty()) {
        s = absl::InvalidArgumentError("NodeUnpublishVolume: target_path is missing");
    } else {
        absl::MutexLock lock(&mu_);
        s = Unpublish(req->volume_id(), WithoutTrailingSlash(req->target_path()));
    }
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarning, "NodeUnpublishVolume", "volume", req->volume_id(), "target",
        req->target_path(), "code", absl::StatusCodeToString(s.code()), "error", std::string(s.message()));
    return ToGrpc(s);
}

absl::Status NodeService::Unpublish(const std::string& volume_id, const std::string& target) {
    auto it = state_.targets.find(target);
    if (it == state_.targets.end()) {
        return absl::OkStatus();  // not published here (any more): nothing to do
    }
    TargetRecord& t = it->second;
    if (t.volume_id != volume_id) {
        return absl::NotFoundError(absl::StrFormat("%s holds volume %s, not %s", target, t.volume_id, volume_id));
    }
    // Each step may already have been done by an earlier attempt that failed later on.
    ZH_RETURN_IF_ERROR(Unmount(target));
    if (!t.scope_id.empty()) {
        if (t.spec.fuse) {
            ZH_RETURN_IF_ERROR(Unmount(t.scope_dir + "/fs"));
            ::rmdir((t.scope_dir + "/fs").c_str());
        }
        ZH_RETURN_IF_ERROR(daemon_->Unpublish(t.scope_id));
    }
    if (!t.instance.empty()) {
        ZH_RETURN_IF_ERROR(ReleaseView(t.instance, target));
    }
    if (t.created_target && ::rmdir(target.c_str()) != 0 && errno != ENOENT) {
        Log(LogLevel::kWarning, "the target directory could not be removed", "target", target, "error",
            strerror(errno));
    }
    state_.targets.erase(it);
    return state_.Save();
}

absl::Status NodeService::ReleaseView(const std::string& id, const std::string& target) {
    auto it = state_.instances.find(id);
    if (it == state_.instances.end()) {
        return absl::OkStatus();
    }
    InstanceRecord& view = it->second;
    view.targets.erase(target);
    if (!view.targets.empty()) {
        return absl::OkStatus();
    }
    fuse_.Stop(id, view);  // the last user: its zerohop-fuse goes, then its scope
    absl::Status s = daemon_->Unpublish(view.scope_id);
    if (!s.ok()) {
        // Kept without targets (so never started again): a retry unpublishes its scope.
        Warn("save the node state", state_.Save(), "view", id);
        return s;
    }
    state_.instances.erase(it);
    return absl::OkStatus();
}

// ---- stats, capabilities, info ----------------------------------------------------------

grpc::Status NodeService::NodeGetVolumeStats(grpc::ServerContext*, const ::csi::v1::NodeGetVolumeStatsRequest* req,
                                             ::csi::v1::NodeGetVolumeStatsResponse* out) {
    if (req->volume_id().empty()) {
        return ToGrpc(absl::InvalidArgumentError("NodeGetVolumeStats: volume_id is missing"));
    }
    if (req->volume_path().empty()) {
        return ToGrpc(absl::InvalidArgumentError("NodeGetVolumeStats: volume_path is missing"));
    }
    std::string path = WithoutTrailingSlash(req->volume_path());
    std::string socket, container, problem;
    {
        absl::MutexLock lock(&mu_);
        auto it = state_.targets.find(path);
        if (it == state_.targets.end() || it->second.volume_id != req->volume_id()) {
            return ToGrpc(absl::NotFoundError(
                absl::StrFormat("volume %s is not published at %s", req->volume_id(), req->volume_path())));
        }
        const TargetRecord& t = it->second;
        container = t.spec.container;
        socket = t.scope_id.empty() ? state_.instances.at(t.instance).socket : t.scope_dir + "/zerohop.sock";
        if (!IsMountPoint(path)) {
            problem = "the volume is not mounted at its target";
        } else if (!t.instance.empty() && !fuse_.Serving(state_.instances.at(t.instance))) {
            problem = "the FUSE view's zerohop-fuse is not running (it is being started again)";
        }
    }
    if (problem.empty()) {
        if (absl::Status s = daemon_->Probe(); !s.ok()) {
            problem = absl::StrCat("zerohopd does not answer: ", s.message());
        }
    }
    if (problem.empty()) {
        auto usage = DaemonLink::UsageThrough(socket, container);
        if (!usage.ok()) {
            problem = absl::StrCat("the volume's usage could not be read: ", usage.status().message());
        } else {
            auto* bytes = out->add_usage();
            bytes->set_unit(::csi::v1::VolumeUsage::BYTES);
            bytes->set_used(usage->bytes);
            auto* inodes = out->add_usage();
            inodes->set_unit(::csi::v1::VolumeUsage::INODES);
            inodes->set_used(usage->entries);
        }
    }
    out->mutable_volume_condition()->set_abnormal(!problem.empty());
    out->mutable_volume_condition()->set_message(problem.empty() ? "volume is healthy" : problem);
    return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetCapabilities(grpc::ServerContext*, const ::csi::v1::NodeGetCapabilitiesRequest*,
                                              ::csi::v1::NodeGetCapabilitiesResponse* out) {
    using Rpc = ::csi::v1::NodeServiceCapability::RPC;
    for (auto type : {Rpc::GET_VOLUME_STATS, Rpc::VOLUME_CONDITION, Rpc::SINGLE_NODE_MULTI_WRITER}) {
        out->add_capabilities()->mutable_rpc()->set_type(type);
    }
    return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetInfo(grpc::ServerContext*, const ::csi::v1::NodeGetInfoRequest*,
                                      ::csi::v1::NodeGetInfoResponse* out) {
    out->set_node_id(options_.node_id);
    return grpc::Status::OK;
}

}  // namespace zerohop::csi

// zerohop-csi end to end: a real plugin process serving CSI over its unix socket, a real gRPC
// client in the role of kubelet and the external-provisioner, a real zerohopd, real FUSE
// mounts, and "pods": processes in mount and PID namespaces of their own, chrooted into a
// root that holds only /usr, /etc and their volumes, running as uid 1000.
//
// The cases follow the public csi-sanity suite where it applies (Identity, Node and
// Controller argument errors, idempotency, unpublish), then what only zerohop promises:
// the socket needs no key, two pods cannot reach each other, and kill -9 of the plugin, of
// zerohop-fuse or of zerohopd under a pod's readers and writers is survived.
//
// Runs as root (mounts, namespaces); in CI it must not skip.

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "csi.grpc.pb.h"
#include "daemon_fixture.h"
#include "zerohop/client.h"

namespace zerohop {
namespace {

namespace v1 = ::csi::v1;
using testing::Daemon;
using testing::RunShell;

Path P(std::string_view s) { return *Path::Parse(s); }

std::string Slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

bool MountedAt(const std::string& path, const std::string& type = "") {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> f = absl::StrSplit(line, ' ');
        if (f.size() > 4 && f[4] == path && (type.empty() || absl::StrContains(line, " - " + type + " "))) {
            return true;
        }
    }
    return false;
}

// The zerohop-fuse processes (not their holders) serving mount points below `dir`. (Not
// the short-lived copies a server forks to start its holder: their parent is a server.)
std::vector<pid_t> FuseServersBelow(const std::string& dir) {
    std::map<pid_t, pid_t> matched;  // pid -> parent
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        pid_t pid = atoi(e.path().filename().c_str());
        if (pid <= 0) {
            continue;
        }
        std::string cmd = Slurp(e.path().string() + "/cmdline");
        std::replace(cmd.begin(), cmd.end(), '\0', ' ');
        std::string stat = Slurp(e.path().string() + "/stat");
        size_t close = stat.rfind(')');
        if (close == std::string::npos || close + 4 >= stat.size()) {
            continue;  // gone meanwhile
        }
        bool zombie = stat[close + 2] == 'Z';
        pid_t parent = atoi(stat.c_str() + close + 4);
        if (!zombie && absl::StrContains(cmd, "zerohop-fuse") && absl::StrContains(cmd, " " + dir + "/") &&
            absl::EndsWith(cmd, "/mnt ") && !absl::StrContains(cmd, "--hold ")) {
            matched[pid] = parent;
        }
    }
    std::vector<pid_t> out;
    for (const auto& [pid, parent] : matched) {
        if (!matched.contains(parent)) {
            out.push_back(pid);
        }
    }
    return out;
}

::testing::AssertionResult HasCode(const grpc::Status& s, grpc::StatusCode want) {
    if (s.error_code() == want) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "code " << s.error_code() << " (want " << want
                                         << "): " << s.error_message();
}
#define EXPECT_CODE(status, code) EXPECT_TRUE(HasCode((status), grpc::StatusCode::code))
#define ASSERT_GRPC_OK(status) ASSERT_TRUE(HasCode((status), grpc::StatusCode::OK))
#define EXPECT_GRPC_OK(status) EXPECT_TRUE(HasCode((status), grpc::StatusCode::OK))

v1::VolumeCapability MountCapability(
    v1::VolumeCapability::AccessMode::Mode mode = v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER) {
    v1::VolumeCapability cap;
    cap.mutable_mount();
    cap.mutable_access_mode()->set_mode(mode);
    return cap;
}

class Workload;

class CsiTest : public ::testing::Test {
    friend class Workload;

protected:
    void SetUp() override {
        bool ci = getenv("CI") != nullptr && std::string(getenv("CI")) == "true";
        if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
            if (ci) {
                FAIL() << "CSI tests need root and /dev/fuse, and CI must run them";
            }
            GTEST_SKIP() << "needs root and /dev/fuse";
        }
        char tmpl[] = "/tmp/zh-csi-XXXXXX";
        dir_ = mkdtemp(tmpl);
        daemon_ = std::make_unique<Daemon>(dir_);
        daemon_->Start();
        auto owner = daemon_->Connect("rw-key");
        ASSERT_TRUE(owner.ok()) << owner.status();
        owner_ = std::move(*owner);
        for (const char* d : {"/demo/vols", "/demo/vols/a", "/demo/vols/b"}) {
            ASSERT_TRUE(owner_->Mkdir({.path = P(d), .mode = 0777}).ok());
        }
        ASSERT_TRUE(owner_->PutObject({.path = P("/demo/vols/a/hello"), .mode = 0644}, "from a").ok());
        ASSERT_TRUE(owner_->PutObject({.path = P("/demo/vols/b/secret"), .mode = 0644}, "from b").ok());
        std::ofstream(dir_ + "/admin-key") << "admin-key\n";
        // Kubelet's layout: /var/lib/kubelet/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount
        pods_ = dir_ + "/var/lib/kubelet/pods";
        StartPlugin();
    }

    void TearDown() override {
        // Whatever a failed case left published goes, so that the next starts clean.
        if (node_ != nullptr) {
            auto left = published_;
            for (const auto& [target, volume] : left) {
                EXPECT_GRPC_OK(Unpublish(volume, target)) << "left published by the case: " << target;
            }
        }
        StopPlugin(SIGTERM);
        owner_.reset();
        daemon_.reset();
        if (HasFailure()) {
            std::string log = Slurp(dir_ + "/zerohop-csi.log");
            std::cout << "---- zerohop-csi's log (last 6000 bytes):\n"
                      << log.substr(log.size() > 6000 ? log.size() - 6000 : 0) << "----\n";
            std::cout << "---- zerohop-fuse's logs (last 40 lines each):\n"
                      << RunShell("tail -n 40 " + dir_ + "/state/fuse/*/zerohop-fuse.log", &ignored_code_) << "----\n";
        }
        if (!dir_.empty()) {
            RunShell("grep -o ' " + dir_ + "[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l",
                     &ignored_code_);
            std::filesystem::remove_all(dir_);
        }
    }

    std::vector<pid_t> FuseServers() const { return FuseServersBelow(dir_ + "/state/fuse"); }

    void StartPlugin() {
        const char* bin = getenv("ZEROHOP_CSI");
        ASSERT_NE(bin, nullptr) << "ZEROHOP_CSI must name the zerohop-csi binary";
        endpoint_ = dir_ + "/csi.sock";
        plugin_ = fork();
        ASSERT_GE(plugin_, 0);
        if (plugin_ == 0) {
            std::string log = dir_ + "/zerohop-csi.log";
            int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            dup2(fd, 1);
            dup2(fd, 2);
            execl(bin, "zerohop-csi", "--endpoint", ("unix://" + endpoint_).c_str(), "--mode", "all", "--node-id",
                  "node-7", "--zerohop-socket", daemon_->socket().c_str(), "--admin-key-file",
                  (dir_ + "/admin-key").c_str(), "--state-dir", (dir_ + "/state").c_str(), "--zerohop-fuse",
                  getenv("ZEROHOP_FUSE"), "--takeover-timeout", "20", "--kubelet-dir", (dir_ + "/var/lib/kubelet").c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        auto channel = grpc::CreateChannel("unix://" + endpoint_, grpc::InsecureChannelCredentials());
        ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20)))
            << Slurp(dir_ + "/zerohop-csi.log");
        identity_ = v1::Identity::NewStub(channel);
        node_ = v1::Node::NewStub(channel);
        controller_ = v1::Controller::NewStub(channel);
    }

    void StopPlugin(int sig) {
        identity_.reset();
        node_.reset();
        controller_.reset();
        if (plugin_ > 0) {
            kill(plugin_, sig);
            int status = 0;
            waitpid(plugin_, &status, 0);
            if (sig == SIGTERM) {
                EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
                    << "zerohop-csi ended with status " << status << "\n"
                    << Slurp(dir_ + "/zerohop-csi.log");
            }
            plugin_ = -1;
        }
    }

    // A kubelet target for pod `pod` and volume `volume` (its parent made, as kubelet does),
    // as long as kubelet's: <pods>/<pod uid>/volumes/kubernetes.io~csi/<pv name>/mount.
    std::string Target(const std::string& pod, const std::string& volume) {
        auto uid = [](const std::string& name) {
            return "6b1f7a52-0c3d-4e8f-9a21-" + std::string(12 - name.size(), '0') + name;
        };
        std::string parent = absl::StrCat(pods_, "/", uid(pod), "/volumes/kubernetes.io~csi/pvc-", uid(volume));
        std::filesystem::create_directories(parent);
        return parent + "/mount";
    }

    struct Volume {
        std::string id = "demo/vols/a";
        std::string publish = "fuse";
        bool read_only = false;
        std::string key = "rw-key";
        std::map<std::string, std::string> context;
        std::string pod_name = "fn-1";
    };

    v1::NodePublishVolumeRequest PublishRequest(const Volume& v, const std::string& target) {
        v1::NodePublishVolumeRequest req;
        req.set_volume_id(v.id);
        req.set_target_path(target);
        *req.mutable_volume_capability() = MountCapability();
        req.set_readonly(v.read_only);
        (*req.mutable_secrets())["accessKey"] = v.key;
        auto& ctx = *req.mutable_volume_context();
        if (!v.publish.empty()) {
            ctx["publish"] = v.publish;
        }
        ctx["csi.storage.k8s.io/pod.name"] = v.pod_name;
        ctx["csi.storage.k8s.io/pod.namespace"] = "team";
        ctx["csi.storage.k8s.io/pod.uid"] = "uid-" + v.pod_name;
        ctx["csi.storage.k8s.io/serviceAccount.name"] = "runner";
        for (const auto& [k, val] : v.context) {
            ctx[k] = val;
        }
        return req;
    }

    grpc::Status Publish(const v1::NodePublishVolumeRequest& req) {
        grpc::ClientContext ctx;
        v1::NodePublishVolumeResponse out;
        grpc::Status s = node_->NodePublishVolume(&ctx, req, &out);
        if (s.ok()) {
            published_[req.target_path()] = req.volume_id();
        }
        return s;
    }
    grpc::Status Publish(const Volume& v, const std::string& target) { return Publish(PublishRequest(v, target)); }

    grpc::Status Unpublish(const std::string& volume, const std::string& target) {
        grpc::ClientContext ctx;
        v1::NodeUnpublishVolumeRequest req;
        req.set_volume_id(volume);
        req.set_target_path(target);
        v1::NodeUnpublishVolumeResponse out;
        grpc::Status s = node_->NodeUnpublishVolume(&ctx, req, &out);
        if (s.ok()) {
            published_.erase(target);
        }
        return s;
    }

    absl::StatusOr<v1::NodeGetVolumeStatsResponse> Stats(const std::string& volume, const std::string& path) {
        grpc::ClientContext ctx;
        v1::NodeGetVolumeStatsRequest req;
        req.set_volume_id(volume);
        req.set_volume_path(path);
        v1::NodeGetVolumeStatsResponse out;
        grpc::Status s = node_->NodeGetVolumeStats(&ctx, req, &out);
        if (!s.ok()) {
            return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
        }
        return out;
    }

    // Runs `command` (sh) as uid 1000 in a "pod": new mount and PID namespaces, a root of its
    // own holding /usr, /etc, the build tree (read-only) and `volumes` (target -> path in the
    // pod, bound recursively as a container runtime does). Its output and exit code.
    int Pod(const std::vector<std::pair<std::string, std::string>>& volumes, const std::string& command,
            std::string* output = nullptr, int uid = 1000) {
        std::string build = getenv("ZH_BUILD_ROOT");
        std::string script =
            "set -e; R=$(mktemp -d /tmp/zh-pod-XXXXXX); mount -t tmpfs -o mode=755 pod $R; "
            "for d in usr etc; do mkdir $R/$d; mount --bind -o ro /$d $R/$d; done; "
            "ln -s usr/bin $R/bin; ln -s usr/lib $R/lib; ln -s usr/lib64 $R/lib64; "
            "ln -s usr/sbin $R/sbin; mkdir -p $R/proc $R/dev $R/tmp $R" +
            build +
            "; chmod 1777 $R/tmp; touch $R/dev/null; mount --bind /dev/null $R/dev/null; "
            "mount --bind -o ro " +
            build + " $R" + build + "; mount -t proc proc $R/proc; ";
        for (const auto& [target, at] : volumes) {
            script += "mkdir -p $R" + at + "; mount --rbind " + target + " $R" + at + "; ";
        }
        script +=
            absl::StrCat("rmdir_later=$R; exec chroot $R setpriv --reuid=", uid, " --regid=", uid,
                         " --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp ZH=", getenv("ZH"), " sh -c \"$0\"");
        std::string quoted = command;
        std::string escaped;
        for (char c : quoted) {
            if (c == '\'') {
                escaped += "'\\''";
            } else {
                escaped += c;
            }
        }
        int code = -1;
        std::string out = RunShell(
            "unshare --mount --pid --fork --propagation private sh -c '" + script + "' '" + escaped + "'", &code);
        RunShell("rmdir /tmp/zh-pod-* 2>/dev/null", &ignored_code_);
        if (output != nullptr) {
            *output = out;
        }
        return code;
    }

    std::string dir_, pods_, endpoint_;
    int ignored_code_ = 0;
    pid_t plugin_ = -1;
    std::unique_ptr<Daemon> daemon_;
    std::unique_ptr<Client> owner_;
    std::unique_ptr<v1::Identity::Stub> identity_;
    std::unique_ptr<v1::Node::Stub> node_;
    std::unique_ptr<v1::Controller::Stub> controller_;
    std::map<std::string, std::string> published_;  // target -> volume, for TearDown
};

// ---- Identity ---------------------------------------------------------------------------

TEST_F(CsiTest, IdentityNamesThePluginByTheSpecsRulesAndProbesTheDaemon) {
    grpc::ClientContext c1;
    v1::GetPluginInfoResponse info;
    ASSERT_TRUE(identity_->GetPluginInfo(&c1, {}, &info).ok());
    EXPECT_LE(info.name().size(), 63u);
    EXPECT_TRUE(std::regex_match(info.name(), std::regex("^[a-zA-Z]([a-zA-Z0-9.-]*[a-zA-Z])?$"))) << info.name();
    EXPECT_TRUE(absl::StrContains(info.name(), ".")) << "domain notation";
    EXPECT_FALSE(info.vendor_version().empty());

    grpc::ClientContext c2;
    v1::GetPluginCapabilitiesResponse caps;
    ASSERT_TRUE(identity_->GetPluginCapabilities(&c2, {}, &caps).ok());
    ASSERT_EQ(caps.capabilities_size(), 1);
    EXPECT_EQ(caps.capabilities(0).service().type(), v1::PluginCapability::Service::CONTROLLER_SERVICE);

    auto probe = [&] {
        grpc::ClientContext c;
        v1::ProbeResponse out;
        EXPECT_TRUE(identity_->Probe(&c, {}, &out).ok());
        return out.has_ready() && out.ready().value();
    };
    EXPECT_TRUE(probe());
    owner_.reset();
    daemon_->Kill(SIGKILL);
    EXPECT_FALSE(probe()) << "not ready while zerohopd is down";
    daemon_->Start();
    EXPECT_TRUE(probe()) << "ready again once it is back";
}

TEST_F(CsiTest, AControllerWithoutAKeyOfItsOwnIsReadyWhileZerohopdAnswers) {
    std::string endpoint = dir_ + "/controller.sock";
    pid_t controller = fork();
    ASSERT_GE(controller, 0);
    if (controller == 0) {
        int fd = open((dir_ + "/controller.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(getenv("ZEROHOP_CSI"), "zerohop-csi", "--mode=controller", ("--endpoint=unix://" + endpoint).c_str(),
              ("--zerohop-socket=" + daemon_->socket()).c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    auto channel = grpc::CreateChannel("unix://" + endpoint, grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20)));
    auto identity = v1::Identity::NewStub(channel);
    auto ready = [&] {
        grpc::ClientContext c;
        v1::ProbeResponse out;
        EXPECT_TRUE(identity->Probe(&c, {}, &out).ok());
        return out.ready().value();
    };
    EXPECT_TRUE(ready());
    EXPECT_TRUE(absl::StrContains(daemon_->Metrics(), "zerohop_sessions_refused_total 0"))
        << "a probe is not a refused session";
    owner_.reset();
    daemon_->Kill(SIGKILL);
    EXPECT_FALSE(ready());
    daemon_->Start();
    EXPECT_TRUE(ready());
    kill(controller, SIGTERM);
    int status = 0;
    waitpid(controller, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Slurp(dir_ + "/controller.log");
}

// ---- Node: arguments --------------------------------------------------------------------

TEST_F(CsiTest, NodeCapabilitiesAndInfo) {
    grpc::ClientContext c1;
    v1::NodeGetCapabilitiesResponse caps;
    ASSERT_TRUE(node_->NodeGetCapabilities(&c1, {}, &caps).ok());
    std::set<int> types;
    for (const auto& c : caps.capabilities()) {
        EXPECT_TRUE(v1::NodeServiceCapability::RPC::Type_IsValid(c.rpc().type()));
        EXPECT_NE(c.rpc().type(), v1::NodeServiceCapability::RPC::UNKNOWN);
        types.insert(c.rpc().type());
    }
    EXPECT_TRUE(types.count(v1::NodeServiceCapability::RPC::GET_VOLUME_STATS));
    EXPECT_TRUE(types.count(v1::NodeServiceCapability::RPC::VOLUME_CONDITION));
    EXPECT_FALSE(types.count(v1::NodeServiceCapability::RPC::STAGE_UNSTAGE_VOLUME)) << "nothing to stage";
    grpc::ClientContext c2;
    v1::NodeGetInfoResponse info;
    ASSERT_TRUE(node_->NodeGetInfo(&c2, {}, &info).ok());
    EXPECT_EQ(info.node_id(), "node-7");
}

TEST_F(CsiTest, EveryBadPublishIsRefusedWithItsCodeAndLeavesNothingBehind) {
    std::string target = Target("p1", "v1");
    Volume good;
    auto with = [&](auto&& change) {
        v1::NodePublishVolumeRequest r = PublishRequest(good, target);
        change(r);
        return Publish(r);
    };
    using R = v1::NodePublishVolumeRequest;
    EXPECT_CODE(with([](R& r) { r.clear_volume_id(); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.clear_target_path(); }), INVALID_ARGUMENT);
    // Only below kubelet's directory, and no climbing out of it.
    EXPECT_CODE(with([](R& r) { r.set_target_path("/etc/zerohop-was-here"); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([&](R& r) { r.set_target_path(pods_ + "/../../../../etc"); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([&](R& r) { r.set_target_path(pods_ + "//x/./mount"); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.clear_volume_capability(); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.mutable_volume_capability()->mutable_block(); }), INVALID_ARGUMENT);
    EXPECT_CODE(
        with([](R& r) {
            r.mutable_volume_capability()->mutable_access_mode()->set_mode(v1::VolumeCapability::AccessMode::UNKNOWN);
        }),
        INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.mutable_volume_capability()->mutable_mount()->set_fs_type("ext4"); }),
                INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.mutable_volume_capability()->mutable_mount()->add_mount_flags("suid"); }),
                INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.clear_secrets(); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.set_volume_id("demo/../vols/b"); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.set_volume_id("/demo/vols/a"); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { (*r.mutable_volume_context())["publish"] = "nfs"; }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { (*r.mutable_volume_context())["subpath"] = "x"; }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { (*r.mutable_volume_context())["container"] = "other"; }), INVALID_ARGUMENT)
        << "a persistent volume's handle names its container";
    // The volume is not there, or the key does not open it.
    EXPECT_CODE(with([](R& r) { r.set_volume_id("nosuch/x"); }), NOT_FOUND);
    EXPECT_CODE(with([](R& r) { r.set_volume_id("demo/vols/missing"); }), NOT_FOUND);
    EXPECT_CODE(with([](R& r) { (*r.mutable_secrets())["accessKey"] = "wrong"; }), PERMISSION_DENIED);
    EXPECT_CODE(with([](R& r) { (*r.mutable_secrets())["accessKey"] = "ro-key"; }), PERMISSION_DENIED)
        << "a read-only key for a read-write volume";
    EXPECT_CODE(with([](R& r) {
                    (*r.mutable_secrets())["accessKey"] = "wrong";
                    (*r.mutable_volume_context())["publish"] = "socket";
                }),
                PERMISSION_DENIED);
    // The same for an inline volume, whose context is the pod spec's.
    auto inline_volume = [&](std::map<std::string, std::string> ctx) {
        return with([&](R& r) {
            r.set_volume_id("csi-8f2a");
            (*r.mutable_volume_context())["csi.storage.k8s.io/ephemeral"] = "true";
            for (auto& [k, v] : ctx) {
                (*r.mutable_volume_context())[k] = v;
            }
        });
    };
    EXPECT_CODE(inline_volume({}), INVALID_ARGUMENT);
    EXPECT_CODE(inline_volume({{"container", "demo"}, {"subPath", "../../etc"}}), INVALID_ARGUMENT);
    EXPECT_CODE(inline_volume({{"container", "demo"}, {"subPath", "/vols/a"}}), INVALID_ARGUMENT);
    EXPECT_CODE(inline_volume({{"container", "demo/vols"}}), INVALID_ARGUMENT);
    EXPECT_CODE(inline_volume({{"container", "demo"}, {"subPath", std::string(5000, 'x')}}), INVALID_ARGUMENT);
    EXPECT_CODE(inline_volume({{"container", "demo"}, {"subPath", "vols/a"}, {"createSubPath", "yes"}}),
                INVALID_ARGUMENT);
    EXPECT_CODE(inline_volume({{"container", "demo"}, {"subPath", "vols/none"}}), NOT_FOUND);
    // Nothing of any of them is left: no target, no socket, no FUSE view, no state.
    EXPECT_FALSE(std::filesystem::exists(target));
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/volumes") && !std::filesystem::is_empty(dir_ + "/volumes"));
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/state/fuse") && !std::filesystem::is_empty(dir_ + "/state/fuse"));
    EXPECT_TRUE(FuseServers().empty());
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/state/node-state.json") &&
                 absl::StrContains(Slurp(dir_ + "/state/node-state.json"), "demo"));
    // And the good one works.
    EXPECT_GRPC_OK(Publish(good, target));
}

TEST_F(CsiTest, PublishAndUnpublishAreIdempotentAndUnpublishRemovesTheTarget) {
    std::string target = Target("p1", "v1");
    Volume v;
    ASSERT_GRPC_OK(Publish(v, target));
    EXPECT_TRUE(MountedAt(target, "fuse.zerohop"));
    EXPECT_GRPC_OK(Publish(v, target)) << "the same arguments again";
    Volume ro = v;
    ro.read_only = true;
    EXPECT_CODE(Publish(ro, target), ALREADY_EXISTS);
    Volume other = v;
    other.id = "demo/vols/b";
    EXPECT_CODE(Publish(other, target), ALREADY_EXISTS);
    EXPECT_CODE(Unpublish("", target), INVALID_ARGUMENT);
    EXPECT_CODE(Unpublish(v.id, ""), INVALID_ARGUMENT);
    EXPECT_CODE(Unpublish("demo/vols/b", target), NOT_FOUND) << "not the volume at that target";
    ASSERT_GRPC_OK(Unpublish(v.id, target));
    EXPECT_FALSE(std::filesystem::exists(target)) << "publish made it: unpublish removes it";
    EXPECT_GRPC_OK(Unpublish(v.id, target)) << "again: OK";
    EXPECT_GRPC_OK(Unpublish(v.id, Target("p9", "never"))) << "never published: OK";
    EXPECT_TRUE(FuseServers().empty()) << "the last user gone, so is its zerohop-fuse";
    // A target kubelet made itself stays.
    std::filesystem::create_directories(target);
    ASSERT_GRPC_OK(Publish(v, target));
    ASSERT_GRPC_OK(Unpublish(v.id, target));
    EXPECT_TRUE(std::filesystem::is_directory(target));
}

TEST_F(CsiTest, VolumeStatsReportUsageAndAnAbnormalConditionWhileSomethingIsDown) {
    std::string target = Target("p1", "v1");
    EXPECT_EQ(Stats("", target).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Stats("demo/vols/a", "").status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Stats("demo/vols/a", target).status().code(), absl::StatusCode::kNotFound) << "not published";
    ASSERT_GRPC_OK(Publish(Volume{.publish = "fuse,socket"}, target));
    EXPECT_EQ(Stats("demo/vols/b", target).status().code(), absl::StatusCode::kNotFound);
    ASSERT_TRUE(owner_->PutObject({.path = P("/demo/vols/a/big")}, std::string(100000, 'x')).ok());
    auto stats = Stats("demo/vols/a", target);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_FALSE(stats->volume_condition().abnormal()) << stats->volume_condition().message();
    ASSERT_EQ(stats->usage_size(), 2);
    EXPECT_EQ(stats->usage(0).unit(), v1::VolumeUsage::BYTES);
    EXPECT_EQ(stats->usage(0).used(), 100000 + 6);
    EXPECT_EQ(stats->usage(1).unit(), v1::VolumeUsage::INODES);
    EXPECT_EQ(stats->usage(1).used(), 2);
    // zerohopd down: abnormal, with the reason.
    owner_.reset();
    daemon_->Kill(SIGKILL);
    stats = Stats("demo/vols/a", target);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_TRUE(stats->volume_condition().abnormal());
    EXPECT_TRUE(absl::StrContains(stats->volume_condition().message(), "zerohopd"))
        << stats->volume_condition().message();
    daemon_->Start();
    stats = Stats("demo/vols/a", target);
    ASSERT_TRUE(stats.ok());
    EXPECT_FALSE(stats->volume_condition().abnormal()) << stats->volume_condition().message();
}

// ---- Node: what a pod gets ----------------------------------------------------------------

TEST_F(CsiTest, APodReadsAndWritesTheFuseViewAsItsOwnUid) {
    std::string target = Target("p1", "v1");
    ASSERT_GRPC_OK(Publish(Volume{}, target));
    std::string out;
    int rc = Pod({{target, "/data"}},
                 "id -u; cat /data/hello; echo; echo written > /data/mine; mkdir /data/dir; echo x > /data/dir/f; "
                 "ls -ln /data | awk '/mine/ {print $3}'; cat /data/mine",
                 &out);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "1000\nfrom a\n1000\nwritten\n");
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/vols/a/mine")}), "written\n");
    EXPECT_EQ(owner_->Stat(P("/demo/vols/a/dir/f"))->uid, 1000u) << "owned by the pod's uid";
    // Permissions are checked: another uid may not write the file 1000 made (0644).
    rc = Pod({{target, "/data"}}, "echo no >> /data/mine", &out, 1001);
    EXPECT_NE(rc, 0) << out;
    EXPECT_TRUE(absl::StrContains(out, "Permission denied")) << out;
}

TEST_F(CsiTest, APodConnectsThroughThePublishedSocketWithNoKeyAndNoConfiguration) {
    std::string target = Target("p1", "v1");
    ASSERT_GRPC_OK(Publish(Volume{.publish = "socket"}, target));
    EXPECT_TRUE(std::filesystem::exists(target + "/zerohop.sock"));
    EXPECT_GT((target + "/zerohop.sock").size(), 108u) << "kubelet's paths are longer than sun_path";
    std::string out;
    // No ZEROHOP_SOCKET, no ZEROHOP_ACCESS_KEY: the conventional /run/zerohop/zerohop.sock.
    int rc = Pod({{target, "/run/zerohop"}},
                 "$ZH ls /; $ZH get /demo/hello; echo; echo pod | $ZH put /demo/from-pod; $ZH ls /demo", &out);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_TRUE(absl::StrContains(out, "demo")) << out;
    EXPECT_TRUE(absl::StrContains(out, "from a")) << out;
    EXPECT_TRUE(absl::StrContains(out, "from-pod")) << out;
    EXPECT_FALSE(absl::StrContains(out, "other")) << "one container only:\n" << out;
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/vols/a/from-pod")}), "pod\n");
    // Metrics and logs name the pod.
    std::string metrics = daemon_->Metrics();
    EXPECT_TRUE(absl::StrContains(metrics, "pod=\"team/fn-1\"")) << metrics;
    // The same from the host through the long target path (libzerohop reaches it anyway).
    ClientOptions o;
    o.socket_path = target + "/zerohop.sock";
    o.access_key = "";
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(*(*c)->GetObject({.path = P("/demo/hello")}), "from a");
}

TEST_F(CsiTest, AReadOnlyVolumeIsReadOnlyInTheMountAndInTheSession) {
    std::string target = Target("p1", "v1");
    ASSERT_GRPC_OK(Publish(Volume{.publish = "fuse,socket", .read_only = true, .key = "ro-key"}, target));
    std::string out;
    int rc = Pod({{target, "/run/zerohop"}},
                 "cat /run/zerohop/fs/hello; echo; "
                 "if { echo x > /run/zerohop/fs/new; } 2>/dev/null; then echo WROTE; else echo refused; fi; "
                 "$ZH get /demo/hello; echo; "
                 "if echo x | $ZH put /demo/new 2>/dev/null; then echo PUT; else echo put refused $?; fi",
                 &out);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "from a\nrefused\nfrom a\nput refused 4\n");
    EXPECT_FALSE(owner_->Stat(P("/demo/vols/a/new")).ok());
}

TEST_F(CsiTest, AnInlineVolumeNamesItsContainerAndSubPathAndMayCreateIt) {
    std::string target = Target("p1", "scratch");
    Volume v{.id = "csi-1c2d3e", .publish = "fuse,socket"};
    v.context = {{"csi.storage.k8s.io/ephemeral", "true"},
                 {"container", "demo"},
                 {"subPath", "scratch/fn-1"},
                 {"createSubPath", "true"}};
    ASSERT_GRPC_OK(Publish(v, target));
    std::string out;
    ASSERT_EQ(Pod({{target, "/run/zerohop"}}, "echo hi > /run/zerohop/fs/x && $ZH ls /demo | awk '{print $NF}'", &out),
              0)
        << out;
    EXPECT_EQ(out, "x\n");
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/scratch/fn-1/x")}), "hi\n");
    ASSERT_GRPC_OK(Unpublish(v.id, target));
    EXPECT_FALSE(std::filesystem::exists(target));
}

TEST_F(CsiTest, PodsOfOneVolumeShareOneFuseViewAndTheLastOneTakesItDown) {
    std::string t1 = Target("p1", "v"), t2 = Target("p2", "v"), t3 = Target("p3", "v");
    ASSERT_GRPC_OK(Publish(Volume{.pod_name = "fn-1"}, t1));
    ASSERT_GRPC_OK(Publish(Volume{.pod_name = "fn-2"}, t2));
    ASSERT_GRPC_OK(Publish(Volume{.read_only = true, .pod_name = "fn-3"}, t3));
    EXPECT_EQ(FuseServers().size(), 2u) << "one zerohop-fuse per volume, key and mode";
    { std::ofstream(t1 + "/shared") << "seen by all"; }
    EXPECT_EQ(Slurp(t2 + "/shared"), "seen by all");
    EXPECT_EQ(Slurp(t3 + "/shared"), "seen by all");
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", t1));
    EXPECT_EQ(Slurp(t2 + "/hello"), "from a") << "the others keep it";
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", t2));
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", t3));
    EXPECT_TRUE(FuseServers().empty());
    EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/state/fuse"));
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/volumes") && !std::filesystem::is_empty(dir_ + "/volumes"))
        << "every scope unpublished";
}

TEST_F(CsiTest, TwoPodsCannotReachEachOthersDataByAnyPath) {
    std::string ta = Target("pa", "v"), tb = Target("pb", "v");
    ASSERT_GRPC_OK(Publish(Volume{.id = "demo/vols/a", .publish = "fuse,socket", .pod_name = "a"}, ta));
    ASSERT_GRPC_OK(Publish(Volume{.id = "demo/vols/b", .publish = "fuse,socket", .pod_name = "b"}, tb));
    std::string out;
    std::string script = absl::StrCat(
        // What the pod sees of its volume: its own files only.
        "ls /run/zerohop/fs; $ZH ls /demo | awk '{print $NF}'; ",
        // '..' out of the volume ends in the pod's own root, where b is not.
        "ls /run/zerohop/fs/../../..; test ! -e ", tb, " && echo no-b-target; ",
        // A symlink to b's host path leads nowhere in this pod.
        "ln -s ", tb, "/fs/secret /run/zerohop/fs/to-b; cat /run/zerohop/fs/to-b 2>/dev/null || echo link-dead; ",
        // Through the session: other paths, other containers, '..'.
        "$ZH get /demo/secret 2>/dev/null || echo get-refused $?; ",
        "$ZH get /demo/../vols/b/secret 2>/dev/null || echo dotdot-refused $?; ",
        "$ZH ls /other 2>/dev/null || echo other-refused $?; ",
        // b's socket is not in this pod; another key does not widen the scope.
        "ZEROHOP_SOCKET=", tb, "/zerohop.sock $ZH ls / 2>/dev/null || echo b-socket-unreachable; ",
        "ZEROHOP_ACCESS_KEY=rw-key $ZH get /demo/secret 2>/dev/null || echo key-ignored $?; ",
        // Nor are the other pods' processes (a PID namespace of its own).
        "[ $(ls /proc | grep -c '^[0-9]') -lt 10 ] && echo few-processes");
    ASSERT_EQ(Pod({{ta, "/run/zerohop"}}, script, &out), 0) << out;
    std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
    // The pod's root: a few system directories and the (read-only) build tree's top one.
    std::set<std::string> root = {"bin", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "tmp", "usr"};
    std::vector<std::string> build = absl::StrSplit(getenv("ZH_BUILD_ROOT"), '/', absl::SkipEmpty());
    root.insert(build.front());
    std::vector<std::string> want = {"hello", "hello"};
    want.insert(want.end(), root.begin(), root.end());
    want.insert(want.end(), {"no-b-target",
                                               "link-dead",
                                               "get-refused 3",
                                               "dotdot-refused 2",
                                               "other-refused 3",
                             "b-socket-unreachable", "key-ignored 3", "few-processes"});
    EXPECT_EQ(lines, want) << out;
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/vols/b/secret")}), "from b");
}

// ---- Node: kill -9 under a working pod ----------------------------------------------------

// A pod that, for `seconds`, writes numbered files and reads a fixed one through the FUSE
// view, while one libzerohop session of its own (this binary, --pod-client) puts and gets
// through the socket. A write whose outcome a restart made unknown is written again, as an
// application would; the counts of those are printed. The pod prints "ok" last, or the first
// failure.
class Workload {
public:
    Workload(CsiTest* test, const std::string& target, int seconds) {
        std::string self(4096, '\0');
        self.resize(std::max<ssize_t>(0, readlink("/proc/self/exe", self.data(), self.size())));
        std::string script = absl::StrCat(
            self, " --pod-client ", seconds, " > /tmp/client.out 2>&1 & ", "end=$(( $(date +%s) + ", seconds,
            " )); i=0; again=0; ", "while [ $(date +%s) -lt $end ]; do i=$((i+1)); ",
            "echo $i > /run/zerohop/fs/w$i 2>/dev/null || { again=$((again+1)); echo $i > /run/zerohop/fs/w$i; } || "
            "{ echo write $i failed; exit 1; }; ",
            "[ \"$(cat /run/zerohop/fs/hello)\" = 'from a' ] || { echo read $i failed; exit 1; }; done; ",
            "for j in $(seq 1 $i); do [ \"$(cat /run/zerohop/fs/w$j)\" = $j ] || { echo lost $j; exit 1; }; done; ",
            "wait $! || { cat /tmp/client.out; exit 1; }; cat /tmp/client.out; echo files $i written-again $again; "
            "echo ok");
        thread_ = std::thread([this, test, target, script] {
            code_ = test->Pod({{target, "/run/zerohop"}}, script, &out_);
        });
    }
    // Whether it ran to the end with every check passed.
    void ExpectOk() {
        thread_.join();
        EXPECT_EQ(code_, 0) << out_;
        EXPECT_TRUE(absl::EndsWith(out_, "ok\n")) << out_;
        std::cout << "[ workload ] " << out_;
    }

private:
    std::thread thread_;
    int code_ = -1;
    std::string out_;
};

// Puts and gets through the default socket, with no key, for `seconds` (inside a pod).
int PodClient(int seconds) {
    ClientOptions o;
    o.client_bytes = 1 << 20;
    o.daemon_bytes = 1 << 20;
    o.spin = absl::ZeroDuration();
    auto c = Client::Connect(o);
    if (!c.ok()) {
        std::cout << "client: " << c.status() << "\n";
        return 1;
    }
    absl::Time end = absl::Now() + absl::Seconds(seconds);
    int i = 0, again = 0;
    while (absl::Now() < end) {
        ++i;
        std::string name = absl::StrCat("/demo/c", i % 50), value = absl::StrCat("v", i);
        absl::Status put = (*c)->PutObject({.path = P(name)}, value).status();
        for (int tries = 0; !put.ok() && put.code() == absl::StatusCode::kUnavailable && tries < 100; ++tries) {
            ++again;  // a restart made its outcome unknown: the same put again is harmless
            absl::SleepFor(absl::Milliseconds(100));
            put = (*c)->PutObject({.path = P(name)}, value).status();
        }
        auto got = (*c)->GetObject({.path = P(name)});
        if (!put.ok() || !got.ok() || *got != value) {
            std::cout << "client: op " << i << ": " << put << " / " << got.status() << "\n";
            return 1;
        }
    }
    std::cout << "client ops " << i << " put-again " << again << " reconnects " << (*c)->reconnects() << "\n";
    return 0;
}

TEST_F(CsiTest, KillingThePluginDisturbsNoPodAndARestartedOneUnpublishesCleanly) {
    std::string target = Target("p1", "v1");
    ASSERT_GRPC_OK(Publish(Volume{.publish = "fuse,socket"}, target));
    Workload pod(this, target, 4);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    StopPlugin(SIGKILL);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    StartPlugin();
    pod.ExpectOk();
    EXPECT_GRPC_OK(Publish(Volume{.publish = "fuse,socket"}, target)) << "it knows what it published";
    auto stats = Stats("demo/vols/a", target);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_FALSE(stats->volume_condition().abnormal()) << stats->volume_condition().message();
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", target));
    EXPECT_FALSE(std::filesystem::exists(target));
    EXPECT_TRUE(FuseServers().empty());
    EXPECT_FALSE(MountedAt(dir_ + "/state/fuse"));
}

TEST_F(CsiTest, KillingZerohopFuseDisturbsNoPod) {
    std::string target = Target("p1", "v1");
    ASSERT_GRPC_OK(Publish(Volume{.publish = "fuse,socket"}, target));
    auto before = FuseServers();
    ASSERT_EQ(before.size(), 1u);
    Workload pod(this, target, 4);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    kill(before[0], SIGKILL);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    auto stats = Stats("demo/vols/a", target);
    ASSERT_TRUE(stats.ok());
    EXPECT_FALSE(stats->volume_condition().abnormal()) << "started again: " << stats->volume_condition().message();
    pod.ExpectOk();
    auto after = FuseServers();
    ASSERT_EQ(after.size(), 1u);
    EXPECT_NE(after[0], before[0]);
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", target));
    EXPECT_TRUE(FuseServers().empty());
}

TEST_F(CsiTest, APluginRestartedWithItsWholeContainerMountsItsViewsAfreshAtTheirTargets) {
    // A container restart takes the plugin, zerohop-fuse and its holder at once: the mount is
    // dead. The new plugin mounts the view again and binds it at every target anew.
    std::string t1 = Target("p1", "v1"), t2 = Target("p2", "v1");
    ASSERT_GRPC_OK(Publish(Volume{}, t1));
    ASSERT_GRPC_OK(Publish(Volume{.publish = "fuse,socket"}, t2));
    StopPlugin(SIGKILL);
    std::string ignored;
    RunShell("pkill -KILL -f 'zerohop-fuse .*" + dir_ + "/state/fuse/'", &ignored_code_);
    for (int i = 0; i < 200 && !FuseServers().empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::string out;
    EXPECT_NE(Pod({{t1, "/data"}}, "cat /data/hello", &out), 0) << "dead: " << out;
    StartPlugin();
    EXPECT_EQ(Slurp(t1 + "/hello"), "from a");
    EXPECT_EQ(Slurp(t2 + "/fs/hello"), "from a");
    ASSERT_EQ(Pod({{t2, "/run/zerohop"}}, "cat /run/zerohop/fs/hello; $ZH get /demo/hello", &out), 0) << out;
    EXPECT_EQ(out, "from afrom a");
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", t1));
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", t2));
    EXPECT_TRUE(FuseServers().empty());
    EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/state/fuse"));
}

TEST_F(CsiTest, KillingZerohopdDisturbsNoPodAndItsSocketComesBack) {
    std::string target = Target("p1", "v1");
    ASSERT_GRPC_OK(Publish(Volume{.publish = "fuse,socket"}, target));
    Workload pod(this, target, 5);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    owner_.reset();
    daemon_->Kill(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    daemon_->Start();
    pod.ExpectOk();
    ASSERT_GRPC_OK(Unpublish("demo/vols/a", target));
    EXPECT_FALSE(std::filesystem::exists(target));
    EXPECT_TRUE(FuseServers().empty());
}

// ---- Controller ---------------------------------------------------------------------------

v1::CreateVolumeRequest CreateRequest(const std::string& name) {
    v1::CreateVolumeRequest req;
    req.set_name(name);
    *req.add_volume_capabilities() = MountCapability();
    (*req.mutable_parameters())["container"] = "demo";
    (*req.mutable_parameters())["parentPath"] = "pvs";
    (*req.mutable_parameters())["publish"] = "fuse,socket";
    (*req.mutable_secrets())["accessKey"] = "rw-key";
    req.mutable_capacity_range()->set_required_bytes(1 << 30);
    return req;
}

template <typename Request, typename Response, typename Call>
grpc::Status Rpc(Call call, const Request& req, Response* out = nullptr) {
    grpc::ClientContext ctx;
    Response ignored;
    return call(&ctx, req, out != nullptr ? out : &ignored);
}

TEST_F(CsiTest, ControllerCapabilitiesAreKnownValues) {
    grpc::ClientContext ctx;
    v1::ControllerGetCapabilitiesResponse caps;
    ASSERT_TRUE(controller_->ControllerGetCapabilities(&ctx, {}, &caps).ok());
    std::set<int> types;
    for (const auto& c : caps.capabilities()) {
        EXPECT_TRUE(v1::ControllerServiceCapability::RPC::Type_IsValid(c.rpc().type()));
        types.insert(c.rpc().type());
    }
    EXPECT_TRUE(types.count(v1::ControllerServiceCapability::RPC::CREATE_DELETE_VOLUME));
    EXPECT_FALSE(types.count(v1::ControllerServiceCapability::RPC::PUBLISH_UNPUBLISH_VOLUME)) << "nothing to attach";
}

TEST_F(CsiTest, CreateVolumeMakesADirectoryOnceAndDeleteVolumeRemovesIt) {
    auto create = [&](const v1::CreateVolumeRequest& req, v1::CreateVolumeResponse* out = nullptr) {
        return Rpc<v1::CreateVolumeRequest, v1::CreateVolumeResponse>(
            [&](auto* c, auto& r, auto* o) { return controller_->CreateVolume(c, r, o); }, req, out);
    };
    auto remove = [&](const std::string& id, const std::string& key = "rw-key") {
        v1::DeleteVolumeRequest req;
        req.set_volume_id(id);
        if (!key.empty()) {
            (*req.mutable_secrets())["accessKey"] = key;
        }
        return Rpc<v1::DeleteVolumeRequest, v1::DeleteVolumeResponse>(
            [&](auto* c, auto& r, auto* o) { return controller_->DeleteVolume(c, r, o); }, req);
    };
    using R = v1::CreateVolumeRequest;
    auto with = [&](auto&& change) {
        R r = CreateRequest("pvc-1");
        change(r);
        return create(r);
    };
    EXPECT_CODE(with([](R& r) { r.clear_name(); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.clear_volume_capabilities(); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.mutable_volume_capabilities(0)->mutable_block(); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.mutable_parameters()->erase("container"); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { (*r.mutable_parameters())["parentPath"] = "../x"; }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { (*r.mutable_parameters())["size"] = "1Gi"; }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.set_name("a/b"); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { r.clear_secrets(); }), INVALID_ARGUMENT);
    EXPECT_CODE(with([](R& r) { (*r.mutable_secrets())["accessKey"] = "ro-key"; }), PERMISSION_DENIED);
    // A key is never told which containers exist beyond its own.
    EXPECT_CODE(with([](R& r) { (*r.mutable_parameters())["container"] = "nosuch"; }), PERMISSION_DENIED);
    EXPECT_CODE(with([](R& r) { r.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id("s"); }),
                INVALID_ARGUMENT);
    EXPECT_FALSE(owner_->Stat(P("/demo/pvs/pvc-1")).ok()) << "nothing made by a refused request";

    v1::CreateVolumeResponse made;
    ASSERT_TRUE(create(CreateRequest("pvc-1"), &made).ok());
    EXPECT_EQ(made.volume().volume_id(), "demo/pvs/pvc-1");
    EXPECT_EQ(made.volume().capacity_bytes(), 1 << 30);
    EXPECT_EQ(made.volume().volume_context().at("publish"), "fuse,socket");
    EXPECT_EQ(owner_->Stat(P("/demo/pvs/pvc-1"))->type, ObjectType::kDirectory);
    v1::CreateVolumeResponse again;
    ASSERT_TRUE(create(CreateRequest("pvc-1"), &again).ok()) << "the same name again: the same volume";
    EXPECT_EQ(again.volume().volume_id(), made.volume().volume_id());

    // A node publishes it from the handle and context CreateVolume gave.
    std::string target = Target("p1", "pvc-1");
    Volume v{.id = made.volume().volume_id(), .publish = ""};
    v.context = {made.volume().volume_context().begin(), made.volume().volume_context().end()};
    ASSERT_GRPC_OK(Publish(v, target));
    { std::ofstream(target + "/fs/data") << "kept"; }
    ASSERT_GRPC_OK(Unpublish(v.id, target));
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/pvs/pvc-1/data")}), "kept");

    EXPECT_CODE(remove(""), INVALID_ARGUMENT);
    EXPECT_CODE(remove("demo/pvs/pvc-1", ""), INVALID_ARGUMENT);
    EXPECT_CODE(remove("demo"), FAILED_PRECONDITION) << "never a whole container";
    ASSERT_TRUE(remove("demo/pvs/pvc-1").ok());
    EXPECT_EQ(owner_->Stat(P("/demo/pvs/pvc-1")).status().code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE(remove("demo/pvs/pvc-1").ok()) << "gone already: OK";
    EXPECT_TRUE(remove("not a volume id//").ok()) << "no such volume: OK";
}

TEST_F(CsiTest, ValidateVolumeCapabilitiesConfirmsMountsOfEveryAccessMode) {
    auto validate = [&](const std::string& id, std::vector<v1::VolumeCapability> caps, bool with_key,
                        v1::ValidateVolumeCapabilitiesResponse* out) {
        v1::ValidateVolumeCapabilitiesRequest req;
        req.set_volume_id(id);
        for (auto& c : caps) {
            *req.add_volume_capabilities() = c;
        }
        if (with_key) {
            (*req.mutable_secrets())["accessKey"] = "rw-key";
        }
        return Rpc<v1::ValidateVolumeCapabilitiesRequest, v1::ValidateVolumeCapabilitiesResponse>(
            [&](auto* c, auto& r, auto* o) { return controller_->ValidateVolumeCapabilities(c, r, o); }, req, out);
    };
    using Mode = v1::VolumeCapability::AccessMode;
    v1::ValidateVolumeCapabilitiesResponse out;
    EXPECT_CODE(validate("", {MountCapability()}, true, &out), INVALID_ARGUMENT);
    EXPECT_CODE(validate("demo/vols/a", {}, true, &out), INVALID_ARGUMENT);
    EXPECT_CODE(validate("demo/vols/none", {MountCapability()}, true, &out), NOT_FOUND);
    out.Clear();
    ASSERT_TRUE(validate("demo/vols/a",
                         {MountCapability(Mode::SINGLE_NODE_WRITER), MountCapability(Mode::MULTI_NODE_READER_ONLY),
                          MountCapability(Mode::MULTI_NODE_MULTI_WRITER)},
                         true, &out)
                    .ok());
    EXPECT_TRUE(out.has_confirmed());
    EXPECT_EQ(out.confirmed().volume_capabilities_size(), 3);
    v1::VolumeCapability block;
    block.mutable_block();
    block.mutable_access_mode()->set_mode(Mode::SINGLE_NODE_WRITER);
    out.Clear();
    ASSERT_TRUE(validate("demo/vols/a", {block}, false, &out).ok());
    EXPECT_FALSE(out.has_confirmed());
    EXPECT_TRUE(absl::StrContains(out.message(), "block")) << out.message();
}

}  // namespace
}  // namespace zerohop

int main(int argc, char** argv) {
    // Inside a pod (Workload): this binary is its long-lived libzerohop client.
    if (argc == 3 && std::string(argv[1]) == "--pod-client") {
        return zerohop::PodClient(atoi(argv[2]));
    }
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

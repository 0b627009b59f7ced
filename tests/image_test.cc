// The image deploy/ names, built as tools/build-image.sh builds it (mmdebstrap + umoci, no
// Docker engine), unpacked with umoci and run with runc as Kubernetes would run the node
// pod: zerohopd in one container, zerohop-csi in another (privileged, /dev/fuse, the pods'
// directory shared both ways), and the Python example pod in a third, as uid 1000, with
// nothing but the published socket.
//
// Runs as root; in CI it must not skip. The OCI runtime is runc ($ZH_OCI_RUNTIME may name
// crun: crun 1.8 refuses hosts whose cgroups are hybrid, as these machines' are).

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "csi.grpc.pb.h"
#include "daemon_fixture.h"
#include "zerohop/client.h"

namespace zerohop {
namespace {

namespace v1 = ::csi::v1;
using Json = nlohmann::json;
using testing::RunShell;

Path P(std::string_view s) { return *Path::Parse(s); }

std::string Slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

class ImageTest : public ::testing::Test {
protected:
    void SetUp() override {
        bool ci = getenv("CI") != nullptr && std::string(getenv("CI")) == "true";
        if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
            if (ci) {
                FAIL() << "the image test needs root and /dev/fuse, and CI must run it";
            }
            GTEST_SKIP() << "needs root and /dev/fuse";
        }
        char tmpl[] = "/tmp/zh-image-XXXXXX";
        dir_ = mkdtemp(tmpl);
        for (const char* d : {"etc/keys", "run", "store", "state", "csi", "pods"}) {
            std::filesystem::create_directories(dir_ + "/" + d);
        }
        std::ofstream(dir_ + "/etc/zerohopd.yaml")
            << "listen: /run/zerohop/zerohop.sock\nmetrics_port: 0\n"
               "mounts: [{container: demo, options: {dir: /var/lib/zerohop/store}}]\n"
               "credentials:\n"
               "  - {key_file: /etc/zerohop/keys/admin-key, admin: true}\n"
               "  - {key_file: /etc/zerohop/keys/team-a, containers: {demo: rw}}\n";
        std::ofstream(dir_ + "/etc/keys/admin-key") << "image-admin\n";
        std::ofstream(dir_ + "/etc/keys/team-a") << "image-team-a\n";
        // Kubelet's pods directory is a shared mount: what the plugin mounts below it in its
        // container appears on the host (mountPropagation: Bidirectional).
        ASSERT_EQ(mount((dir_ + "/pods").c_str(), (dir_ + "/pods").c_str(), nullptr, MS_BIND, nullptr), 0);
        ASSERT_EQ(mount(nullptr, (dir_ + "/pods").c_str(), nullptr, MS_SHARED | MS_REC, nullptr), 0);
    }

    void TearDown() override {
        for (const std::string& id : containers_) {
            RunShell(Runtime() + " kill " + id + " KILL; sleep 0.2; " + Runtime() + " delete --force " + id, &ignored_);
        }
        if (!dir_.empty()) {
            RunShell("grep -o ' " + dir_ + "[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l", &ignored_);
            std::filesystem::remove_all(dir_);
        }
    }

    // An OCI runtime configuration for a container of the image's root file system.
    Json Config(const std::vector<std::string>& args, bool privileged, uint32_t uid = 0) {
        std::vector<std::string> caps = {"CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER",          "CAP_KILL",
                                         "CAP_SETUID", "CAP_SETGID",       "CAP_NET_BIND_SERVICE"};
        if (privileged) {
            caps.insert(caps.end(), {"CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_SYS_PTRACE"});
        }
        if (uid != 0) {
            caps.clear();
        }
        Json mounts = Json::array({
            {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
            {{"destination", "/dev"},
             {"type", "tmpfs"},
             {"source", "tmpfs"},
             {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
            {{"destination", "/dev/pts"},
             {"type", "devpts"},
             {"source", "devpts"},
             {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
            {{"destination", "/dev/shm"},
             {"type", "tmpfs"},
             {"source", "shm"},
             {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
            {{"destination", "/sys"},
             {"type", "sysfs"},
             {"source", "sysfs"},
             {"options", {"nosuid", "noexec", "nodev", "ro"}}},
            {{"destination", "/tmp"},
             {"type", "tmpfs"},
             {"source", "tmpfs"},
             {"options", {"nosuid", "nodev", "mode=1777"}}},
        });
        Json devices = Json::array();
        if (privileged) {
            devices.push_back({{"path", "/dev/fuse"},
                               {"type", "c"},
                               {"major", 10},
                               {"minor", 229},
                               {"fileMode", 0666},
                               {"uid", 0},
                               {"gid", 0}});
        }
        return {{"ociVersion", "1.0.2"},
                {"process",
                 {{"terminal", false},
                  {"user", {{"uid", uid}, {"gid", uid}}},
                  {"args", args},
                  {"env", {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/tmp"}},
                  {"cwd", "/"},
                  {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
                  {"noNewPrivileges", uid != 0}}},
                {"root", {{"path", dir_ + "/bundle/rootfs"}, {"readonly", true}}},
                {"hostname", "zerohop"},
                {"mounts", mounts},
                {"linux",
                 {{"namespaces", {{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}}},
                  // As containerd does for a pod with a Bidirectional mount.
                  {"rootfsPropagation", privileged ? "rshared" : "rslave"},
                  {"devices", devices},
                  // Privileged, as Kubernetes makes it: every device allowed.
                  {"resources", {{"devices", {{{"allow", privileged}, {"access", "rwm"}}}}}}}}};
    }

    static void Bind(Json& config, const std::string& source, const std::string& dest, bool ro = false,
                     bool shared = false) {
        Json options = {"rbind", ro ? "ro" : "rw"};
        if (shared) {
            options.push_back("rshared");
        }
        config["mounts"].push_back({{"destination", dest}, {"type", "bind"}, {"source", source}, {"options", options}});
    }

    // Runs `config` as container `id`: detached (its output in <dir>/<id>.log), or to its end.
    int Run(const std::string& id, const Json& config, bool detach, std::string* output = nullptr) {
        std::string bundle = dir_ + "/" + id;
        std::filesystem::create_directories(bundle);
        std::ofstream(bundle + "/config.json") << config.dump(2);
        containers_.push_back(id);
        int code = -1;
        std::string out = RunShell(Runtime() + " run " + std::string(detach ? "--detach " : "") + "--bundle " + bundle +
                                       " " + id + (detach ? " > " + dir_ + "/" + id + ".log" : ""),
                                   &code);
        if (output != nullptr) {
            *output = out;
        }
        return code;
    }

    static std::string Runtime() {
        const char* r = getenv("ZH_OCI_RUNTIME");
        return r != nullptr && *r != '\0' ? r : "runc";
    }

    std::string dir_;
    int ignored_ = 0;
    std::vector<std::string> containers_;
};

TEST_F(ImageTest, TheImageRunsTheNodePodAndAPythonPodUsesItsSocket) {
    // Built as tools/build-image.sh builds it, from this build's binaries.
    int code = -1;
    std::string out = RunShell(absl::StrCat(getenv("ZH_SOURCE_ROOT"), "/tools/build-image.sh --build-dir ",
                                            getenv("ZH_BUILD_ROOT"), " --out ", dir_, "/oci"),
                               &code);
    ASSERT_EQ(code, 0) << out;
    out = RunShell("umoci unpack --image " + dir_ + "/oci:" + ZEROHOP_VERSION + " " + dir_ + "/bundle", &code);
    ASSERT_EQ(code, 0) << out;
    Json image = Json::parse(Slurp(dir_ + "/bundle/config.json"));
    EXPECT_EQ(image["process"]["args"], Json({"zerohopd", "--config", "/etc/zerohop/zerohopd.yaml"}))
        << "the image's command is the daemon's, as deploy/zerohop-node.yaml expects";

    // The daemon's container.
    Json daemon = Config({"zerohopd", "--config", "/etc/zerohop/zerohopd.yaml"}, false);
    Bind(daemon, dir_ + "/etc/zerohopd.yaml", "/etc/zerohop/zerohopd.yaml", true);
    Bind(daemon, dir_ + "/etc/keys", "/etc/zerohop/keys", true);
    Bind(daemon, dir_ + "/run", "/run/zerohop");
    Bind(daemon, dir_ + "/store", "/var/lib/zerohop");
    ASSERT_EQ(Run("zh-image-daemon", daemon, true), 0) << Slurp(dir_ + "/zh-image-daemon.log");
    ClientOptions o;
    o.socket_path = dir_ + "/run/zerohop.sock";
    o.access_key = "image-team-a";
    absl::StatusOr<std::unique_ptr<Client>> team = absl::UnavailableError("not yet");
    for (int i = 0; i < 300 && !team.ok(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        team = Client::Connect(o);
    }
    ASSERT_TRUE(team.ok()) << team.status() << "\n" << Slurp(dir_ + "/zh-image-daemon.log");
    ASSERT_TRUE((*team)->Mkdir({.path = P("/demo/vols")}).ok());
    ASSERT_TRUE((*team)->Mkdir({.path = P("/demo/vols/a"), .mode = 0777}).ok());
    ASSERT_TRUE((*team)->PutObject({.path = P("/demo/vols/a/hello"), .mode = 0644}, "from a").ok());

    // The node plugin's container: privileged, /dev/fuse, the pods' directory shared.
    Json plugin = Config({"zerohop-csi", "--mode=all", "--endpoint=unix:///csi/csi.sock", "--node-id=image-node",
                          "--zerohop-socket=/run/zerohop/zerohop.sock", "--admin-key-file=/etc/zerohop/keys/admin-key",
                          "--state-dir=/var/lib/zerohop-csi"},
                         true);
    Bind(plugin, dir_ + "/etc/keys", "/etc/zerohop/keys", true);
    Bind(plugin, dir_ + "/run", "/run/zerohop");
    Bind(plugin, dir_ + "/csi", "/csi");
    Bind(plugin, dir_ + "/state", "/var/lib/zerohop-csi");
    Bind(plugin, dir_ + "/pods", "/var/lib/kubelet/pods", false, true);
    ASSERT_EQ(Run("zh-image-csi", plugin, true), 0) << Slurp(dir_ + "/zh-image-csi.log");
    auto channel = grpc::CreateChannel("unix://" + dir_ + "/csi/csi.sock", grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20)))
        << Slurp(dir_ + "/zh-image-csi.log");
    auto identity = v1::Identity::NewStub(channel);
    auto node = v1::Node::NewStub(channel);
    {
        grpc::ClientContext ctx;
        v1::ProbeResponse probe;
        ASSERT_TRUE(identity->Probe(&ctx, {}, &probe).ok());
        EXPECT_TRUE(probe.ready().value()) << "the plugin reaches the daemon of the other container";
    }

    // Kubelet publishes a volume into a pod's directory.
    std::string target = dir_ + "/pods/0f3c2a8e-6d4b-4f1e-9b7a-2c5d8e1f4a6b/volumes/kubernetes.io~csi/pvc-1/mount";
    std::filesystem::create_directories(std::filesystem::path(target).parent_path());
    std::string in_plugin = "/var/lib/kubelet/pods" + target.substr(dir_.size() + 5);
    v1::NodePublishVolumeRequest req;
    req.set_volume_id("demo/vols/a");
    req.set_target_path(in_plugin);
    req.mutable_volume_capability()->mutable_mount();
    req.mutable_volume_capability()->mutable_access_mode()->set_mode(
        v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
    (*req.mutable_secrets())["accessKey"] = "image-team-a";
    (*req.mutable_volume_context())["publish"] = "fuse,socket";
    (*req.mutable_volume_context())["csi.storage.k8s.io/pod.name"] = "python-socket";
    (*req.mutable_volume_context())["csi.storage.k8s.io/pod.namespace"] = "team-a";
    {
        grpc::ClientContext ctx;
        v1::NodePublishVolumeResponse r;
        grpc::Status s = node->NodePublishVolume(&ctx, req, &r);
        ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << Slurp(dir_ + "/zh-image-csi.log");
    }
    // On the host, as kubelet sees it: the files and the socket.
    EXPECT_EQ(Slurp(target + "/fs/hello"), "from a");
    EXPECT_TRUE(std::filesystem::exists(target + "/zerohop.sock"));

    // The Python example pod (deploy/examples/python-socket-pod.yaml): uid 1000, no key.
    Json pod = Config({"python3", "/usr/share/zerohop/python/zerohop_ctypes.py", "/demo"}, false, 1000);
    Bind(pod, target, "/run/zerohop");
    ASSERT_EQ(Run("zh-image-python", pod, false, &out), 0) << out;
    EXPECT_TRUE(absl::StrContains(out, "item: {'name': 'Bob', 'score': 1.5, 'visits': 1}")) << out;
    EXPECT_TRUE(absl::StrContains(out, "conditional put refused")) << out;
    EXPECT_EQ((*team)->Stat(P("/demo/vols/a/py-example/bob"))->type, ObjectType::kObject)
        << "what the pod wrote is below its volume's root";
    EXPECT_EQ((*team)->Stat(P("/demo/py-example")).status().code(), absl::StatusCode::kNotFound);

    {
        grpc::ClientContext ctx;
        v1::NodeUnpublishVolumeRequest un;
        un.set_volume_id("demo/vols/a");
        un.set_target_path(in_plugin);
        v1::NodeUnpublishVolumeResponse r;
        ASSERT_TRUE(node->NodeUnpublishVolume(&ctx, un, &r).ok());
    }
    EXPECT_FALSE(std::filesystem::exists(target)) << "unpublish removes the target it made";
}

}  // namespace
}  // namespace zerohop

// Volume sockets: an admin key publishes part of the namespace on a socket of its own, and a
// session on it needs no key and sees that part only (what the CSI plugin gives each pod).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon_fixture.h"
#include "zerohop/client.h"

namespace zerohop {
namespace {

using testing::Daemon;

Path P(std::string_view s) { return *Path::Parse(s); }

#define ASSERT_OK(expr)                                       \
    do {                                                      \
        const auto& _r = (expr);                              \
        ASSERT_TRUE(_r.ok()) << #expr << ": " << _r.status(); \
    } while (0)

class VolumeTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/zh-volume-XXXXXX";
        dir_ = mkdtemp(tmpl);
        daemon_ = std::make_unique<Daemon>(dir_);
        daemon_->Start();
        auto a = daemon_->Connect("admin-key");
        ASSERT_TRUE(a.ok()) << a.status();
        admin_ = std::move(*a);
        auto o = daemon_->Connect("rw-key");
        ASSERT_TRUE(o.ok()) << o.status();
        owner_ = std::move(*o);
        for (const char* d : {"/demo/vols", "/demo/vols/a", "/demo/vols/b"}) {
            ASSERT_OK(owner_->Mkdir({.path = P(d)}));
        }
        ASSERT_OK(owner_->PutObject({.path = P("/demo/vols/a/hello")}, "from a"));
        ASSERT_OK(owner_->PutObject({.path = P("/demo/vols/b/secret")}, "from b"));
        ASSERT_OK(owner_->PutObject({.path = P("/demo/top")}, "above the volumes"));
    }
    void TearDown() override {
        admin_.reset();
        owner_.reset();
        daemon_.reset();
        std::filesystem::remove_all(dir_);
    }

    static PublishVolumeRequest Volume(std::string id, std::string root, std::string key = "rw-key",
                                       bool read_only = false) {
        PublishVolumeRequest r;
        r.scope_id = std::move(id);
        r.root = P(root);
        r.access_key = std::move(key);
        r.read_only = read_only;
        return r;
    }

    // A client on a volume's socket, with no key and no configuration but the path.
    static absl::StatusOr<std::unique_ptr<Client>> Pod(const std::string& socket) {
        ClientOptions o;
        o.socket_path = socket;
        o.access_key = "";
        o.client_bytes = 1 << 20;
        o.daemon_bytes = 1 << 20;
        o.timeout = absl::Seconds(20);
        return Client::Connect(o);
    }

    std::string dir_;
    std::unique_ptr<Daemon> daemon_;
    std::unique_ptr<Client> admin_, owner_;
};

TEST_F(VolumeTest, APublishedSocketNeedsNoKeyAndShowsTheVolumeAsItsContainer) {
    auto published = admin_->PublishVolume(Volume("a", "/demo/vols/a"));
    ASSERT_OK(published);
    EXPECT_EQ(published->directory, dir_ + "/volumes/a");
    EXPECT_EQ(published->socket, dir_ + "/volumes/a/zerohop.sock");
    struct stat st;
    ASSERT_EQ(::stat(published->socket.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0666u) << "pods of any uid connect; the scope decides what they may do";

    auto pod = Pod(published->socket);
    ASSERT_OK(pod);
    EXPECT_EQ(*(*pod)->ListContainers(), std::vector<std::string>{"demo"});
    EXPECT_EQ(*(*pod)->GetObject({.path = P("/demo/hello")}), "from a");
    auto listing = (*pod)->List({.path = P("/demo")});
    ASSERT_OK(listing);
    ASSERT_EQ(listing->entries.size(), 1u);
    EXPECT_EQ(listing->entries[0].name, "hello");

    // What it writes lands below the volume's root.
    ASSERT_OK((*pod)->PutObject({.path = P("/demo/written")}, "by the pod"));
    ASSERT_OK((*pod)->Mkdir({.path = P("/demo/sub")}));
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/vols/a/written")}), "by the pod");
    EXPECT_EQ(owner_->Stat(P("/demo/vols/a/sub"))->type, ObjectType::kDirectory);
}

TEST_F(VolumeTest, AVolumeSessionCannotReachAnythingOutsideItsRoot) {
    auto a = admin_->PublishVolume(Volume("a", "/demo/vols/a"));
    auto b = admin_->PublishVolume(Volume("b", "/demo/vols/b"));
    ASSERT_OK(a);
    ASSERT_OK(b);
    auto pod = Pod(a->socket);
    ASSERT_OK(pod);
    Client& c = **pod;
    // Another container, the volume's siblings and parents: not there.
    EXPECT_EQ(c.Stat(P("/other")).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(c.GetObject({.path = P("/other/x")}).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(c.GetObject({.path = P("/demo/top")}).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(c.GetObject({.path = P("/demo/secret")}).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(c.Stat(P("/demo/vols")).status().code(), absl::StatusCode::kNotFound);
    // '..' cannot even be said (the daemon parses every path it is sent).
    EXPECT_FALSE(Path::Parse("/demo/../vols/b/secret").ok());
    // A symlink is a string: the daemon never follows it.
    ASSERT_OK(c.Symlink({.path = P("/demo/link"), .target = "../b/secret"}));
    EXPECT_EQ(*c.Readlink(P("/demo/link")), "../b/secret");
    EXPECT_FALSE(c.GetObject({.path = P("/demo/link")}).ok());
    // A rename cannot carry the other volume's data in, nor this one's out.
    EXPECT_EQ(c.Rename({.from = P("/demo/hello"), .to = P("/other/hello")}).code(), absl::StatusCode::kNotFound);
    // The root itself cannot be removed or moved away from under the pod.
    EXPECT_EQ(c.Rmdir(P("/demo")).code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(c.Delete({.path = P("/demo")}).code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(c.Rename({.from = P("/demo"), .to = P("/demo/x")}).code(), absl::StatusCode::kPermissionDenied);
    // Errors name paths as the pod does: the volume's place in the container stays unsaid.
    auto missing = c.GetObject({.path = P("/demo/nothing/here")});
    EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
    EXPECT_FALSE(absl::StrContains(missing.status().message(), "vols")) << missing.status();
    EXPECT_TRUE(absl::StrContains(missing.status().message(), "/demo/nothing")) << missing.status();
    // Nothing of b's was touched, and b's pod sees only b.
    auto pod_b = Pod(b->socket);
    ASSERT_OK(pod_b);
    EXPECT_EQ(*(*pod_b)->GetObject({.path = P("/demo/secret")}), "from b");
    EXPECT_EQ((*pod_b)->GetObject({.path = P("/demo/hello")}).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/vols/a/hello")}), "from a");
}

TEST_F(VolumeTest, AReadOnlyVolumeReadsAndRefusesEveryWrite) {
    auto published = admin_->PublishVolume(Volume("ro", "/demo/vols/a", "ro-key", /*read_only=*/true));
    ASSERT_OK(published);
    auto pod = Pod(published->socket);
    ASSERT_OK(pod);
    Client& c = **pod;
    EXPECT_EQ(*c.GetObject({.path = P("/demo/hello")}), "from a");
    EXPECT_EQ(c.PutObject({.path = P("/demo/x")}, "no").status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(c.Mkdir({.path = P("/demo/d")}).status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(c.Delete({.path = P("/demo/hello")}).code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(c.Append({.path = P("/demo/hello"), .data = "more"}).status().code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(*owner_->GetObject({.path = P("/demo/vols/a/hello")}), "from a");
}

TEST_F(VolumeTest, OnlyAnAdminKeyPublishesAndTheVolumesKeyMustGrantTheRoot) {
    EXPECT_EQ(owner_->PublishVolume(Volume("a", "/demo/vols/a")).status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(owner_->UnpublishVolume({"a"}).code(), absl::StatusCode::kPermissionDenied);
    auto unknown = admin_->PublishVolume(Volume("a", "/demo/vols/a", "no-such-key"));
    EXPECT_EQ(unknown.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_TRUE(absl::StrContains(unknown.status().message(), "unknown")) << unknown.status();
    // other-key grants container "other" only; ro-key grants demo read-only.
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/demo/vols/a", "other-key")).status().code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/demo/vols/a", "ro-key")).status().code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/volumes/a")) << "nothing is left of refused publishes";
    EXPECT_TRUE(admin_->PublishVolume(Volume("a", "/demo/vols/a", "ro-key", true)).ok());
}

TEST_F(VolumeTest, ABadRootOrScopeIdIsRefusedWithTheRightCode) {
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/demo/vols/missing")).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/nosuch/x")).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/demo/top")).status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/")).status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& id : std::vector<std::string>{"", "..", "a/b", "a b", std::string(65, 'x')}) {
        EXPECT_EQ(admin_->PublishVolume(Volume(id, "/demo/vols/a")).status().code(), absl::StatusCode::kInvalidArgument)
            << "id \"" << id << "\"";
    }
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/volumes/a"));
    // A whole container is a volume too.
    EXPECT_TRUE(admin_->PublishVolume(Volume("whole", "/demo")).ok());
}

TEST_F(VolumeTest, PublishingAgainIsIdempotentAndDifferentArgumentsAlreadyExist) {
    auto first = admin_->PublishVolume(Volume("a", "/demo/vols/a"));
    ASSERT_OK(first);
    auto pod = Pod(first->socket);
    ASSERT_OK(pod);
    auto again = admin_->PublishVolume(Volume("a", "/demo/vols/a"));
    ASSERT_OK(again);
    EXPECT_EQ(again->socket, first->socket);
    EXPECT_EQ(*(*pod)->GetObject({.path = P("/demo/hello")}), "from a") << "the same socket, still served";
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/demo/vols/b")).status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(admin_->PublishVolume(Volume("a", "/demo/vols/a", "ro-key", true)).status().code(),
              absl::StatusCode::kAlreadyExists);
}

TEST_F(VolumeTest, UnpublishClosesItsSessionsAndRemovesItsSocket) {
    auto published = admin_->PublishVolume(Volume("a", "/demo/vols/a"));
    ASSERT_OK(published);
    ClientOptions o;
    o.socket_path = published->socket;
    o.reconnect_timeout = absl::ZeroDuration();
    o.client_bytes = 1 << 20;
    o.daemon_bytes = 1 << 20;
    auto pod = Client::Connect(o);
    ASSERT_OK(pod);
    ASSERT_TRUE(admin_->UnpublishVolume({"a"}).ok());
    EXPECT_FALSE(std::filesystem::exists(published->socket));
    EXPECT_FALSE(std::filesystem::exists(published->directory));
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/scopes/a"));
    absl::Status s = absl::OkStatus();
    for (int i = 0; i < 200 && s.ok(); ++i) {  // the worker closes it a moment later
        s = (*pod)->Stat(P("/demo/hello")).status();
        if (s.ok()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    // Unpublishing what is not published is fine (the CSI plugin may retry).
    EXPECT_TRUE(admin_->UnpublishVolume({"a"}).ok());
    EXPECT_TRUE(admin_->UnpublishVolume({"never"}).ok());
    EXPECT_EQ(admin_->UnpublishVolume({"../x"}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(VolumeTest, ARestartedDaemonListensAgainAndItsPodsReconnectByThemselves) {
    auto published = admin_->PublishVolume(Volume("a", "/demo/vols/a"));
    ASSERT_OK(published);
    auto pod = Pod(published->socket);
    ASSERT_OK(pod);
    ASSERT_OK((*pod)->PutObject({.path = P("/demo/before")}, "1"));
    admin_.reset();
    owner_.reset();
    daemon_->Kill(SIGKILL);
    daemon_->Start();
    // The same socket path, without anyone publishing again; the pod's client redials it.
    auto read = (*pod)->GetObject({.path = P("/demo/before")});
    ASSERT_OK(read);
    EXPECT_EQ(*read, "1");
    EXPECT_GE((*pod)->reconnects(), 1u);
    EXPECT_EQ(*(*pod)->ListContainers(), std::vector<std::string>{"demo"}) << "still scoped after the restart";
    EXPECT_EQ((*pod)->GetObject({.path = P("/demo/top")}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(VolumeTest, ARestartDropsAVolumeWhoseKeyNoLongerGrantsIt) {
    ASSERT_OK(admin_->PublishVolume(Volume("a", "/demo/vols/a")));
    ASSERT_OK(admin_->PublishVolume(Volume("b", "/demo/vols/b", "ro-key", true)));
    admin_.reset();
    owner_.reset();
    daemon_->Kill(SIGTERM);
    // rw-key loses its right to write to demo.
    std::string config;
    {
        std::ifstream in(daemon_->config_path());
        config.assign(std::istreambuf_iterator<char>(in), {});
    }
    size_t at = config.find("{key: rw-key, containers: {demo: rw}}");
    ASSERT_NE(at, std::string::npos);
    config.replace(at, 37, "{key: rw-key, containers: {demo: r}} ");
    std::ofstream(daemon_->config_path()) << config;
    daemon_->Start();
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/volumes/a/zerohop.sock"));
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/scopes/a"));
    auto pod = Pod(dir_ + "/volumes/b/zerohop.sock");
    ASSERT_OK(pod);
    EXPECT_EQ(*(*pod)->GetObject({.path = P("/demo/secret")}), "from b");
}

TEST_F(VolumeTest, TheKeyIsNeverWrittenDown) {
    ASSERT_OK(admin_->PublishVolume(Volume("a", "/demo/vols/a")));
    std::ifstream in(dir_ + "/scopes/a");
    std::string record((std::istreambuf_iterator<char>(in)), {});
    EXPECT_FALSE(record.empty());
    EXPECT_FALSE(absl::StrContains(record, "rw-key"));
    struct stat st;
    ASSERT_EQ(::stat((dir_ + "/scopes/a").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0077, 0u) << "root's alone";
}

TEST_F(VolumeTest, MetricsAndLogsNameThePod) {
    PublishVolumeRequest r = Volume("a", "/demo/vols/a");
    r.pod_namespace = "team";
    r.pod_name = "fn-7f9c";
    r.pod_uid = "3b6a";
    r.service_account = "runner";
    auto published = admin_->PublishVolume(r);
    ASSERT_OK(published);
    auto pod = Pod(published->socket);
    ASSERT_OK(pod);
    std::string metrics = daemon_->Metrics();
    EXPECT_TRUE(absl::StrContains(metrics, "zerohop_volume_sessions_open{volume=\"a\",pod=\"team/fn-7f9c\"} 1"))
        << metrics;
    pod->reset();
    std::string after;
    for (int i = 0; i < 200; ++i) {
        after = daemon_->Metrics();
        if (absl::StrContains(after, "pod=\"team/fn-7f9c\"} 0")) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(absl::StrContains(after, "zerohop_volume_sessions_open{volume=\"a\",pod=\"team/fn-7f9c\"} 0")) << after;
}

TEST_F(VolumeTest, ASocketBelowAPathLongerThanSunPathIsReached) {
    auto published = admin_->PublishVolume(Volume("a", "/demo/vols/a"));
    ASSERT_OK(published);
    // Kubernetes' target paths are long: /var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount.
    std::string deep = dir_ +
                       "/var/lib/kubelet/pods/0f3c2a8e-6d4b-4f1e-9b7a-2c5d8e1f4a6b/volumes/kubernetes.io~csi/"
                       "pvc-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
    std::filesystem::create_directories(deep);
    std::filesystem::create_directory_symlink(published->directory, deep + "/mount");
    std::string socket = deep + "/mount/zerohop.sock";
    ASSERT_GT(socket.size(), 108u);
    auto pod = Pod(socket);
    ASSERT_OK(pod);
    EXPECT_EQ(*(*pod)->GetObject({.path = P("/demo/hello")}), "from a");
}

}  // namespace
}  // namespace zerohop

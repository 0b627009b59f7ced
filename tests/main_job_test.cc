// The README's main command (tools/run.sh) as a user runs it: it says a component started
// only once it answers, reports one that did not with that component's own error and a
// non-zero exit, and runs beside another instance with its own ZEROHOP_DATA.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon_fixture.h"

namespace zerohop::testing {
namespace {

bool FuseExpected() {
    const char* ci = getenv("CI");
    return (ci != nullptr && std::string(ci) == "true") || (geteuid() == 0 && access("/dev/fuse", F_OK) == 0);
}

// run.sh runs the plain build (build/): meson points LD_LIBRARY_PATH at this test's own
// build, whose libzerohop (ASan's, in the sanitizer run) the plain binaries must not load.
constexpr const char* kPlainEnv = "env -u LD_LIBRARY_PATH ";

class MainJobTest : public ::testing::Test {
protected:
    void SetUp() override {
        const char* src = getenv("ZH_SOURCE_ROOT");
        ASSERT_NE(src, nullptr) << "ZH_SOURCE_ROOT must name the source tree";
        src_ = src;
        char tmpl[] = "/tmp/zh-main-XXXXXX";
        dir_ = mkdtemp(tmpl);
        chmod(dir_.c_str(), 0755);  // other users reach the mounts below it
    }
    void TearDown() override {
        for (const std::string& data : started_) {
            int code = 0;
            // Stopped, and waited for: a server still exiting removes its own socket, which
            // would race the removal of the directory below.
            RunShell(absl::StrCat("fusermount3 -u ", data, "/mnt; umount -l ", data, "/mnt; pids=\"$(cat ", data,
                                  "/zerohopd.pid ", data, "/zerohop-fuse.pid 2>/dev/null)\"; kill $pids; ",
                                  "for p in $pids; do for i in $(seq 100); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; done"),
                     &code);
        }
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    // tools/run.sh with ZEROHOP_DATA=`data`: its output and exit code.
    std::string Run(const std::string& data, int* code) {
        started_.push_back(data);
        return RunShell(absl::StrCat(kPlainEnv, "ZEROHOP_DATA=", data, " ", src_, "/tools/run.sh"), code);
    }

    static std::string Line(const std::string& out, const std::string& prefix) {
        size_t at = out.find(prefix);
        return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
    }

    std::string src_, dir_;
    std::vector<std::string> started_;
};

TEST_F(MainJobTest, TwoInstancesRunSideBySideEachServingItsOwnNamespace) {
    std::string a = dir_ + "/a", b = dir_ + "/b";
    int code_a = -1, code_b = -1;
    std::string out_a = Run(a, &code_a);
    ASSERT_EQ(code_a, 0) << out_a;
    std::string out_b = Run(b, &code_b);
    ASSERT_EQ(code_b, 0) << out_b;
    for (const std::string* out : {&out_a, &out_b}) {
        EXPECT_TRUE(absl::StrContains(*out, "zerohopd started")) << *out;
        EXPECT_TRUE(absl::StrContains(*out, "metrics: http://127.0.0.1:")) << *out;
    }
    EXPECT_NE(Line(out_a, "metrics: "), Line(out_b, "metrics: ")) << "two daemons, two metrics ports";
    // Each serves its own namespace.
    ClientOptions o;
    o.access_key = "dev-key";
    o.socket_path = a + "/zerohop.sock";
    auto ca = Client::Connect(o);
    o.socket_path = b + "/zerohop.sock";
    auto cb = Client::Connect(o);
    ASSERT_TRUE(ca.ok() && cb.ok());
    ASSERT_TRUE((*ca)->PutObject({.path = *Path::Parse("/demo/only-in-a")}, "a").ok());
    EXPECT_FALSE((*cb)->Stat(*Path::Parse("/demo/only-in-a")).ok());
    // zh status says where each one's metrics are.
    int code = -1;
    std::string st = RunShell(absl::StrCat(kPlainEnv, "ZEROHOP_SOCKET=", b, "/zerohop.sock ZEROHOP_ACCESS_KEY=dev-key ",
                                           src_, "/build/tools/zh status"),
                              &code);
    EXPECT_EQ(code, 0) << st;
    EXPECT_TRUE(absl::StrContains(st, Line(out_b, "metrics: ").substr(9))) << st;
    if (!FuseExpected()) {
        GTEST_SKIP() << "no root or no /dev/fuse: the mounts are not checked";
    }
    for (const std::string* out : {&out_a, &out_b}) {
        EXPECT_TRUE(absl::StrContains(*out, "zerohop-fuse mounted the namespace")) << *out;
    }
    EXPECT_TRUE(std::filesystem::exists(a + "/mnt/demo/only-in-a"));
    EXPECT_FALSE(std::filesystem::exists(b + "/mnt/demo/only-in-a"));
    // Anyone may use the mount (allow_other), with the kernel's permission checks.
    std::string other = RunShell(absl::StrCat("setpriv --reuid=65534 --regid=65534 --clear-groups ls ", a,
                                              "/mnt/demo >/dev/null && echo listed"),
                                 &code);
    EXPECT_TRUE(absl::StrContains(other, "listed")) << other;
    std::string denied = RunShell(absl::StrCat("setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo x > ",
                                               a, "/mnt/demo/only-in-a' && echo wrote"),
                                  &code);
    EXPECT_FALSE(absl::StrContains(denied, "wrote")) << "nobody may not write root's 0644 file: " << denied;
    // Run again: both are found running and answering.
    std::string again = Run(a, &code_a);
    EXPECT_EQ(code_a, 0) << again;
    EXPECT_TRUE(absl::StrContains(again, "zerohopd already running")) << again;
    EXPECT_TRUE(absl::StrContains(again, "already mounted")) << again;
}

TEST_F(MainJobTest, AZerohopdThatCannotStartIsReportedWithItsOwnErrorAndANonZeroExit) {
    std::string data = dir_ + "/broken";
    std::filesystem::create_directories(data);
    std::ofstream(data + "/zerohopd.yaml") << "listen: /nonexistent-dir/zh.sock\nmetrics_port: 0\n"
                                           << "mounts: [{container: demo, options: {dir: " << data << "/store}}]\n"
                                           << "credentials: [{key: dev-key, containers: {demo: rw}}]\n";
    int code = -1;
    std::string out = Run(data, &code);
    EXPECT_NE(code, 0) << out;
    EXPECT_TRUE(absl::StrContains(out, "zerohopd did not start")) << out;
    EXPECT_TRUE(absl::StrContains(out, "listen: cannot listen on /nonexistent-dir/zh.sock")) << out;
    EXPECT_FALSE(absl::StrContains(out, "zerohopd started")) << out;
}

TEST_F(MainJobTest, AMetricsPortThatIsTakenNamesTheKeyAndTheFixUnlessAuto) {
    // A port someone else listens on.
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(s, 1), 0);
    ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
    int port = ntohs(addr.sin_port);
    auto config = [&](const std::string& metrics) {
        std::string path = absl::StrCat(dir_, "/", metrics == "auto" ? "auto" : "strict", ".yaml");
        std::ofstream(path) << "listen: " << dir_ << "/" << metrics << ".sock\nmetrics_port: " << metrics << "\n"
                            << "mounts: [{container: demo, options: {dir: " << dir_ << "/store-" << metrics
                            << "}}]\ncredentials: [{key: k, containers: {demo: rw}}]\n";
        return path;
    };
    const char* bin = getenv("ZEROHOPD");
    ASSERT_NE(bin, nullptr);
    int code = -1;
    std::string out = RunShell(absl::StrCat("timeout 20 ", bin, " --config ", config(std::to_string(port))), &code);
    EXPECT_EQ(code, 1) << out;
    EXPECT_TRUE(absl::StrContains(out, absl::StrCat("metrics_port ", port, ": cannot listen"))) << out;
    EXPECT_TRUE(absl::StrContains(out, "to auto to take any free port")) << out;
    ::close(s);
}

}  // namespace
}  // namespace zerohop::testing

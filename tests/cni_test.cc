// zerohop-cni on real network namespaces and real links, run as a runtime would run it.
//
// SR-IOV is played by a fake sysfs tree whose virtfn links name veth devices made here, so
// that every netlink move, rename and setting is real; macvlans sit on a veth master (never
// the host's own NIC). IPAM is Debian's host-local. Needs root; with CI=true it fails instead
// of skipping.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "daemon_fixture.h"

namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

struct Outcome {
    int code = -1;
    std::string out;
    Json json;  // `out` parsed (null if empty or not JSON)
    int cni_code() const { return json.is_object() && json.contains("code") ? json["code"].get<int>() : 0; }
};

class CniTest : public ::testing::Test {
protected:
    void SetUp() override {
        bool ci = getenv("CI") != nullptr && std::string(getenv("CI")) == "true";
        if (geteuid() != 0) {
            if (ci) {
                FAIL() << "CNI tests need root (network namespaces), and CI must run them";
            }
            GTEST_SKIP() << "needs root";
        }
        const char* bin = getenv("ZEROHOP_CNI");
        ASSERT_NE(bin, nullptr) << "ZEROHOP_CNI must name the zerohop-cni binary";
        bin_ = bin;
        ASSERT_TRUE(fs::exists("/usr/lib/cni/host-local")) << "containernetworking-plugins is not installed";
        p_ = absl::StrFormat("zc%04d", getpid() % 10000);
        char tmpl[] = "/tmp/zh-cni-XXXXXX";
        dir_ = mkdtemp(tmpl);
        state_ = dir_ + "/state";
        ipam_ = dir_ + "/ipam";
        sysfs_ = dir_ + "/sys";
        // A peer namespace: the other end of every wire, with an address to ping.
        Ns("peer");
    }

    void TearDown() override {
        for (const std::string& n : netns_) {
            Sh("ip netns del " + n);
        }
        for (const std::string& l : links_) {
            Sh("ip link del " + l);
        }
        if (!dir_.empty()) {
            fs::remove_all(dir_);
        }
    }

    int Sh(const std::string& cmd, std::string* out = nullptr) {
        int code = -1;
        std::string text = zerohop::testing::RunShell(cmd, &code);
        if (out != nullptr) {
            *out = text;
        }
        return code;
    }
    void MustSh(const std::string& cmd) {
        std::string out;
        ASSERT_EQ(Sh(cmd, &out), 0) << cmd << ": " << out;
    }

    // A network namespace of this test; its path.
    std::string Ns(const std::string& name) {
        std::string n = p_ + "-" + name;
        if (std::find(netns_.begin(), netns_.end(), n) == netns_.end()) {
            MustSh("ip netns add " + n);
            MustSh("ip -n " + n + " link set lo up");
            netns_.push_back(n);
        }
        return "/var/run/netns/" + n;
    }
    std::string NsName(const std::string& name) const { return p_ + "-" + name; }
    std::string L(const std::string& name) const { return p_ + name; }  // a link name of this test

    // A veth in the host whose peer sits in the peer namespace with `peer_ip` (if any).
    void Veth(const std::string& name, const std::string& peer_ip = "") {
        MustSh(absl::StrFormat("ip link add %s type veth peer name %sp", L(name), L(name)));
        links_.push_back(L(name));
        MustSh(absl::StrFormat("ip link set %sp netns %s", L(name), NsName("peer")));
        if (!peer_ip.empty()) {
            MustSh(absl::StrFormat("ip -n %s addr add %s dev %sp && ip -n %s link set %sp up", NsName("peer"), peer_ip,
                                   L(name), NsName("peer"), L(name)));
        }
    }

    // A PF with `n` VFs: sysfs links to PCI directories naming veth netdevs vf0..vfN-1, the
    // first with a peer at 10.61.0.1/24.
    void FakePf(int n, bool rdma = false) {
        Veth("pf");
        fs::create_directories(sysfs_ + "/class/net/" + L("pf") + "/device");
        for (int i = 0; i < n; ++i) {
            std::string pci = absl::StrFormat("0000:00:1%d.%d", i / 8, i % 8);
            std::string dev = sysfs_ + "/devices/" + pci;
            fs::create_directories(dev + "/net/" + L("vf" + std::to_string(i)));
            if (rdma) {
                fs::create_directories(dev + "/infiniband/mlx5_" + std::to_string(i));
            }
            fs::create_directory_symlink(dev, sysfs_ + "/class/net/" + L("pf") + "/device/virtfn" + std::to_string(i));
            Veth("vf" + std::to_string(i), i == 0 ? "10.61.0.1/24" : "");
        }
    }

    Json SriovConf(const std::string& version = "1.1.0") const {
        return {{"cniVersion", version},
                {"name", "fast"},
                {"type", "zerohop"},
                {"mode", "sriov"},
                {"pf", L("pf")},
                {"stateDir", state_},
                {"ipam", {{"type", "host-local"}, {"subnet", "10.61.0.0/24"}, {"rangeStart", "10.61.0.10"},
                          {"dataDir", ipam_}}}};
    }

    Json MacvlanConf(const std::string& version = "1.1.0") const {
        return {{"cniVersion", version},
                {"name", "fallback"},
                {"type", "zerohop"},
                {"mode", "macvlan"},
                {"master", L("m")},
                {"stateDir", state_},
                {"ipam", {{"type", "host-local"}, {"subnet", "10.62.0.0/24"}, {"rangeStart", "10.62.0.10"},
                          {"dataDir", ipam_},
                          {"routes", {{{"dst", "10.63.0.0/16"}, {"gw", "10.62.0.1"}}}}}}};
    }

    // Runs the plugin as a runtime does.
    Outcome Cni(const std::string& command, const Json& conf, const std::string& cid = "", const std::string& netns = "",
                const std::string& ifname = "", const std::vector<std::string>& env = {}) {
        return CniRaw(command, conf.dump(), cid, netns, ifname, env);
    }

    Outcome CniRaw(const std::string& command, const std::string& stdin_text, const std::string& cid,
                   const std::string& netns, const std::string& ifname, const std::vector<std::string>& extra) {
        std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=" + command,
                                        "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + netns, "CNI_IFNAME=" + ifname,
                                        "CNI_PATH=/usr/lib/cni", "ZEROHOP_CNI_SYSFS=" + sysfs_};
        for (const char* keep : {"ASAN_OPTIONS", "UBSAN_OPTIONS"}) {
            if (getenv(keep) != nullptr) {
                env.push_back(std::string(keep) + "=" + getenv(keep));
            }
        }
        env.insert(env.end(), extra.begin(), extra.end());
        // Close-on-exec: tests run plugins from several threads at once, and a plugin that
        // inherited another one's stdin pipe would keep it from ever seeing end of file.
        int in[2], out[2];
        EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
        EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(in[0], 0);
            dup2(out[1], 1);
            close(in[1]);
            close(out[0]);
            std::vector<char*> envp;
            for (std::string& e : env) {
                envp.push_back(e.data());
            }
            envp.push_back(nullptr);
            char* argv[] = {bin_.data(), nullptr};
            execve(bin_.c_str(), argv, envp.data());
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        (void)!write(in[1], stdin_text.data(), stdin_text.size());
        close(in[1]);
        Outcome o;
        char buf[4096];
        ssize_t n;
        while ((n = read(out[0], buf, sizeof buf)) > 0) {
            o.out.append(buf, static_cast<size_t>(n));
        }
        close(out[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        o.json = o.out.empty() ? Json() : Json::parse(o.out, nullptr, false);
        if (o.code != 0 && o.code != 137) {  // (137: killed on purpose, ZEROHOP_CNI_CRASH_AT)
            // Every failure is an error JSON with a code and a message.
            EXPECT_TRUE(o.json.is_object() && o.json.contains("code") && o.json.contains("msg") &&
                        o.json.contains("cniVersion"))
                << o.out;
        }
        return o;
    }

    // Everything on the host this test could have changed: its links (name, MAC, MTU, up or
    // down), the plugin's records and the IPAM reservations.
    std::string HostState() {
        std::string links;
        Sh("ip -o link show | grep ' " + p_ + "' | sed -e 's/^[0-9]*: //' -e 's/ link-netns.*//' -e 's/qlen.*//' | sort",
           &links);
        std::string files;
        for (const std::string& d : {state_ + "/attachments", ipam_}) {
            std::error_code ec;
            for (fs::recursive_directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
                std::string name = it->path().filename().string();
                if (it->is_regular_file() && name != "lock" && !absl::StartsWith(name, "last_reserved_ip")) {
                    files += it->path().string() + "\n";
                }
            }
        }
        return links + "--\n" + files;
    }

    // The pod's links other than lo.
    std::string PodLinks(const std::string& ns) {
        std::string out;
        Sh("ip -n " + NsName(ns) + " -o link show | grep -v ': lo:' | cut -d: -f2", &out);
        return out;
    }

    bool Ping(const std::string& ns, const std::string& ip) {
        return Sh("ip netns exec " + NsName(ns) + " ping -c 1 -W 3 " + ip) == 0;
    }

    std::string bin_, p_, dir_, state_, ipam_, sysfs_;
    std::vector<std::string> netns_, links_;
};

TEST_F(CniTest, VersionNamesBothSpecVersions) {
    Outcome o = Cni("VERSION", Json{{"cniVersion", "1.0.0"}});
    ASSERT_EQ(o.code, 0) << o.out;
    EXPECT_EQ(o.json["cniVersion"], "1.0.0");
    EXPECT_EQ(o.json["supportedVersions"], Json({"1.0.0", "1.1.0"}));
}

TEST_F(CniTest, BadInputIsAnErrorWithTheRightCodeAndLeavesNothing) {
    FakePf(1);
    Veth("m");
    std::string pod = Ns("pod");
    std::string before = HostState();
    auto code = [&](const std::string& command, const std::string& text, const std::string& netns = "",
                    const std::string& ifname = "net1", const std::string& cid = "c1") {
        Outcome o = CniRaw(command, text, cid, netns.empty() ? pod : netns, ifname, {});
        EXPECT_NE(o.code, 0) << text;
        return o.cni_code();
    };
    Json ok = SriovConf();
    EXPECT_EQ(code("ADD", "{not json"), 6);
    EXPECT_EQ(code("ADD", "[1,2]"), 6);
    EXPECT_EQ(code("ADD", ""), 6);
    EXPECT_EQ(code("FROB", ok.dump()), 4);
    EXPECT_EQ(code("", ok.dump()), 4);
    Json j = ok;
    j["cniVersion"] = "0.4.0";
    EXPECT_EQ(code("ADD", j.dump()), 1);
    j = ok;
    j.erase("mode");
    EXPECT_EQ(code("ADD", j.dump()), 7);
    j = ok;
    j["mode"] = "ipvlan";
    EXPECT_EQ(code("ADD", j.dump()), 7);
    j = ok;
    j.erase("pf");
    EXPECT_EQ(code("ADD", j.dump()), 7);
    j = ok;
    j["master"] = "eth0";  // a macvlan field in sriov mode
    EXPECT_EQ(code("ADD", j.dump()), 2);
    j = ok;
    j["mtu"] = "9000";
    EXPECT_EQ(code("ADD", j.dump()), 7);
    j = ok;
    j["mac"] = "01:00:5e:00:00:01";  // multicast
    EXPECT_EQ(code("ADD", j.dump()), 7);
    j = ok;
    j["ipam"] = {{"subnet", "10.0.0.0/8"}};  // no type
    EXPECT_EQ(code("ADD", j.dump()), 7);
    EXPECT_EQ(code("ADD", ok.dump(), "", "bad/name"), 4);
    EXPECT_EQ(code("ADD", ok.dump(), "", "a-name-longer-than-15"), 4);
    EXPECT_EQ(code("ADD", ok.dump(), "", "net1", "bad id!"), 4);
    EXPECT_EQ(code("ADD", ok.dump(), "/var/run/netns/" + p_ + "-nosuch"), 3);
    EXPECT_EQ(code("ADD", ok.dump(), "/etc/hostname"), 4);
    j = ok;
    j["pf"] = L("nopf");
    EXPECT_EQ(code("ADD", j.dump()), 7);
    j = ok;
    j["runtimeConfig"] = {{"deviceID", "0000:99:00.0"}};
    EXPECT_EQ(code("ADD", j.dump()), 7);
    j = MacvlanConf();
    j["master"] = L("nomaster");
    EXPECT_EQ(code("ADD", j.dump()), 7);
    // A PF whose VFs are all taken: one ADD takes the only one, the next has none.
    ASSERT_EQ(Cni("ADD", ok, "c1", pod, "net1").code, 0);
    std::string after_one = HostState();
    EXPECT_EQ(code("ADD", ok.dump(), Ns("pod2"), "net1", "c2"), 100);
    EXPECT_EQ(HostState(), after_one) << "a failed ADD left something behind";
    EXPECT_EQ(PodLinks("pod2"), "");
    ASSERT_EQ(Cni("DEL", ok, "c1", pod, "net1").code, 0);
    EXPECT_EQ(HostState(), before);
}

TEST_F(CniTest, MacvlanAddCheckDelCarriesPacketsAndReleasesEverything) {
    Veth("m", "10.62.0.1/24");
    MustSh("ip link set " + L("m") + " up");
    std::string pod = Ns("pod");
    std::string before = HostState();
    Json conf = MacvlanConf();
    conf["mtu"] = 1400;
    Outcome add = Cni("ADD", conf, "c1", pod, "net1");
    ASSERT_EQ(add.code, 0) << add.out;
    const Json& r = add.json;
    EXPECT_EQ(r["cniVersion"], "1.1.0");
    ASSERT_EQ(r["interfaces"].size(), 1u);
    EXPECT_EQ(r["interfaces"][0]["name"], "net1");
    EXPECT_EQ(r["interfaces"][0]["sandbox"], pod);
    EXPECT_EQ(r["interfaces"][0]["mtu"], 1400);
    ASSERT_EQ(r["ips"].size(), 1u);
    EXPECT_EQ(r["ips"][0]["address"], "10.62.0.10/24");
    EXPECT_EQ(r["ips"][0]["interface"], 0);
    EXPECT_EQ(r["routes"][0]["dst"], "10.63.0.0/16");
    std::string out;
    Sh("ip -n " + NsName("pod") + " -d link show net1", &out);
    EXPECT_TRUE(absl::StrContains(out, "macvlan mode bridge")) << out;
    EXPECT_TRUE(absl::StrContains(out, "mtu 1400")) << out;
    Sh("ip -n " + NsName("pod") + " route", &out);
    EXPECT_TRUE(absl::StrContains(out, "10.63.0.0/16 via 10.62.0.1 dev net1")) << out;
    EXPECT_TRUE(Ping("pod", "10.62.0.1")) << "no packet crossed the macvlan";

    Json check = conf;
    check["prevResult"] = r;
    Outcome ok = Cni("CHECK", check, "c1", pod, "net1");
    EXPECT_EQ(ok.code, 0) << ok.out;
    MustSh("ip -n " + NsName("pod") + " addr del 10.62.0.10/24 dev net1");
    Outcome bad = Cni("CHECK", check, "c1", pod, "net1");
    EXPECT_NE(bad.code, 0);
    EXPECT_TRUE(absl::StrContains(bad.json.value("msg", ""), "10.62.0.10")) << bad.out;
    EXPECT_EQ(Cni("CHECK", conf, "c1", pod, "net1").cni_code(), 7) << "CHECK without prevResult";
    EXPECT_EQ(Cni("ADD", conf, "c1", pod, "net1").cni_code(), 102) << "a second ADD of the same attachment";

    ASSERT_EQ(Cni("DEL", conf, "c1", pod, "net1").code, 0);
    EXPECT_EQ(PodLinks("pod"), "");
    EXPECT_EQ(HostState(), before) << "DEL left something behind";
    Outcome again = Cni("DEL", conf, "c1", pod, "net1");
    EXPECT_EQ(again.code, 0) << again.out;
    Outcome gone = Cni("DEL", conf, "c1", "", "net1");
    EXPECT_EQ(gone.code, 0) << "DEL without a netns: " << gone.out;
}

TEST_F(CniTest, SriovVfIsMovedRenamedConfiguredAndRestored) {
    FakePf(2, /*rdma=*/true);  // (this kernel has no RDMA netlink: the devices stay, said on stderr)
    std::string pod = Ns("pod");
    std::string own_mac;
    Sh("cat /sys/class/net/" + L("vf0") + "/address | tr -d '\\n'", &own_mac);
    std::string before = HostState();
    Json conf = SriovConf();
    conf["mtu"] = 1280;
    conf["mac"] = "02:00:00:00:61:10";
    Outcome add = Cni("ADD", conf, "c1", pod, "net1");
    ASSERT_EQ(add.code, 0) << add.out;
    const Json& iface = add.json["interfaces"][0];
    EXPECT_EQ(iface["name"], "net1");
    EXPECT_EQ(iface["mac"], "02:00:00:00:61:10");
    EXPECT_EQ(iface["mtu"], 1280);
    EXPECT_EQ(iface["pciID"], "0000:00:10.0");
    EXPECT_EQ(add.json["ips"][0]["address"], "10.61.0.10/24");
    std::string out;
    EXPECT_NE(Sh("ip link show " + L("vf0")), 0) << "the VF is still in the host";
    Sh("ip -n " + NsName("pod") + " link show net1", &out);
    EXPECT_TRUE(absl::StrContains(out, "mtu 1280") && absl::StrContains(out, "02:00:00:00:61:10") &&
                absl::StrContains(out, "UP"))
        << out;
    EXPECT_TRUE(Ping("pod", "10.61.0.1")) << "no packet crossed the VF";
    Json check = conf;
    check["prevResult"] = add.json;
    EXPECT_EQ(Cni("CHECK", check, "c1", pod, "net1").code, 0);

    ASSERT_EQ(Cni("DEL", conf, "c1", pod, "net1").code, 0);
    Sh("ip link show " + L("vf0"), &out);
    EXPECT_TRUE(absl::StrContains(out, own_mac) && absl::StrContains(out, "mtu 1500")) << out;
    EXPECT_EQ(PodLinks("pod"), "");
    EXPECT_EQ(HostState(), before);
    EXPECT_EQ(Cni("DEL", conf, "c1", pod, "net1").code, 0);
}

TEST_F(CniTest, DeviceIdChoosesTheVfAndVersion100HasNo11Fields) {
    FakePf(2);
    std::string pod = Ns("pod");
    Json conf = SriovConf("1.0.0");
    conf["runtimeConfig"] = {{"deviceID", "0000:00:10.1"}};
    Outcome add = Cni("ADD", conf, "c1", pod, "net1");
    ASSERT_EQ(add.code, 0) << add.out;
    EXPECT_EQ(add.json["cniVersion"], "1.0.0");
    EXPECT_FALSE(add.json["interfaces"][0].contains("pciID"));
    EXPECT_FALSE(add.json["interfaces"][0].contains("mtu"));
    EXPECT_NE(Sh("ip link show " + L("vf1")), 0) << "deviceID named vf1";
    EXPECT_EQ(Sh("ip link show " + L("vf0")), 0);
    // The same VF for another pod: taken.
    EXPECT_EQ(Cni("ADD", conf, "c2", Ns("pod2"), "net1").cni_code(), 100);
    // A chained plugin's result comes first, ours after it.
    Json chained = SriovConf("1.0.0");
    chained["prevResult"] = {{"cniVersion", "1.0.0"},
                             {"interfaces", {{{"name", "eth0"}, {"sandbox", Ns("pod2")}}}},
                             {"ips", {{{"address", "192.168.5.5/24"}, {"interface", 0}}}}};
    Outcome two = Cni("ADD", chained, "c2", Ns("pod2"), "net1");
    ASSERT_EQ(two.code, 0) << two.out;
    EXPECT_EQ(two.json["interfaces"].size(), 2u);
    EXPECT_EQ(two.json["interfaces"][1]["name"], "net1");
    EXPECT_EQ(two.json["ips"][0]["address"], "192.168.5.5/24");
    EXPECT_EQ(two.json["ips"][1]["interface"], 1);
    EXPECT_EQ(Cni("DEL", conf, "c1", pod, "net1").code, 0);
    EXPECT_EQ(Cni("DEL", chained, "c2", Ns("pod2"), "net1").code, 0);
}

TEST_F(CniTest, DelWorksWithoutPrevResultAfterThePodNamespaceIsGone) {
    FakePf(2);
    Veth("m");
    std::string before = HostState();
    ASSERT_EQ(Cni("ADD", SriovConf(), "c1", Ns("pod"), "net1").code, 0);
    ASSERT_EQ(Cni("ADD", MacvlanConf(), "c2", Ns("pod2"), "net1").code, 0);
    // As after a reboot: the namespaces are gone (with them the veth playing the VF, which a
    // real VF would survive); DEL is given only what a runtime still knows.
    MustSh("ip netns del " + NsName("pod") + " && ip netns del " + NsName("pod2"));
    netns_.erase(std::remove(netns_.begin(), netns_.end(), NsName("pod")), netns_.end());
    netns_.erase(std::remove(netns_.begin(), netns_.end(), NsName("pod2")), netns_.end());
    Outcome a = Cni("DEL", SriovConf(), "c1", "", "net1");
    EXPECT_EQ(a.code, 0) << a.out;
    Outcome b = Cni("DEL", MacvlanConf(), "c2", "/var/run/netns/" + NsName("pod2"), "net1");
    EXPECT_EQ(b.code, 0) << b.out;
    std::string now = HostState();
    EXPECT_FALSE(absl::StrContains(now, state_)) << "records left: " << now;
    EXPECT_FALSE(absl::StrContains(now, ipam_)) << "IPAM reservations left: " << now;
}

TEST_F(CniTest, ParallelAddsNeverTakeTheSameVf) {
    constexpr int kVfs = 4;
    FakePf(kVfs);
    for (int i = 0; i <= kVfs; ++i) {
        Ns("pod" + std::to_string(i));
    }
    std::vector<Outcome> outcomes(kVfs + 1);
    std::vector<std::thread> threads;
    for (int i = 0; i <= kVfs; ++i) {
        threads.emplace_back([&, i] {
            outcomes[i] = Cni("ADD", SriovConf(), "c" + std::to_string(i), Ns("pod" + std::to_string(i)), "net1");
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    std::set<std::string> vfs, ips;
    int failed = 0;
    for (const Outcome& o : outcomes) {
        if (o.code != 0) {
            EXPECT_EQ(o.cni_code(), 100) << o.out;
            ++failed;
            continue;
        }
        vfs.insert(o.json["interfaces"][0]["pciID"].get<std::string>());
        ips.insert(o.json["ips"][0]["address"].get<std::string>());
    }
    EXPECT_EQ(failed, 1) << "five ADDs for four VFs";
    EXPECT_EQ(vfs.size(), static_cast<size_t>(kVfs)) << "two ADDs took the same VF";
    EXPECT_EQ(ips.size(), static_cast<size_t>(kVfs));
    for (int i = 0; i <= kVfs; ++i) {
        EXPECT_EQ(Cni("DEL", SriovConf(), "c" + std::to_string(i), Ns("pod" + std::to_string(i)), "net1").code, 0);
    }
}

TEST_F(CniTest, GcReleasesOnlyTheAttachmentsNotValidOfItsNetwork) {
    FakePf(2);
    Veth("m");
    ASSERT_EQ(Cni("ADD", SriovConf(), "keep", Ns("pod1"), "net1").code, 0);
    ASSERT_EQ(Cni("ADD", SriovConf(), "stale", Ns("pod2"), "net1").code, 0);
    ASSERT_EQ(Cni("ADD", MacvlanConf(), "other", Ns("pod3"), "net1").code, 0);  // network "fallback"
    Json gc = SriovConf();
    gc["cni.dev/valid-attachments"] = {{{"containerID", "keep"}, {"ifname", "net1"}}};
    Outcome o = Cni("GC", gc);
    ASSERT_EQ(o.code, 0) << o.out;
    EXPECT_NE(PodLinks("pod1"), "") << "GC took a valid attachment";
    EXPECT_EQ(PodLinks("pod2"), "") << "GC left a stale attachment";
    EXPECT_NE(PodLinks("pod3"), "") << "GC touched another network's attachment";
    EXPECT_EQ(Sh("ip link show " + L("vf1")), 0) << "the stale VF is not back in the host";
    std::string state = HostState();
    EXPECT_TRUE(absl::StrContains(state, "keep:net1.json"));
    EXPECT_FALSE(absl::StrContains(state, "stale:net1.json"));
    EXPECT_EQ(Cni("GC", SriovConf("1.0.0")).cni_code(), 1) << "GC is a 1.1.0 command";
    EXPECT_EQ(Cni("DEL", SriovConf(), "keep", Ns("pod1"), "net1").code, 0);
    EXPECT_EQ(Cni("DEL", MacvlanConf(), "other", Ns("pod3"), "net1").code, 0);
}

TEST_F(CniTest, StatusSaysWhetherAddsCanSucceed) {
    FakePf(1);
    Veth("m");
    EXPECT_EQ(Cni("STATUS", SriovConf()).code, 0);
    EXPECT_EQ(Cni("STATUS", MacvlanConf()).code, 0);
    Json j = SriovConf();
    j["pf"] = L("nopf");
    EXPECT_EQ(Cni("STATUS", j).cni_code(), 50);
    j = MacvlanConf();
    j["ipam"]["type"] = "no-such-ipam";
    EXPECT_EQ(Cni("STATUS", j).cni_code(), 50);
    EXPECT_EQ(Cni("STATUS", SriovConf("1.0.0")).cni_code(), 1);
}

TEST_F(CniTest, AFailureAtAnyStepOfAddLeavesTheHostAsItWas) {
    FakePf(1);
    Veth("m");
    std::string pod = Ns("pod");
    std::string before = HostState();
    Json sriov = SriovConf();
    sriov["mac"] = "02:00:00:00:61:20";
    sriov["mtu"] = 1300;
    for (const char* step : {"ipam", "claim", "vf-settings", "temp-netns", "move-to-temp", "rename", "configure",
                             "move-to-pod", "up", "addresses", "routes", "record"}) {
        Outcome o = Cni("ADD", sriov, "c1", pod, "net1", {std::string("ZEROHOP_CNI_FAIL_AT=") + step});
        EXPECT_EQ(o.code, 1) << step;
        EXPECT_TRUE(absl::StrContains(o.json.value("msg", ""), step)) << o.out;
        EXPECT_EQ(HostState(), before) << "after a failure at " << step;
        EXPECT_EQ(PodLinks("pod"), "") << "after a failure at " << step;
    }
    for (const char* step : {"ipam", "create", "up", "addresses", "routes", "record"}) {
        Outcome o = Cni("ADD", MacvlanConf(), "c1", pod, "net1", {std::string("ZEROHOP_CNI_FAIL_AT=") + step});
        EXPECT_EQ(o.code, 1) << step;
        EXPECT_EQ(HostState(), before) << "after a failure at " << step;
        EXPECT_EQ(PodLinks("pod"), "") << "after a failure at " << step;
    }
    // A real refusal: a veth has no VF controls, so a VLAN on its "VFs" fails in the kernel.
    Json vlan = SriovConf();
    vlan["vlan"] = 100;
    Outcome o = Cni("ADD", vlan, "c1", pod, "net1");
    EXPECT_EQ(o.cni_code(), 101) << o.out;
    EXPECT_EQ(HostState(), before);
    // And after all that, the same ADD works.
    EXPECT_EQ(Cni("ADD", sriov, "c1", pod, "net1").code, 0);
    EXPECT_EQ(Cni("DEL", sriov, "c1", pod, "net1").code, 0);
    EXPECT_EQ(HostState(), before);
}

TEST_F(CniTest, AnAddKilledHalfWayIsCleanedUpByTheNextAddOrDel) {
    FakePf(1);
    std::string pod = Ns("pod");
    std::string before = HostState();
    Outcome killed = Cni("ADD", SriovConf(), "c1", pod, "net1", {"ZEROHOP_CNI_CRASH_AT=addresses"});
    EXPECT_EQ(killed.code, 137);
    EXPECT_NE(PodLinks("pod"), "") << "the VF should be in the pod, as the killed ADD left it";
    // A runtime retrying the ADD gets a clean attachment.
    Outcome again = Cni("ADD", SriovConf(), "c1", pod, "net1");
    ASSERT_EQ(again.code, 0) << again.out;
    EXPECT_EQ(again.json["ips"].size(), 1u);
    EXPECT_TRUE(Ping("pod", "10.61.0.1"));
    EXPECT_EQ(Cni("DEL", SriovConf(), "c1", pod, "net1").code, 0);
    EXPECT_EQ(HostState(), before);
    // One killed the same way and DELeted (what a runtime does after a failed ADD).
    EXPECT_EQ(Cni("ADD", SriovConf(), "c2", pod, "net1", {"ZEROHOP_CNI_CRASH_AT=routes"}).code, 137);
    EXPECT_EQ(Cni("DEL", SriovConf(), "c2", pod, "net1").code, 0);
    EXPECT_EQ(PodLinks("pod"), "");
    EXPECT_EQ(HostState(), before);
}

}  // namespace

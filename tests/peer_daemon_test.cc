// Two zerohopd daemons, one a data node serving a container to the other through its
// peer_listen, the other mounting it as a `peer` container: objects, items and streams
// written on one node are read on the other; a third daemon shares the data node; the data node killed and restarted under load
// loses nothing acknowledged and the caller's clients carry on; a wrong key is refused at
// start; and the same across a real network hop (two network namespaces joined by a veth
// pair, the link cut and restored) when run as root.

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon_fixture.h"
#include "test_data.h"
#include "zerohop/client.h"

namespace zerohop::testing {
namespace {

const std::string kPeerSecret = "peer-secret-shared-by-nodes-0123";

Path P(std::string_view s) { return *Path::Parse(s); }

// A directory `name` below `t`, made.
std::string Sub(const TempDir& t, const std::string& name) {
    std::string p = t.path() + "/" + name;
    std::filesystem::create_directories(p);
    return p;
}

// The data node: containers demo and shared on its store; node-a may write shared.
void WriteDataNodeConfig(const Daemon& d, const std::string& address, int port) {
    std::ofstream(d.config_path()) << "listen: " << d.socket() << "\n"
                                   << "metrics_port: 0\nworkers: 2\nlog_level: warning\n"
                                   << "mounts:\n"
                                   << "  - {container: demo, options: {dir: " << d.dir() << "/store}}\n"
                                   << "  - {container: shared, options: {dir: " << d.dir() << "/store}}\n"
                                   << "credentials:\n"
                                   << "  - {key: rw-key, containers: {demo: rw, shared: rw}}\n"
                                   << "peer_listen: {address: \"" << address << "\", port: " << port << "}\n"
                                   << "peer_keys:\n"
                                   << "  - {id: node-a, secret: " << kPeerSecret << ", containers: {shared: rw}}\n";
}

// The caller: its own demo, and `remote`, the data node's shared.
void WriteCallerConfig(const Daemon& d, const std::string& host, int port, const std::string& secret,
                       int timeout_ms = 5000) {
    std::ofstream(d.config_path()) << "listen: " << d.socket() << "\n"
                                   << "metrics_port: " << d.metrics_port() << "\nworkers: 2\nlog_level: warning\n"
                                   << "mounts:\n"
                                   << "  - {container: demo, options: {dir: " << d.dir() << "/store}}\n"
                                   << "  - container: remote\n"
                                   << "    backend: peer\n"
                                   << "    options: {url: \"peer://" << host << ":" << port
                                   << "/shared\", key_id: node-a, secret: " << secret
                                   << ", timeout_ms: " << timeout_ms << "}\n"
                                   << "credentials:\n"
                                   << "  - {key: rw-key, containers: {demo: rw, remote: rw}}\n";
}

class PeerDaemonTest : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = FreeLoopbackPort();
        data_ = std::make_unique<Daemon>(Sub(tmp_, "data"));
        WriteDataNodeConfig(*data_, "127.0.0.1", port_);
        data_->Start();
        caller_ = std::make_unique<Daemon>(Sub(tmp_, "caller"));
        WriteCallerConfig(*caller_, "127.0.0.1", port_, kPeerSecret);
        caller_->Start();
    }

    TempDir tmp_{"zh-peer"};
    int port_ = 0;
    std::unique_ptr<Daemon> data_;
    std::unique_ptr<Daemon> caller_;
};

TEST_F(PeerDaemonTest, WhatOneNodeWritesTheOtherReads) {
    auto a = caller_->Connect("rw-key");
    auto b = data_->Connect("rw-key");
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    // Objects, small and large (a large get lands in the caller's shared region).
    std::string big = Pattern(3 << 20, 5);
    ASSERT_TRUE((*a)->PutObject({.path = P("/remote/small")}, "hello from a").ok());
    ASSERT_TRUE((*a)->PutObject({.path = P("/remote/big")}, big).ok());
    auto small = (*b)->GetObject({.path = P("/shared/small")});
    ASSERT_TRUE(small.ok()) << small.status();
    EXPECT_EQ(*small, "hello from a");
    auto got = (*a)->GetObject({.path = P("/remote/big")});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(*got == big);
    // A ranged get (a file read) lands: the caller's daemon receives its bytes straight into
    // the client's session region.
    auto range = (*a)->GetObject({.path = P("/remote/big"), .offset = 1 << 20, .length = 2 << 20});
    ASSERT_TRUE(range.ok()) << range.status();
    EXPECT_TRUE(*range == big.substr(1 << 20, 2 << 20));
    auto received_into = [&] {
        std::string m = caller_->Metrics();
        const std::string name = "zerohop_peer_received_into_landing_bytes_total ";
        size_t at = m.find("\n" + name);
        return at == std::string::npos ? -1.0 : std::stod(m.substr(at + 1 + name.size()));
    };
    EXPECT_GE(received_into(), 1 << 20) << caller_->Metrics();
    // Larger than a peer frame (16 MiB): the put travels in pieces.
    std::string huge = Pattern(40 << 20, 9);
    auto put = (*a)->PutObject({.path = P("/remote/huge")}, huge);
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_EQ(put->size, huge.size());
    auto huge_back = (*b)->GetObject({.path = P("/shared/huge")});
    ASSERT_TRUE(huge_back.ok()) << huge_back.status();
    EXPECT_TRUE(*huge_back == huge);
    auto huge_remote = (*a)->GetObject({.path = P("/remote/huge")});
    ASSERT_TRUE(huge_remote.ok()) << huge_remote.status();
    EXPECT_TRUE(*huge_remote == huge) << "read back through the peer: " << huge_remote->size() << " bytes";
    // And back: what the data node writes, the caller sees.
    ASSERT_TRUE((*b)->PutObject({.path = P("/shared/from-b")}, "hello from b").ok());
    auto back = (*a)->GetObject({.path = P("/remote/from-b")});
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, "hello from b");
    // Items, with an update expression.
    ASSERT_TRUE((*a)->Mkdir({.path = P("/remote/t")}).ok());
    ASSERT_TRUE((*a)->PutItem({.path = P("/remote/t/alice"), .attributes = {{"n", Value::Int64(1)}}}).ok());
    ASSERT_TRUE((*a)->UpdateItem({.path = P("/remote/t/alice"), .update = "n = n + 41"}).ok());
    auto item = (*b)->GetItem({.path = P("/shared/t/alice")});
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->attributes.at("n"), Value::Int64(42));
    // Streams.
    ASSERT_TRUE((*a)->CreateStream({.path = P("/remote/s"), .shard_count = 1}).ok());
    ASSERT_TRUE((*a)->PutRecords({.path = P("/remote/s"), .records = {{.data = "r1"}, {.data = "r2"}}}).ok());
    auto recs = (*b)->GetRecords({.path = P("/shared/s"), .location = {.shard = 0, .sequence = 1}});
    ASSERT_TRUE(recs.ok()) << recs.status();
    ASSERT_EQ(recs->records.size(), 2u);
    EXPECT_EQ(recs->records[1].data, "r2");
    // Listings and errors name the caller's container.
    auto list = (*a)->List({.path = P("/remote")});
    ASSERT_TRUE(list.ok()) << list.status();
    EXPECT_EQ(list->entries.size(), 6u);  // small, big, huge, from-b, t, s
    auto missing = (*a)->Stat(P("/remote/nope"));
    EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
    EXPECT_NE(missing.status().message().find("/remote/nope"), std::string_view::npos) << missing.status();
    EXPECT_EQ(missing.status().message().find("/shared"), std::string_view::npos) << missing.status();
    // The caller's metrics say how its peer is reached.
    std::string metrics = caller_->Metrics();
    EXPECT_NE(metrics.find(absl::StrFormat("zerohop_peer_up{mount=\"remote\",peer=\"127.0.0.1:%d\",transport=\"tcp\"} 1",
                                           port_)),
              std::string::npos)
        << metrics;
    // The data node's other container is not the caller's to reach.
    auto demo = (*b)->PutObject({.path = P("/demo/private")}, "b only");
    ASSERT_TRUE(demo.ok());
    EXPECT_EQ((*a)->Stat(P("/demo/private")).status().code(), absl::StatusCode::kNotFound)
        << "the caller's demo is its own";
}

// The data node dies (SIGKILL) and comes back under a writing client: every write it
// acknowledged is there afterwards, writes during the outage fail cleanly (or wait), and
// the client carries on without reconnecting by hand.
TEST_F(PeerDaemonTest, ADataNodeKilledUnderLoadLosesNothingAcknowledged) {
    auto a = caller_->Connect("rw-key");
    ASSERT_TRUE(a.ok()) << a.status();
    std::map<int, bool> acknowledged;
    std::atomic<bool> stop{false};
    std::atomic<int> failed{0};
    std::thread writer([&] {
        for (int i = 0; !stop.load(); ++i) {
            auto r = (*a)->PutObject({.path = P(absl::StrCat("/remote/k", i))}, absl::StrCat("v", i));
            acknowledged[i] = r.ok();
            if (!r.ok()) {
                ++failed;
                EXPECT_TRUE(absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status())) << r.status();
            }
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    data_->Kill(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    data_->Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    stop = true;
    writer.join();
    auto b = data_->Connect("rw-key");
    ASSERT_TRUE(b.ok());
    int ok = 0;
    for (const auto& [i, acked] : acknowledged) {
        if (!acked) {
            continue;
        }
        ++ok;
        auto got = (*b)->GetObject({.path = P(absl::StrCat("/shared/k", i))});
        ASSERT_TRUE(got.ok()) << "acknowledged write " << i << " lost: " << got.status();
        EXPECT_EQ(*got, absl::StrCat("v", i));
    }
    EXPECT_GT(ok, 10) << "writes before and after the outage";
    // The last writes went through the new connection.
    ASSERT_FALSE(acknowledged.empty());
    EXPECT_TRUE(acknowledged.rbegin()->second) << "the caller did not reconnect";
    // A read goes through now.
    auto r = (*a)->GetObject({.path = P(absl::StrCat("/remote/k", acknowledged.rbegin()->first))});
    EXPECT_TRUE(r.ok()) << r.status();
    // The metrics count the connection made again.
    std::string metrics = caller_->Metrics();
    std::string line = absl::StrFormat("zerohop_peer_connects_total{mount=\"remote\",peer=\"127.0.0.1:%d\",transport=\"tcp\"} ", port_);
    size_t at = metrics.find(line);
    ASSERT_NE(at, std::string::npos) << metrics;
    EXPECT_GE(std::atoi(metrics.c_str() + at + line.size()), 2) << metrics.substr(at, 120);
}

// Three daemons: two callers share one data node's container. Counters both update with
// expressions add up exactly; what one writes the other reads.
TEST_F(PeerDaemonTest, TwoCallersShareOneDataNode) {
    auto third = std::make_unique<Daemon>(Sub(tmp_, "third"));
    WriteCallerConfig(*third, "127.0.0.1", port_, kPeerSecret);
    third->Start();
    auto a = caller_->Connect("rw-key");
    auto c = third->Connect("rw-key");
    ASSERT_TRUE(a.ok() && c.ok());
    ASSERT_TRUE((*a)->Mkdir({.path = P("/remote/counters")}).ok());
    ASSERT_TRUE((*a)->PutItem({.path = P("/remote/counters/n"), .attributes = {{"n", Value::Int64(0)}}}).ok());
    constexpr int kEach = 200;
    auto bump = [](Client* client) {
        for (int i = 0; i < kEach; ++i) {
            auto r = client->UpdateItem({.path = P("/remote/counters/n"), .update = "n = n + 1"});
            ASSERT_TRUE(r.ok()) << r.status();
        }
    };
    std::thread ta(bump, a->get()), tc(bump, c->get());
    ta.join();
    tc.join();
    auto item = (*c)->GetItem({.path = P("/remote/counters/n")});
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->attributes.at("n"), Value::Int64(2 * kEach));
    ASSERT_TRUE((*c)->PutObject({.path = P("/remote/from-c")}, "written on the third node").ok());
    EXPECT_EQ((*a)->GetObject({.path = P("/remote/from-c")}).value_or(""), "written on the third node");
}

TEST(PeerDaemonStart, AWrongPeerKeyIsRefusedAtStart) {
    TempDir tmp("zh-peer");
    int port = FreeLoopbackPort();
    Daemon data(Sub(tmp, "data"));
    WriteDataNodeConfig(data, "127.0.0.1", port);
    data.Start();
    Daemon caller(Sub(tmp, "caller"));
    WriteCallerConfig(caller, "127.0.0.1", port, kPeerSecret + "-wrong");
    int code = 0;
    std::string out = RunShell(absl::StrCat("timeout 20 ", getenv("ZEROHOPD"), " --config ", caller.config_path()), &code);
    EXPECT_NE(code, 0) << out;
    EXPECT_NE(out.find("does not prove it holds key node-a"), std::string::npos) << out;
    EXPECT_NE(out.find("remote"), std::string::npos) << "the message names the mount: " << out;
}

// The data node in a network namespace of its own, joined to ours by a veth pair: a real
// network hop. Cutting the link makes calls fail with Unavailable at their deadline (not
// hang); restoring it brings them back.
TEST(PeerDaemonNetns, AcrossAVethLinkCutAndRestored) {
    bool ci = getenv("CI") != nullptr && std::string(getenv("CI")) == "true";
    if (geteuid() != 0) {
        if (ci) {
            FAIL() << "CI runs as root: network namespaces must be tested";
        }
        GTEST_SKIP() << "needs root (network namespaces)";
    }
    std::string ns = absl::StrFormat("zh-peer-%d", getpid());
    std::string host_if = absl::StrFormat("zhp%d", getpid() % 100000);
    std::string ns_if = host_if + "n";
    auto sh = [](const std::string& cmd) {
        int code = 0;
        std::string out = RunShell(cmd, &code);
        EXPECT_EQ(code, 0) << cmd << ": " << out;
        return code == 0;
    };
    ASSERT_TRUE(sh("ip netns add " + ns));
    struct Cleanup {
        std::string ns, host_if;
        ~Cleanup() {
            int code;
            RunShell("ip link del " + host_if + " ; ip netns del " + ns, &code);
        }
    } cleanup{ns, host_if};
    ASSERT_TRUE(sh(absl::StrFormat("ip link add %s type veth peer name %s", host_if, ns_if)));
    ASSERT_TRUE(sh(absl::StrFormat("ip link set %s netns %s", ns_if, ns)));
    ASSERT_TRUE(sh(absl::StrFormat("ip addr add 10.231.7.1/24 dev %s && ip link set %s up", host_if, host_if)));
    ASSERT_TRUE(sh(absl::StrFormat("ip netns exec %s sh -c 'ip addr add 10.231.7.2/24 dev %s && ip link set %s up && "
                                   "ip link set lo up'",
                                   ns, ns_if, ns_if)));
    TempDir tmp("zh-peer");
    Daemon data(Sub(tmp, "data"));
    WriteDataNodeConfig(data, "10.231.7.2", 7464);
    data.set_netns(ns);
    data.Start();  // (its unix socket is in the shared file system: the test reaches it)
    Daemon caller(Sub(tmp, "caller"));
    WriteCallerConfig(caller, "10.231.7.2", 7464, kPeerSecret, /*timeout_ms=*/1500);
    caller.Start();
    auto a = caller.Connect("rw-key");
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE((*a)->PutObject({.path = P("/remote/across")}, "over veth").ok());
    auto b = data.Connect("rw-key");
    ASSERT_TRUE(b.ok());
    auto got = (*b)->GetObject({.path = P("/shared/across")});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, "over veth");

    // The link goes down: a call fails at its deadline with a clear error, never hangs.
    ASSERT_TRUE(sh(absl::StrFormat("ip link set %s down", host_if)));
    absl::Time start = absl::Now();
    auto cut = (*a)->Stat(P("/remote/across"));
    EXPECT_FALSE(cut.ok());
    EXPECT_TRUE(absl::IsUnavailable(cut.status()) || absl::IsDeadlineExceeded(cut.status())) << cut.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
    // Restored: calls go through again (a new connection once the old one is given up).
    ASSERT_TRUE(sh(absl::StrFormat("ip link set %s up", host_if)));
    absl::Time until = absl::Now() + absl::Seconds(30);
    absl::Status last;
    for (;;) {
        auto r = (*a)->Stat(P("/remote/across"));
        if (r.ok()) {
            break;
        }
        last = r.status();
        ASSERT_LT(absl::Now(), until) << "no recovery after the link came back: " << last;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE((*a)->PutObject({.path = P("/remote/after")}, "after the cut").ok());
    EXPECT_EQ((*b)->GetObject({.path = P("/shared/after")}).value_or(""), "after the cut");
}

}  // namespace
}  // namespace zerohop::testing

// A zerohopd whose peers reach it by RDMA: the daemon runs in this process with the node's
// connection manager set to a simulated one (rdma/sim_verbs.h), serving its store to peers
// (peer_listen) and mounting it back as a `peer` container, so that every call on that mount
// crosses the peer transport over a simulated RC queue pair. A client's get on the mount
// lands in its own session region, written there by the data node's side (RDMA WRITE into
// the region registered once), with no copy in the calling daemon. The simulation proves
// the path, not its speed.

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "config/config.h"
#include "daemon_fixture.h"
#include "peer/peer.h"
#include "rdma/sim_verbs.h"
#include "server/server.h"
#include "test_data.h"
#include "zerohop/client.h"

namespace zerohop::testing {
namespace {

const std::string kPeerSecret = "peer-secret-shared-by-nodes-0123";

class PeerRdmaDaemonTest : public ::testing::Test {
protected:
    void SetUp() override {
        SetNodeConnectionManager(&cm_);
        char tmpl[] = "/tmp/zh-peer-rdma-XXXXXX";
        dir_ = mkdtemp(tmpl);
        port_ = FreeLoopbackPort();
        socket_ = dir_ + "/zh.sock";
        std::string yaml = "listen: " + socket_ + "\nworkers: 2\nmetrics_port: 0\nlog_level: info\n" +
                           "mounts:\n"
                           "  - {container: local, options: {dir: " + dir_ + "/store}}\n"
                           "  - container: remote\n"
                           "    backend: peer\n"
                           "    options: {url: \"peer://127.0.0.1:" + std::to_string(port_) +
                           "/local\", key_id: node-a, secret: " + kPeerSecret + ", timeout_ms: 10000}\n" +
                           "credentials:\n  - {key: rw-key, containers: {local: rw, remote: rw}}\n" +
                           "peer_listen: {address: \"127.0.0.1\", port: " + std::to_string(port_) + "}\n" +
                           "peer_keys:\n  - {id: node-a, secret: " + kPeerSecret + ", containers: {local: rw}}\n";
        auto cfg = ParseConfig(yaml, "test");
        ASSERT_TRUE(cfg.ok()) << cfg.status();
        auto server = Server::Start(*cfg);
        ASSERT_TRUE(server.ok()) << server.status();
        server_ = std::move(*server);
    }
    void TearDown() override {
        server_.reset();
        SetNodeConnectionManager(nullptr);
        std::filesystem::remove_all(dir_);
    }

    absl::StatusOr<std::unique_ptr<Client>> Connect() {
        ClientOptions o;
        o.socket_path = socket_;
        o.access_key = "rw-key";
        o.client_bytes = 8 << 20;
        o.daemon_bytes = 8 << 20;
        o.timeout = absl::Seconds(20);
        return Client::Connect(o);
    }

    // One simulated device for the node (the daemons of this process share it).
    peer::verbs::SimFabric fabric_;
    std::unique_ptr<peer::verbs::SimDevice> device_ = fabric_.NewDevice("sim-node");
    peer::verbs::SimConnectionManager cm_{&fabric_, device_.get()};
    std::string dir_, socket_;
    int port_ = 0;
    std::unique_ptr<Server> server_;
};

TEST_F(PeerRdmaDaemonTest, AGetOnAPeerMountLandsInTheClientsRegionWrittenByRdma) {
    auto client = Connect();
    ASSERT_TRUE(client.ok()) << client.status();
    std::string big = Pattern(5 << 20, 3);
    auto put = (*client)->PutObject({.path = *Path::Parse("/remote/big")}, big);
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_GE(NodePeerLoop()->rdma_connections(), 2u) << "the mount's calls did not go by RDMA";
    // Ranged gets (a quarter of the session's 8 MiB region each): each lands in place.
    for (int i = 0; i < 3; ++i) {
        auto got = (*client)->GetObject({.path = *Path::Parse("/remote/big")});
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_TRUE(*got == big) << "round " << i;
    }
    auto direct = (*client)->GetObject({.path = *Path::Parse("/local/big")});
    ASSERT_TRUE(direct.ok()) << direct.status();
    EXPECT_TRUE(*direct == big);
    auto counts = NodePeerLoop()->registrations(device_.get());
    EXPECT_GE(counts.registered, 1u) << "no landing was registered: the bytes were not written by RDMA";
    EXPECT_GE(counts.reused, 3u) << "the session's region was registered again for each get";
    // Items and listings go by RDMA frames too.
    auto listed = (*client)->List({.path = *Path::Parse("/remote")});
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_EQ(listed->entries.size(), 1u);
    EXPECT_EQ(listed->entries[0].name, "big");
    // The session ends: its region's registration goes with it (not kept pinned).
    EXPECT_GT(NodePeerLoop()->registrations(device_.get()).bytes, 0u);
    client->reset();
    absl::Time until = absl::Now() + absl::Seconds(5);
    while (NodePeerLoop()->registrations(device_.get()).bytes != 0 && absl::Now() < until) {
        absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_EQ(NodePeerLoop()->registrations(device_.get()).bytes, 0u)
        << "a closed session's region is still registered";
}

}  // namespace
}  // namespace zerohop::testing

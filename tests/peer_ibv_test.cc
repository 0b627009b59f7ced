// The verbs and rdmacm seams on a real RDMA device (rdma/ibv.h). Where libibverbs lists no
// device (these machines: no RDMA hardware, no InfiniBand in the kernel) the connection
// manager refuses to open and says why, and zerohopd's peers use TCP; the transfer tests
// run only where a device exists and ZH_RDMA_ADDRESS names an address on it, and skip
// otherwise, saying so.

#include "rdma/ibv.h"

#include <cstdlib>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "rdma/peer_loop.h"

namespace zerohop::peer::verbs {
namespace {

const std::string kSecret = "0123456789abcdef-shared-by-the-nodes";

TEST(PeerIbv, WithoutADeviceTheConnectionManagerSaysWhyAndDoesNotOpen) {
    if (!IbvDeviceNames().empty()) {
        GTEST_SKIP() << "this machine has an RDMA device";
    }
    auto cm = IbvConnectionManager::Open();
    ASSERT_FALSE(cm.ok());
    EXPECT_EQ(cm.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(cm.status().message().find("no RDMA device"), std::string::npos) << cm.status();
}

TEST(PeerIbv, CallsAndLandingsGoOverARealDevice) {
    auto devices = IbvDeviceNames();
    const char* address = std::getenv("ZH_RDMA_ADDRESS");
    if (devices.empty() || address == nullptr) {
        GTEST_SKIP() << (devices.empty() ? "no RDMA device (libibverbs lists none)"
                                         : "ZH_RDMA_ADDRESS names no address on the RDMA device");
    }
    auto cm = IbvConnectionManager::Open();
    ASSERT_TRUE(cm.ok()) << cm.status();
    auto server = *PeerLoop::Create({});
    auto client = *PeerLoop::Create({});
    auto secrets = [](std::string_view id) -> std::optional<std::string> {
        return id == "node-a" ? std::optional<std::string>(kSecret) : std::nullopt;
    };
    ASSERT_TRUE((*cm)->Listen(address, 7465, [&](Connected c) {
                       server->ServeRc(c.device, std::move(c.qp), secrets, [](PeerRequest r) {
                           size_t n = r.landing_capacity();
                           r.Respond(absl::OkStatus(), std::string(n, 'L') + "echo:" + r.body(), n);
                       });
                   }).ok());
    auto c = (*cm)->Connect(address, 7465);
    ASSERT_TRUE(c.ok()) << c.status();
    verbs::Device* device = c->device;
    auto peer = client->DialRc(device, std::move(c->qp), {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(peer.ok()) << peer.status();
    std::promise<absl::StatusOr<std::string>> plain;
    (*peer)->Call("hello", absl::Now() + absl::Seconds(5),
                  [&](absl::StatusOr<std::string> r) { plain.set_value(std::move(r)); });
    auto got = plain.get_future().get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, "echo:hello");
    std::string region(1 << 20, '\0');
    std::promise<absl::StatusOr<LandedAnswer>> landed;
    (*peer)->CallInto("x", absl::Now() + absl::Seconds(5),
                      {.addr = region.data(), .capacity = 65536, .region = region.data(), .region_size = region.size(),
                       .region_id = 1},
                      [&](absl::StatusOr<LandedAnswer> r) { landed.set_value(std::move(r)); });
    auto l = landed.get_future().get();
    ASSERT_TRUE(l.ok()) << l.status();
    EXPECT_EQ(l->landed, 65536u);
    EXPECT_TRUE(l->written);
    EXPECT_EQ(region.find_first_not_of('L'), 65536u);
    peer->reset();
    (*cm)->StopListening(address, 7465);
}

}  // namespace
}  // namespace zerohop::peer::verbs

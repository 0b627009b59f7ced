// The peer transport over RDMA (rdma/peer_loop.h, rdma/rc_path.h), between two loops joined by a
// simulated reliable-connected device (rdma/sim_verbs.h): the handshake and the frames of
// the TCP transport carried by SENDs into posted receives, credits that hold a caller back
// (so the device never finds a receive missing), large messages in pieces, large answers
// written by the answering side straight into the caller's landing, landing regions
// registered once, and every failure (a cut link, a dead peer, a hostile one, a deadline)
// failing only that connection's calls. The simulation proves the logic, not the speed.

#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "peer_test_support.h"
#include "rdma/frame.h"
#include "rdma/rc_path.h"
#include "rdma/registration_cache.h"
#include "rdma/sim_verbs.h"
#include "rdma/peer_loop.h"

namespace zerohop::peer {
namespace {

using verbs::SimDevice;
using verbs::SimFabric;

using namespace testing;

constexpr auto Serve = ServeEchoAndLandings;

// Two daemons' peer loops, each with its own simulated device, on one fabric.
struct RdmaNodes {
    SimFabric fabric;
    std::unique_ptr<SimDevice> client_device = fabric.NewDevice("sim-a");
    std::unique_ptr<SimDevice> server_device = fabric.NewDevice("sim-b");
    std::unique_ptr<PeerLoop> client, server;

    explicit RdmaNodes(PeerOptions options = {}) {
        client = *PeerLoop::Create(options);
        server = *PeerLoop::Create(options);
    }
    ~RdmaNodes() {
        client.reset();  // the loops (and their queue pairs) before the devices and the fabric
        server.reset();
    }

    // A connection, as rdmacm would make it: the server's side posts its receives, then the
    // client's dials over the other end. (A generous receiver-not-ready retry: a real RC
    // queue pair retries without end at rnr_retry 7.)
    absl::StatusOr<std::unique_ptr<PeerClient>> Connect(std::function<void(PeerRequest)> on_request = Serve,
                                                        std::string secret = kSecret) {
        auto [qa, qb] = fabric.Connect(*client_device, *server_device,
                                       {.rnr_retry = 2000, .rnr_delay = absl::Milliseconds(1)});
        server->ServeRc(server_device.get(), std::move(qb), Keys(), std::move(on_request));
        return client->DialRc(client_device.get(), std::move(qa), {.id = "node-a", .secret = std::move(secret)});
    }
};

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

TEST(PeerRdma, CallsAreAnsweredOverTheQueuePairAfterTheHandshake) {
    RdmaNodes nodes;
    auto client = nodes.Connect();
    ASSERT_TRUE(client.ok()) << client.status();
    EXPECT_EQ((*client)->transport(), "rdma");
    Outcome<std::string> out;
    (*client)->Call("hello", Soon(), out.Callback());
    auto got = out.Get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, "echo:hello");
}

TEST(PeerRdma, AWrongKeyIsRefusedAndTheRightOneAccepted) {
    RdmaNodes nodes;
    auto wrong = nodes.Connect(Serve, "not-the-key-but-long-enough");
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
    auto right = nodes.Connect();
    ASSERT_TRUE(right.ok()) << right.status();
}

TEST(PeerRdma, ThousandsOfPipelinedCallsOnASmallWindowAreMatchedToTheirAnswers) {
    // A window of 4: the caller may have 4 frames in the server's receives; the rest wait for
    // credits. Were credits wrong, a send would find no receive and the queue pair would fail.
    RdmaNodes nodes({.terms = {.max_body = 1 << 20, .window = 4}});
    auto client = nodes.Connect();
    ASSERT_TRUE(client.ok()) << client.status();
    constexpr int kCalls = 2000;
    std::mutex mu;
    std::vector<std::string> answers(kCalls);
    std::atomic<int> finished{0}, wrong{0};
    for (int i = 0; i < kCalls; ++i) {
        (*client)->Call(std::to_string(i), Soon(), [&, i](absl::StatusOr<std::string> r) {
            if (!r.ok() || *r != "echo:" + std::to_string(i)) {
                ++wrong;
            }
            ++finished;
        });
    }
    ASSERT_TRUE(Eventually([&] { return finished.load() == kCalls; }, absl::Seconds(30)));
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_TRUE((*client)->open());
}

TEST(PeerRdma, ACallerOutOfCreditsWaitsAndTheServerSeesNoMoreThanItsWindow) {
    HeldRequests held;  // (before the loops: they may call it until they stop)
    RdmaNodes nodes({.terms = {.max_body = 1 << 20, .window = 4}});
    auto client = nodes.Connect(held.Handler());
    ASSERT_TRUE(client.ok()) << client.status();
    std::atomic<int> finished{0};
    for (int i = 0; i < 20; ++i) {
        (*client)->Call("q", Soon(), [&](absl::StatusOr<std::string> r) { finished += r.ok(); });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(held.size(), 4u) << "the server got more requests than the receives it granted";
    // Answering frees receives: the waiting calls go on, four at a time.
    for (int round = 0; round < 5; ++round) {
        ASSERT_TRUE(Eventually([&] { return held.size() == 4u; }));
        for (auto& r : held.Take()) {
            r.Respond(absl::OkStatus(), "a");
        }
    }
    ASSERT_TRUE(Eventually([&] { return finished.load() == 20; }));
}

TEST(PeerRdma, MessagesLargerThanAFrameTravelInPieces) {
    RdmaNodes nodes;
    auto client = nodes.Connect();
    ASSERT_TRUE(client.ok()) << client.status();
    std::string big(3 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>(i * 131 % 251);
    }
    Outcome<std::string> out;
    (*client)->Call(big, Soon(), out.Callback());
    auto got = out.Get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(*got == "echo:" + big) << "a 3 MiB request and its answer, over 64 KiB frames";
}

TEST(PeerRdma, ALargeAnswerIsWrittenStraightIntoTheCallersLanding) {
    RdmaNodes nodes;
    auto client = nodes.Connect();
    ASSERT_TRUE(client.ok()) << client.status();
    std::string region(8 << 20, '\0');  // a client's session region, say
    constexpr size_t kAnswer = 5 << 20;  // far larger than a frame (64 KiB)
    Outcome<LandedAnswer> out;
    (*client)->CallInto("land:" + std::to_string(kAnswer), Soon(),
                        {.addr = region.data() + 4096, .capacity = 6 << 20, .region = region.data(),
                         .region_size = region.size()},
                        out.Callback());
    auto got = out.Get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->landed, kAnswer);
    EXPECT_TRUE(got->written) << "the bytes came in frames, not by RDMA WRITE";
    EXPECT_EQ(got->rest, "tail");
    EXPECT_EQ(region[4096], 'a');
    EXPECT_EQ(region[4096 + 1], 'L');
    EXPECT_EQ(region[4096 + 4096], 'b');
    EXPECT_EQ(region[4096 + kAnswer - 1], 'L');
    EXPECT_EQ(region[4095], '\0') << "nothing before the landing";
    EXPECT_EQ(region[4096 + kAnswer], '\0') << "nothing after what was landed";
}

TEST(PeerRdma, ALandingRegionIsRegisteredOnceForEveryCallThatLandsInIt) {
    RdmaNodes nodes;
    auto client = nodes.Connect();
    ASSERT_TRUE(client.ok()) << client.status();
    std::string region(1 << 20, '\0');
    auto call = [&](size_t at) {
        Outcome<LandedAnswer> out;
        (*client)->CallInto("land:65536", Soon(),
                            {.addr = region.data() + at, .capacity = 65536, .region = region.data(),
                             .region_size = region.size()},
                            out.Callback());
        return out.Get();
    };
    for (int i = 0; i < 50; ++i) {
        auto got = call(size_t(i % 8) * 65536);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_EQ(got->landed, 65536u);
    }
    auto counts = nodes.client->registrations(nodes.client_device.get());
    EXPECT_EQ(counts.registered, 1u);
    EXPECT_EQ(counts.reused, 49u);
    EXPECT_EQ(counts.bytes, region.size());
    // Unmapped (a session ended): its registration goes, and a region at that address later
    // is registered anew.
    nodes.client->ForgetRegion(region.data());
    EXPECT_EQ(nodes.client->registrations(nodes.client_device.get()).bytes, 0u);
    ASSERT_TRUE(call(0).ok());
    EXPECT_EQ(nodes.client->registrations(nodes.client_device.get()).registered, 2u);
}

TEST(PeerRdma, AnAnswerLargerThanTheLandingIsRefusedNotWrittenBeyondIt) {
    RdmaNodes nodes;
    auto client = nodes.Connect();
    ASSERT_TRUE(client.ok()) << client.status();
    std::string region(1 << 20, '\0');
    Outcome<LandedAnswer> out;
    (*client)->CallInto("land:200000", Soon(), {.addr = region.data(), .capacity = 100000}, out.Callback());
    auto got = out.Get();
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted) << got.status();
    EXPECT_EQ(region.find('L'), std::string::npos);
    EXPECT_TRUE((*client)->open()) << "a refused answer is no reason to drop the connection";
}

TEST(PeerRdma, ACutLinkFailsTheCallsInFlightAsOutcomeUnknown) {
    HeldRequests held;  // (before the loops: they may call it until they stop)
    RdmaNodes nodes;
    auto client = nodes.Connect(held.Handler());
    ASSERT_TRUE(client.ok()) << client.status();
    Outcome<std::string> in_flight;
    (*client)->Call("q", Soon(), in_flight.Callback());
    ASSERT_TRUE(Eventually([&] { return held.size() == 1; }));
    nodes.fabric.CutLink(true);
    // The answer cannot get through: after the device's retries the queue pair fails.
    held.Take()[0].Respond(absl::OkStatus(), "late");
    auto got = in_flight.Get();
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
    EXPECT_TRUE(IsConnectionLoss(got.status())) << got.status();
    EXPECT_TRUE(Eventually([&] { return !(*client)->open(); }));
    Outcome<std::string> after;
    (*client)->Call("q", Soon(), after.Callback());
    EXPECT_TRUE(IsConnectionLoss(after.Get().status()));
    nodes.fabric.CutLink(false);
    auto again = nodes.Connect();  // the caller connects anew (the peer backend does)
    ASSERT_TRUE(again.ok()) << again.status();
    Outcome<std::string> fine;
    (*again)->Call("q", Soon(), fine.Callback());
    EXPECT_TRUE(fine.Get().ok());
}

TEST(PeerRdma, APeerThatVanishesSilentlyIsNoticedByPingsLongBeforeTheDeadline) {
    // No keepalive on RDMA: a call waiting on a peer that is gone without a word (the link
    // cut, nothing more to send) learns it from the pings its connection sends meanwhile.
    HeldRequests held;  // (before the loops: they may call it until they stop)
    RdmaNodes nodes;
    auto client = nodes.Connect(held.Handler());
    ASSERT_TRUE(client.ok()) << client.status();
    Outcome<std::string> waiting;
    absl::Time start = absl::Now();
    (*client)->Call("q", absl::Now() + absl::Seconds(60), waiting.Callback());
    ASSERT_TRUE(Eventually([&] { return held.size() == 1; }));
    nodes.fabric.CutLink(true);
    auto got = waiting.Get();
    ASSERT_FALSE(got.ok());
    EXPECT_TRUE(IsConnectionLoss(got.status())) << got.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the call waited for its deadline";
}

TEST(PeerRdma, ClosedConnectionsLetGoOfTheirQueuePairsAndRegistrations) {
    RdmaNodes nodes;
    for (int i = 0; i < 10; ++i) {
        auto client = nodes.Connect();
        ASSERT_TRUE(client.ok()) << client.status();
        for (int j = 0; j < 3; ++j) {
            Outcome<std::string> out;
            (*client)->Call("x", Soon(), out.Callback());
            ASSERT_TRUE(out.Get().ok());
        }
        client->reset();
    }
    // Each connection registered a receive and a send slab on each side (some 10 MiB).
    EXPECT_TRUE(Eventually([&] {
        return nodes.client_device->registered_regions() == 0 && nodes.server_device->registered_regions() == 0;
    })) << nodes.client_device->registered_regions() << " and " << nodes.server_device->registered_regions()
        << " regions still registered after their connections closed";
}

TEST(PeerRdma, ADeadPeerFailsTheCallsOfItsConnectionOnly) {
    RdmaNodes nodes;
    auto first = nodes.Connect([](PeerRequest) {});  // never answers
    auto second = nodes.Connect();
    ASSERT_TRUE(first.ok() && second.ok());
    Outcome<std::string> waiting;
    (*first)->Call("q", Soon(), waiting.Callback());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    first->reset();  // the client side closes: its queue pair is destroyed
    auto got = waiting.Get();
    EXPECT_FALSE(got.ok());
    Outcome<std::string> other;
    (*second)->Call("still", Soon(), other.Callback());
    auto fine = other.Get();
    ASSERT_TRUE(fine.ok()) << fine.status();
    EXPECT_EQ(*fine, "echo:still");
    EXPECT_TRUE(Eventually([&] { return nodes.server->connections() == 1; }))
        << "the server let go of the dead connection";
}

TEST(PeerRdma, ALandedCallPastItsDeadlineClosesItsConnectionSoNoLateAnswerLands) {
    HeldRequests held;  // (before the loops: they may call it until they stop)
    RdmaNodes nodes;
    auto client = nodes.Connect(held.Handler());
    ASSERT_TRUE(client.ok()) << client.status();
    std::string region(1 << 20, '\0');
    Outcome<LandedAnswer> out;
    (*client)->CallInto("land:4096", absl::Now() + absl::Milliseconds(100), {.addr = region.data(), .capacity = 4096},
                        out.Callback());
    auto got = out.Get();
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
    ASSERT_TRUE(Eventually([&] { return held.size() == 1; }));
    held.Take()[0].Respond(absl::OkStatus(), std::string(4096, 'L'), 4096);  // too late
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(region.find('L'), std::string::npos) << "a late answer was written into memory its caller had back";
    EXPECT_FALSE((*client)->open());
}

TEST(PeerRdma, AHostilePeerOnTheQueuePairCostsOnlyItsOwnConnection) {
    RdmaNodes nodes;
    auto good = nodes.Connect();
    ASSERT_TRUE(good.ok()) << good.status();
    // A peer that speaks verbs but not our wire: garbage where a hello should be.
    auto [raw, served] = nodes.fabric.Connect(*nodes.client_device, *nodes.server_device,
                                              {.rnr_retry = 2000, .rnr_delay = absl::Milliseconds(1)});
    nodes.server->ServeRc(nodes.server_device.get(), std::move(served), Keys(), Serve);
    ASSERT_TRUE(Eventually([&] { return nodes.server->connections() == 2; }));
    std::string garbage(100, 'x');
    auto mr = nodes.client_device->Register(garbage.data(), garbage.size(), 0);
    ASSERT_TRUE(mr.ok());
    ASSERT_TRUE(raw->PostSend(1, *mr, 0, garbage.size()).ok());
    EXPECT_TRUE(Eventually([&] { return nodes.server->connections() == 1; })) << "the hostile connection stays open";
    Outcome<std::string> out;
    (*good)->Call("fine", Soon(), out.Callback());
    auto got = out.Get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, "echo:fine");
    raw.reset();
    nodes.client_device->Deregister(*mr);
}

TEST(RegistrationCache, ARegionInUseIsNeverDeregisteredUnderItsCaller) {
    SimFabric fabric;
    auto device = fabric.NewDevice("sim");
    RegistrationCache cache(device.get(), 1 << 20);
    std::string a(1 << 20, '\0'), b(1 << 20, '\0');
    auto ma = cache.Acquire(a.data(), a.size(), 1);
    ASSERT_TRUE(ma.ok());
    // Over budget with `a` in use: `a` stays; released, it is the one evicted for `b`.
    auto mb = cache.Acquire(b.data(), b.size(), 2);
    ASSERT_TRUE(mb.ok());
    EXPECT_EQ(cache.counts().bytes, 2u << 20);
    cache.Release(a.data());
    EXPECT_EQ(cache.counts().bytes, 1u << 20);
    // Forgotten while in use: it goes at the release.
    cache.Forget(b.data());
    EXPECT_EQ(cache.counts().bytes, 1u << 20);
    cache.Release(b.data());
    EXPECT_EQ(cache.counts().bytes, 0u);
    // Another mapping at the same address (another id, or another size): registered anew.
    ASSERT_TRUE(cache.Acquire(a.data(), 4096, 7).ok());
    cache.Release(a.data());
    ASSERT_TRUE(cache.Acquire(a.data(), 4096, 7).ok());
    cache.Release(a.data());
    ASSERT_TRUE(cache.Acquire(a.data(), 4096, 8).ok());
    cache.Release(a.data());
    ASSERT_TRUE(cache.Acquire(a.data(), 8192, 8).ok());
    cache.Release(a.data());
    EXPECT_EQ(cache.counts().registered, 5u);
    EXPECT_EQ(cache.counts().reused, 1u);
    EXPECT_EQ(cache.counts().bytes, 8192u);
}

}  // namespace
}  // namespace zerohop::peer

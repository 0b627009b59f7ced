// The simulated RDMA device (rdma/sim_verbs.h) behaves as verbs.h says RC does: sends land
// in posted receives in order; a send with no receive is retried, then fails; remote writes
// are checked against the target region's key, bounds and rights; an immediate consumes a
// receive; any error takes both queue pairs to the error state and flushes what was posted;
// lost packets are retransmitted, a cut link fails after the retries.

#include "rdma/sim_verbs.h"

#include <poll.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace zerohop::peer::verbs {
namespace {

// Waits for `n` completions on `qp` (at most 5 s).
std::vector<WorkCompletion> Await(QueuePair& qp, size_t n) {
    std::vector<WorkCompletion> out;
    absl::Time until = absl::Now() + absl::Seconds(5);
    while (out.size() < n && absl::Now() < until) {
        struct pollfd p = {qp.completion_fd(), POLLIN, 0};
        ::poll(&p, 1, 50);
        WorkCompletion wc[8];
        int got = qp.Poll(wc, 8);
        out.insert(out.end(), wc, wc + got);
    }
    return out;
}

struct Pair {
    SimFabric fabric;
    std::unique_ptr<SimDevice> da = fabric.NewDevice("sim0"), db = fabric.NewDevice("sim1");
    std::unique_ptr<QueuePair> a, b;
    std::string abuf = std::string(1 << 16, '\0'), bbuf = std::string(1 << 16, '\0');
    MemoryRegion amr, bmr;
    explicit Pair(SimQpOptions o = {.rnr_retry = 3, .rnr_delay = absl::Milliseconds(2)}) {
        auto [qa, qb] = fabric.Connect(*da, *db, o);
        a = std::move(qa);
        b = std::move(qb);
        amr = *da->Register(abuf.data(), abuf.size(), kLocalWrite);
        bmr = *db->Register(bbuf.data(), bbuf.size(), kLocalWrite | kRemoteWrite);
    }
    ~Pair() {
        a.reset();  // queue pairs before the fabric
        b.reset();
    }
};

TEST(SimVerbs, SendsLandInPostedReceivesInOrder) {
    Pair p;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(p.b->PostRecv(100 + i, p.bmr, i * 1024, 1024).ok());
    }
    for (int i = 0; i < 3; ++i) {
        std::string msg = "message " + std::to_string(i) + std::string(i * 100, '!');
        std::memcpy(p.abuf.data() + i * 2048, msg.data(), msg.size());
        ASSERT_TRUE(p.a->PostSend(i, p.amr, i * 2048, msg.size(), std::nullopt, /*inline_data=*/i == 0).ok());
    }
    auto sent = Await(*p.a, 3);
    auto got = Await(*p.b, 3);
    ASSERT_EQ(sent.size(), 3u);
    ASSERT_EQ(got.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(sent[i].wr_id, static_cast<uint64_t>(i));
        EXPECT_EQ(sent[i].status, WcStatus::kSuccess);
        EXPECT_EQ(got[i].wr_id, static_cast<uint64_t>(100 + i)) << "in the order posted";
        EXPECT_EQ(got[i].opcode, WcOpcode::kRecv);
        std::string msg = "message " + std::to_string(i) + std::string(i * 100, '!');
        ASSERT_EQ(got[i].byte_len, msg.size());
        EXPECT_EQ(p.bbuf.substr(i * 1024, msg.size()), msg);
    }
}

TEST(SimVerbs, ASendWithoutAReceiveIsRetriedThenFailsBothSides) {
    {
        // A receive posted within the retries: delivered.
        Pair p;
        ASSERT_TRUE(p.a->PostSend(1, p.amr, 0, 8).ok());
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
        ASSERT_TRUE(p.b->PostRecv(9, p.bmr, 0, 64).ok());
        auto sent = Await(*p.a, 1);
        ASSERT_EQ(sent.size(), 1u);
        EXPECT_EQ(sent[0].status, WcStatus::kSuccess);
    }
    Pair p;
    ASSERT_TRUE(p.a->PostSend(1, p.amr, 0, 8).ok());
    ASSERT_TRUE(p.a->PostSend(2, p.amr, 8, 8).ok());
    auto sent = Await(*p.a, 2);
    ASSERT_EQ(sent.size(), 2u);
    EXPECT_EQ(sent[0].status, WcStatus::kRnrRetryExceeded) << WcStatusName(sent[0].status);
    EXPECT_EQ(sent[1].status, WcStatus::kFlushed) << "what was posted behind it is flushed";
    EXPECT_EQ(p.a->state(), QpState::kError);
    EXPECT_EQ(p.b->state(), QpState::kError);
    // Nothing more gets through: a post completes as flushed.
    ASSERT_TRUE(p.b->PostRecv(3, p.bmr, 0, 64).ok());
    auto flushed = Await(*p.b, 1);
    ASSERT_EQ(flushed.size(), 1u);
    EXPECT_EQ(flushed[0].status, WcStatus::kFlushed);
}

TEST(SimVerbs, RemoteWritesAreCheckedByKeyBoundsAndRight) {
    Pair p;
    std::memcpy(p.abuf.data(), "payload!", 8);
    uint64_t base = reinterpret_cast<uint64_t>(p.bbuf.data());
    ASSERT_TRUE(p.a->PostWrite(1, p.amr, 0, 8, base + 100, p.bmr.rkey).ok());
    auto ok = Await(*p.a, 1);
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].status, WcStatus::kSuccess);
    EXPECT_EQ(p.bbuf.substr(100, 8), "payload!") << "in place, with no receive used";
    WorkCompletion none[1];
    EXPECT_EQ(p.b->Poll(none, 1), 0) << "a write without an immediate completes nothing on the target";

    auto refused = [](auto post) {
        Pair q;
        ASSERT_TRUE(q.b->PostRecv(7, q.bmr, 0, 64).ok());
        ASSERT_TRUE(post(q).ok());
        auto wc = Await(*q.a, 1);
        ASSERT_EQ(wc.size(), 1u);
        EXPECT_EQ(wc[0].status, WcStatus::kRemoteAccessError) << WcStatusName(wc[0].status);
        EXPECT_EQ(q.b->state(), QpState::kError);
        auto flushed = Await(*q.b, 1);
        ASSERT_EQ(flushed.size(), 1u) << "the target's posted receive is flushed";
        EXPECT_EQ(flushed[0].status, WcStatus::kFlushed);
    };
    refused([](Pair& q) {  // a wrong key
        return q.a->PostWrite(1, q.amr, 0, 8, reinterpret_cast<uint64_t>(q.bbuf.data()), q.bmr.rkey ^ 1);
    });
    refused([](Pair& q) {  // past the region's end
        return q.a->PostWrite(1, q.amr, 0, 8, reinterpret_cast<uint64_t>(q.bbuf.data()) + q.bbuf.size() - 4, q.bmr.rkey);
    });
    refused([](Pair& q) {  // before its start
        return q.a->PostWrite(1, q.amr, 0, 8, reinterpret_cast<uint64_t>(q.bbuf.data()) - 8, q.bmr.rkey);
    });
    refused([](Pair& q) {  // a region registered without remote write
        auto ro = q.db->Register(q.bbuf.data(), 1024, kLocalWrite);
        return q.a->PostWrite(1, q.amr, 0, 8, reinterpret_cast<uint64_t>(q.bbuf.data()), ro->rkey);
    });
    refused([](Pair& q) {  // a region deregistered
        q.db->Deregister(q.bmr);
        return q.a->PostWrite(1, q.amr, 0, 8, reinterpret_cast<uint64_t>(q.bbuf.data()), q.bmr.rkey);
    });
}

TEST(SimVerbs, AnImmediateConsumesAReceiveAndAnOversizedSendFails) {
    Pair p;
    ASSERT_TRUE(p.b->PostRecv(5, p.bmr, 0, 16).ok());
    std::memcpy(p.abuf.data(), "0123456789abcdefXYZ", 19);
    ASSERT_TRUE(p.a->PostWrite(1, p.amr, 0, 19, reinterpret_cast<uint64_t>(p.bbuf.data()) + 4096, p.bmr.rkey, 42).ok());
    auto got = Await(*p.b, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].opcode, WcOpcode::kRecvWithImm);
    EXPECT_EQ(got[0].imm, std::optional<uint32_t>(42));
    EXPECT_EQ(got[0].byte_len, 19u);
    EXPECT_EQ(p.bbuf.substr(4096, 19), "0123456789abcdefXYZ");
    // 19 bytes sent to a 16-byte receive: the receiver's length error, the sender's invalid
    // request, both in error.
    ASSERT_TRUE(p.b->PostRecv(6, p.bmr, 0, 16).ok());
    ASSERT_TRUE(p.a->PostSend(2, p.amr, 0, 19).ok());
    auto sent = Await(*p.a, 2);
    auto recv = Await(*p.b, 1);
    ASSERT_EQ(recv.size(), 1u);
    EXPECT_EQ(recv[0].status, WcStatus::kLocalLengthError);
    ASSERT_GE(sent.size(), 2u);
    EXPECT_EQ(sent[1].status, WcStatus::kRemoteInvalidRequest) << WcStatusName(sent[1].status);
}

TEST(SimVerbs, LostPacketsAreRetransmittedAndACutLinkFailsAfterTheRetries) {
    Pair p({.retry_count = 3, .retransmit_timeout = absl::Milliseconds(2)});
    ASSERT_TRUE(p.b->PostRecv(1, p.bmr, 0, 64).ok());
    p.fabric.DropNext(2);  // lost twice, delivered the third time
    ASSERT_TRUE(p.a->PostSend(1, p.amr, 0, 8).ok());
    auto ok = Await(*p.a, 1);
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].status, WcStatus::kSuccess);
    EXPECT_EQ(Await(*p.b, 1).size(), 1u);

    p.fabric.CutLink(true);
    ASSERT_TRUE(p.b->PostRecv(2, p.bmr, 0, 64).ok());
    absl::Time start = absl::Now();
    ASSERT_TRUE(p.a->PostSend(2, p.amr, 0, 8).ok());
    auto cut = Await(*p.a, 1);
    ASSERT_EQ(cut.size(), 1u);
    EXPECT_EQ(cut[0].status, WcStatus::kTransportRetryExceeded);
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(6)) << "after the retransmissions";
    EXPECT_EQ(p.a->state(), QpState::kError);
}

TEST(SimVerbs, LatencyDelaysEveryOperationAndACompletionWakesThePoller) {
    Pair p;
    p.fabric.SetLatency(absl::Milliseconds(20));
    ASSERT_TRUE(p.b->PostRecv(1, p.bmr, 0, 64).ok());
    absl::Time start = absl::Now();
    ASSERT_TRUE(p.a->PostSend(1, p.amr, 0, 8).ok());
    struct pollfd fd = {p.b->completion_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&fd, 1, 2000), 1) << "the completion channel is readable once a completion waits";
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
    WorkCompletion wc[2];
    EXPECT_EQ(p.b->Poll(wc, 2), 1);
    EXPECT_EQ(::poll(&fd, 1, 0), 0) << "and not once it is taken";
}

TEST(SimVerbs, ADroppedQueuePairTakesItsPeerToTheErrorState) {
    Pair p;
    ASSERT_TRUE(p.b->PostRecv(1, p.bmr, 0, 64).ok());
    p.a.reset();
    auto flushed = Await(*p.b, 1);
    ASSERT_EQ(flushed.size(), 1u);
    EXPECT_EQ(flushed[0].status, WcStatus::kFlushed);
    EXPECT_EQ(p.b->state(), QpState::kError);
}

}  // namespace
}  // namespace zerohop::peer::verbs

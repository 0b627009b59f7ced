// The worker's poller, both kinds: io_uring multishot polls and epoll.

#include "server/poller.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "shmring/doorbell.h"
#include "shmring/unique_fd.h"

namespace zerohop {
namespace {

class PollerTest : public ::testing::TestWithParam<Poller::Kind> {
protected:
    void SetUp() override {
        auto p = Poller::Create(GetParam());
        if (!p.ok() && GetParam() == Poller::Kind::kUring) {
            GTEST_SKIP() << "io_uring is not available here: " << p.status();
        }
        ASSERT_TRUE(p.ok()) << p.status();
        poller_ = std::move(*p);
    }

    std::vector<uint64_t> Wait(int timeout_ms) {
        std::vector<uint64_t> ready;
        poller_->Wait(&ready, timeout_ms);
        std::sort(ready.begin(), ready.end());
        ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
        return ready;
    }

    std::unique_ptr<Poller> poller_;
};

TEST_P(PollerTest, ReportsEachReadyDescriptorByItsKey) {
    auto a = shmring::EventFd::Create();
    auto b = shmring::EventFd::Create();
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(poller_->Add(a->fd(), 10).ok());
    ASSERT_TRUE(poller_->Add(b->fd(), 11).ok());
    EXPECT_TRUE(Wait(0).empty());
    EXPECT_TRUE(Wait(20).empty()) << "nothing rang";
    b->Signal();
    EXPECT_EQ(Wait(1000), std::vector<uint64_t>{11});
    b->Drain();
    // Multishot: the same watch reports again, with nothing re-armed by the caller.
    for (int i = 0; i < 3; ++i) {
        a->Signal();
        EXPECT_EQ(Wait(1000), std::vector<uint64_t>{10});
        a->Drain();
    }
    EXPECT_TRUE(Wait(0).empty());
}

TEST_P(PollerTest, ReportsAHungUpSocket) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    shmring::UniqueFd ours(sv[0]);
    shmring::UniqueFd theirs(sv[1]);
    ASSERT_TRUE(poller_->Add(ours.get(), 7).ok());
    EXPECT_TRUE(Wait(0).empty());
    theirs.reset();
    EXPECT_EQ(Wait(1000), std::vector<uint64_t>{7});
    poller_->Remove(ours.get(), 7);
}

TEST_P(PollerTest, ARemovedDescriptorIsNeverReportedAndItsFileIsReleased) {
    auto a = shmring::EventFd::Create();
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(poller_->Add(a->fd(), 5).ok());
    poller_->Remove(a->fd(), 5);
    a->Signal();
    EXPECT_TRUE(Wait(20).empty());
    // Many sessions come and go: the poller keeps no file alive after Remove.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    shmring::UniqueFd watcher(sv[0]);
    for (uint64_t key = 100; key < 2100; ++key) {
        auto e = shmring::EventFd::Create();
        ASSERT_TRUE(e.ok());
        ASSERT_TRUE(poller_->Add(e->fd(), key).ok());
        poller_->Remove(e->fd(), key);
    }
    (void)Wait(0);
    // The peer of a watched-then-removed socket sees the close at once: nothing holds it.
    ASSERT_TRUE(poller_->Add(watcher.get(), 3).ok());
    poller_->Remove(watcher.get(), 3);
    (void)Wait(0);
    watcher.reset();
    char c;
    EXPECT_EQ(::recv(sv[1], &c, 1, MSG_DONTWAIT), 0) << "the removed socket is still open somewhere";
    ::close(sv[1]);
}

INSTANTIATE_TEST_SUITE_P(Kinds, PollerTest, ::testing::Values(Poller::Kind::kUring, Poller::Kind::kEpoll),
                         [](const auto& info) { return info.param == Poller::Kind::kUring ? "io_uring" : "epoll"; });

}  // namespace
}  // namespace zerohop

// The shared-memory substrate: rings, segments, buffer regions, doorbells, fd passing.
// Written for a hostile peer: scribbled rings and bad offsets are tested, not assumed away.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "shmring/arena.h"
#include "shmring/doorbell.h"
#include "shmring/fd_passing.h"
#include "shmring/segment.h"

namespace shmring {
namespace {

struct Desc {
    uint64_t producer;
    uint64_t seq;
    uint64_t check;
    uint64_t pad[5];
};
static_assert(sizeof(Desc) == 64);

Desc Make(uint64_t producer, uint64_t seq) { return Desc{producer, seq, producer * 1000003 ^ seq, {}}; }

Segment NewSegment(uint32_t entries = 64, uint64_t region = 1 << 20) {
    auto layout = SegmentLayout::Compute({.submit_entries = entries,
                                          .complete_entries = entries,
                                          .slot_payload = sizeof(Desc),
                                          .client_bytes = region,
                                          .daemon_bytes = region});
    EXPECT_TRUE(layout.ok()) << layout.status();
    auto seg = Segment::Create(*layout, "shmring-test");
    EXPECT_TRUE(seg.ok()) << seg.status();
    return std::move(*seg);
}

TEST(Ring, FifoFullAndEmptyAcrossManyWraps) {
    Segment seg = NewSegment(8);
    RingSlots ring = seg.submit_ring();
    uint64_t head = 0;
    Desc out;
    EXPECT_FALSE(ring.PopPrivate(&head, &out));
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; ++round) {
        int n = round % 9;
        for (int i = 0; i < n; ++i) {
            ASSERT_TRUE(ring.PushShared(&seg.header()->submit_tail, &(out = Make(0, next_in++))));
        }
        if (n == 8) {
            Desc extra = Make(0, 999);
            EXPECT_FALSE(ring.PushShared(&seg.header()->submit_tail, &extra)) << "a full ring refuses";
        }
        for (int i = 0; i < n; ++i) {
            ASSERT_TRUE(ring.PopPrivate(&head, &out));
            ASSERT_EQ(out.seq, next_out++);
        }
        EXPECT_FALSE(ring.PopPrivate(&head, &out));
    }
}

TEST(Ring, ManyProducersOneConsumerLoseNothingAndKeepPerProducerOrder) {
    Segment seg = NewSegment(64);
    RingSlots ring = seg.submit_ring();
    constexpr int kProducers = 4;
    constexpr uint64_t kEach = 100000;
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
            for (uint64_t i = 0; i < kEach; ++i) {
                Desc d = Make(p, i);
                while (!ring.PushShared(&seg.header()->submit_tail, &d)) {
                    std::this_thread::yield();
                }
            }
        });
    }
    std::vector<uint64_t> next(kProducers, 0);
    uint64_t head = 0, got = 0;
    while (got < kProducers * kEach) {
        Desc d;
        if (!ring.PopPrivate(&head, &d)) {
            std::this_thread::yield();
            continue;
        }
        ASSERT_LT(d.producer, static_cast<uint64_t>(kProducers));
        ASSERT_EQ(d.check, d.producer * 1000003 ^ d.seq) << "torn descriptor";
        ASSERT_EQ(d.seq, next[d.producer]++) << "producer " << d.producer << " out of order";
        ++got;
    }
    for (auto& t : producers) {
        t.join();
    }
}

TEST(Ring, OneProducerManyConsumersDeliverEachOnce) {
    Segment seg = NewSegment(32);
    RingSlots ring = seg.complete_ring();
    constexpr uint64_t kTotal = 200000;
    std::atomic<uint64_t> taken{0};
    std::vector<std::vector<uint64_t>> seen(3);
    std::vector<std::thread> consumers;
    for (int c = 0; c < 3; ++c) {
        consumers.emplace_back([&, c] {
            Desc d;
            while (taken.load() < kTotal) {
                if (ring.PopShared(&seg.header()->complete_head, &d)) {
                    ASSERT_EQ(d.check, d.producer * 1000003 ^ d.seq);
                    seen[c].push_back(d.seq);
                    taken.fetch_add(1);
                } else {
                    std::this_thread::yield();
                }
            }
        });
    }
    uint64_t tail = 0;
    for (uint64_t i = 0; i < kTotal; ++i) {
        Desc d = Make(7, i);
        while (!ring.PushPrivate(&tail, &d)) {
            std::this_thread::yield();
        }
    }
    for (auto& t : consumers) {
        t.join();
    }
    std::vector<bool> once(kTotal, false);
    for (const auto& v : seen) {
        for (uint64_t s : v) {
            ASSERT_FALSE(once[s]) << s << " delivered twice";
            once[s] = true;
        }
    }
    EXPECT_EQ(std::count(once.begin(), once.end(), true), static_cast<long>(kTotal));
}

TEST(Ring, ScribbledRingNeverMakesThePrivateSideFaultOrSpin) {
    Segment seg = NewSegment(16);
    std::mt19937_64 rng(7);
    RingSlots sq = seg.submit_ring();
    RingSlots cq = seg.complete_ring();
    uint64_t head = 0, tail = 0;
    for (int round = 0; round < 2000; ++round) {
        // The peer writes anything anywhere in its rings, including the sequence words.
        for (size_t i = 0; i < RingSlots::BytesFor(16, sizeof(Desc)) / 8; ++i) {
            if (rng() % 4 == 0) {
                reinterpret_cast<uint64_t*>(seg.base() + seg.layout().submit.offset)[i] = rng() % 64 + head;
                reinterpret_cast<uint64_t*>(seg.base() + seg.layout().complete.offset)[i] = rng() % 64 + tail;
            }
        }
        Desc d;
        for (int i = 0; i < 32; ++i) {  // every call returns at once, whatever it finds
            (void)sq.PopPrivate(&head, &d);
            (void)cq.PushPrivate(&tail, &d);
        }
    }
    SUCCEED();
}

TEST(Segment, CannotBeShrunkByThePeerAndMapChecksIt) {
    Segment seg = NewSegment();
    EXPECT_NE(::ftruncate(seg.fd(), 4096), 0) << "a peer could shrink the segment under the creator";
    EXPECT_NE(::ftruncate(seg.fd(), static_cast<off_t>(seg.size() * 2)), 0);
    UniqueFd dup(::fcntl(seg.fd(), F_DUPFD_CLOEXEC, 0));
    auto mapped = Segment::Map(std::move(dup));
    ASSERT_TRUE(mapped.ok()) << mapped.status();
    EXPECT_EQ(mapped->size(), seg.size());
    // Both mappings see the same bytes.
    seg.client_region()[5] = 'z';
    EXPECT_EQ(mapped->client_region()[5], 'z');

    UniqueFd plain(::memfd_create("unsealed", MFD_CLOEXEC));
    ASSERT_EQ(::ftruncate(plain.get(), 1 << 20), 0);
    EXPECT_EQ(Segment::Map(std::move(plain)).status().code(), absl::StatusCode::kInvalidArgument);
    UniqueFd sealed(::memfd_create("garbage", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ASSERT_EQ(::ftruncate(sealed.get(), 1 << 20), 0);
    ASSERT_EQ(::fcntl(sealed.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
    EXPECT_EQ(Segment::Map(std::move(sealed)).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(SegmentLayout::Compute({.submit_entries = 100}).ok());
    EXPECT_FALSE(SegmentLayout::Compute({.slot_payload = 12}).ok());
}

TEST(RegionAllocator, AllocatesFreesAndRejectsForeignOffsets) {
    RegionAllocator a(1 << 20);
    auto x = a.Allocate(1);
    auto y = a.Allocate(5000);
    ASSERT_TRUE(x && y);
    EXPECT_NE(*x, *y);
    EXPECT_TRUE(a.Contains(*y, 5000));
    EXPECT_TRUE(a.Contains(*y + 100, 4900));
    EXPECT_FALSE(a.Contains(*y, 1 << 20));
    EXPECT_FALSE(a.Free(*y + 256).has_value()) << "not the start of an allocation";
    EXPECT_FALSE(a.Free(*y + 1).has_value());
    EXPECT_EQ(a.Free(*y), 5120u);
    EXPECT_FALSE(a.Free(*y).has_value()) << "double free";
    EXPECT_FALSE(a.Free(uint64_t{1} << 40).has_value());
    EXPECT_FALSE(a.Allocate(2 << 20).has_value());
    EXPECT_TRUE(a.Free(*x).has_value());
    EXPECT_EQ(a.used(), 0u);
}

TEST(RegionAllocator, MatchesAModelUnderRandomUse) {
    constexpr uint64_t kRegion = 256 * 1024;
    RegionAllocator a(kRegion);
    std::map<uint64_t, uint64_t> live;  // offset -> bytes asked
    std::mt19937_64 rng(3);
    for (int i = 0; i < 200000; ++i) {
        if (live.empty() || rng() % 3 != 0) {
            uint64_t bytes = rng() % 3 == 0 ? rng() % 20000 : rng() % 600;
            auto off = a.Allocate(bytes);
            if (!off) {
                continue;
            }
            ASSERT_LE(*off + bytes, kRegion);
            auto next = live.lower_bound(*off);
            if (next != live.end()) {
                ASSERT_LE(*off + std::max<uint64_t>(bytes, 1), next->first) << "overlaps a live buffer";
            }
            if (next != live.begin()) {
                auto prev = std::prev(next);
                ASSERT_LE(prev->first + std::max<uint64_t>(prev->second, 1), *off) << "overlaps a live buffer";
            }
            live[*off] = bytes;
        } else {
            auto it = live.begin();
            std::advance(it, rng() % live.size());
            ASSERT_TRUE(a.Free(it->first).has_value());
            live.erase(it);
        }
    }
    EXPECT_EQ(a.live(), live.size());
}

TEST(Doorbell, FutexWakesAWaitingPeerAndIdleWaitsCostNoCpu) {
    Segment seg = NewSegment();
    SegmentHeader* h = seg.header();
    std::atomic<bool> flag{false};
    std::atomic<bool> woke{false};
    double cpu_ms = 0;
    std::thread waiter([&] {
        struct rusage before, after;
        getrusage(RUSAGE_THREAD, &before);
        woke = WaitForCreator(h, [&] { return flag.load(); }, absl::Microseconds(50), absl::Seconds(10));
        getrusage(RUSAGE_THREAD, &after);
        cpu_ms = (after.ru_utime.tv_sec - before.ru_utime.tv_sec) * 1e3 +
                 (after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e3 +
                 (after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1e3 +
                 (after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e3;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    flag = true;
    NotifyPeer(h);
    waiter.join();
    EXPECT_TRUE(woke);
    EXPECT_LT(cpu_ms, 100) << "a waiter idle for 0.5 s burned " << cpu_ms << " ms of CPU";
    EXPECT_EQ(h->peer_waiting, 0u);
    // Nothing to wait for: the timeout ends the wait.
    auto start = absl::Now();
    EXPECT_FALSE(WaitForCreator(h, [] { return false; }, absl::Microseconds(10), absl::Milliseconds(50)));
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
}

TEST(Doorbell, EventFdRingsOnlyWhenTheCreatorMaySleep) {
    Segment seg = NewSegment();
    auto bell = EventFd::Create();
    ASSERT_TRUE(bell.ok());
    NotifyCreator(seg.header(), *bell);
    EXPECT_FALSE(bell->Drain()) << "an awake creator needs no syscall";
    seg.header()->creator_sleeping = 1;
    NotifyCreator(seg.header(), *bell);
    NotifyCreator(seg.header(), *bell);
    EXPECT_TRUE(bell->Drain());
    EXPECT_FALSE(bell->Drain());
}

TEST(FdPassing, DescriptorsCrossASocketAndSurviveTheSender) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd a(sv[0]), b(sv[1]);
    Segment seg = NewSegment();
    auto bell = EventFd::Create();
    ASSERT_TRUE(SendWithFds(a.get(), "hello", {seg.fd(), bell->fd()}).ok());
    char buf[16];
    std::vector<UniqueFd> fds;
    auto n = ReceiveWithFds(b.get(), buf, sizeof buf, &fds);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(std::string(buf, *n), "hello");
    ASSERT_EQ(fds.size(), 2u);
    struct stat s1, s2;
    fstat(seg.fd(), &s1);
    fstat(fds[0].get(), &s2);
    EXPECT_EQ(s1.st_ino, s2.st_ino);
    EXPECT_EQ(fcntl(fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    a.reset();
    fds.clear();
    auto closed = ReceiveWithFds(b.get(), buf, sizeof buf, &fds);
    ASSERT_TRUE(closed.ok());
    EXPECT_EQ(*closed, 0u);
    EXPECT_FALSE(SendWithFds(b.get(), "", {}).ok());
}

// ---- across processes ------------------------------------------------------------------

constexpr char kProducerFlag[] = "--shm-producer";
constexpr uint64_t kCrossProcessCount = 200000;

// The child: receives the segment and doorbell over the inherited socket, pushes
// descriptors as the peer would, and rings the doorbell when the creator sleeps.
int RunProducer(int sock) {
    char buf[8];
    std::vector<UniqueFd> fds;
    auto n = ReceiveWithFds(sock, buf, sizeof buf, &fds);
    if (!n.ok() || fds.size() != 2) {
        return 2;
    }
    auto seg = Segment::Map(std::move(fds[0]));
    if (!seg.ok()) {
        return 3;
    }
    EventFd bell(std::move(fds[1]));
    RingSlots ring = seg->submit_ring();
    for (uint64_t i = 0; i < kCrossProcessCount; ++i) {
        Desc d = Make(1, i);
        while (!ring.PushShared(&seg->header()->submit_tail, &d)) {
            NotifyCreator(seg->header(), bell);
            std::this_thread::yield();
        }
        if (i % 1000 == 0) {
            NotifyCreator(seg->header(), bell);
        }
    }
    NotifyCreator(seg->header(), bell);
    return 0;
}

TEST(CrossProcess, APeerProcessFeedsTheRingThroughAPassedSegment) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);  // the child's end must survive exec
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        std::string fd = std::to_string(sv[1]);
        execl("/proc/self/exe", "shmring_test", kProducerFlag, fd.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    close(sv[1]);
    UniqueFd sock(sv[0]);
    Segment seg = NewSegment(128);
    auto bell = EventFd::Create();
    ASSERT_TRUE(SendWithFds(sock.get(), "s", {seg.fd(), bell->fd()}).ok());
    RingSlots ring = seg.submit_ring();
    uint64_t head = 0, got = 0;
    while (got < kCrossProcessCount) {
        Desc d;
        if (ring.PopPrivate(&head, &d)) {
            ASSERT_EQ(d.seq, got);
            ASSERT_EQ(d.check, d.producer * 1000003 ^ d.seq);
            ++got;
            continue;
        }
        // Sleep as the daemon will: announce, re-check, then block on the doorbell.
        std::atomic_ref<uint32_t>(seg.header()->creator_sleeping).store(1, std::memory_order_seq_cst);
        if (!ring.ReadyAt(head)) {
            fd_set set;
            FD_ZERO(&set);
            FD_SET(bell->fd(), &set);
            struct timeval tv = {5, 0};
            ASSERT_GT(select(bell->fd() + 1, &set, nullptr, nullptr, &tv), 0) << "lost wake-up";
            bell->Drain();
        }
        std::atomic_ref<uint32_t>(seg.header()->creator_sleeping).store(0, std::memory_order_seq_cst);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace shmring

namespace shmring {
namespace {

TEST(AdaptiveSpin, SpinsWhileAnswersComeQuicklyAndBacksOffWhenTheyDoNot) {
    AdaptiveSpin spin(absl::Microseconds(50));
    EXPECT_EQ(spin.budget(), absl::Microseconds(50));
    spin.Record(absl::Microseconds(80));  // caught by a sleep soon after the spin: still worth it
    EXPECT_EQ(spin.budget(), absl::Microseconds(50));
    spin.Record(absl::Milliseconds(2));  // far longer: spinning only took a core
    EXPECT_EQ(spin.budget(), absl::Microseconds(25));
    for (int i = 0; i < 10; ++i) {
        spin.Record(absl::Milliseconds(2));
    }
    EXPECT_EQ(spin.budget(), absl::ZeroDuration()) << "down to none";
    spin.Record(absl::Microseconds(60));  // a quick answer: a short spin first
    EXPECT_EQ(spin.budget(), absl::Microseconds(1));
    for (int i = 0; i < 5; ++i) {
        spin.Record(absl::Microseconds(60));
    }
    EXPECT_EQ(spin.budget(), absl::Microseconds(50)) << "quick answers again: back to the whole spin";
}

}  // namespace
}  // namespace shmring

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == shmring::kProducerFlag) {
        int fd = -1;
        if (!absl::SimpleAtoi(argv[2], &fd)) {
            return 2;
        }
        return shmring::RunProducer(fd);
    }
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

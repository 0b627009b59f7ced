// The daemon's Redis client against real redis-server processes: a standalone server and a
// 6-node cluster made by redis-cli, on loopback.

#include "redis/redis_client.h"

#include <arpa/inet.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include <poll.h>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "redis/resolver.h"
#include "redis_fixture.h"

namespace zerohop::redis {
namespace {

using testing::RedisCluster;
using testing::RedisServer;

class RedisClientTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/zh-redis-XXXXXX";
        dir_ = mkdtemp(tmpl);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    ClientOptions Options(int port) {
        ClientOptions o;
        o.seeds = {{"127.0.0.1", port}};
        o.connect_timeout = absl::Seconds(2);
        return o;
    }

    std::string dir_;
};

TEST(RedisUrl, ParsesListsPortsAndBrackets) {
    auto a = ParseRedisUrl("redis://10.0.0.1:7000,10.0.0.2,[::1]:7002/");
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ(a->size(), 3u);
    EXPECT_EQ((*a)[0], (Endpoint{"10.0.0.1", 7000}));
    EXPECT_EQ((*a)[1], (Endpoint{"10.0.0.2", 6379}));
    EXPECT_EQ((*a)[2], (Endpoint{"::1", 7002}));
    EXPECT_FALSE(ParseRedisUrl("redis://h:99999").ok());
    EXPECT_FALSE(ParseRedisUrl("redis://:7000").ok());
    EXPECT_FALSE(ParseRedisUrl("redis://[::1:7000").ok());
    EXPECT_TRUE(absl::IsUnimplemented(ParseRedisUrl("rediss://h:1").status()));
}

TEST(RedisKeySlot, IsRedisClustersCrc16AndHonoursHashTags) {
    EXPECT_EQ(KeySlot("foo"), 12182);
    EXPECT_EQ(KeySlot("123456789"), 0x31C3);
    EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
    EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
    EXPECT_EQ(KeySlot("foo{}{bar}"), KeySlot("foo{}{bar}")) << "an empty tag hashes the whole key";
    EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));
}

// Looks `ep` up until the resolver has an answer (or `limit` passes): pending until then.
absl::StatusOr<std::vector<SocketAddress>> LookupSettled(Resolver& r, const Endpoint& ep, bool* pending,
                                                         absl::Duration limit = absl::Seconds(30)) {
    absl::Time deadline = absl::Now() + limit;
    auto a = r.Lookup(ep, pending);
    while (*pending && absl::Now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        a = r.Lookup(ep, pending);
    }
    return a;
}

TEST(RedisResolver, NumericAddressesAreImmediateAndNamesAreLookedUpOffTheCaller) {
    Resolver r;
    bool pending = true;
    auto v4 = r.Lookup({"127.0.0.1", 6380}, &pending);
    ASSERT_TRUE(v4.ok()) << v4.status();
    EXPECT_FALSE(pending);
    ASSERT_EQ(v4->size(), 1u);
    const auto* in = reinterpret_cast<const sockaddr_in*>(&(*v4)[0].addr);
    EXPECT_EQ(in->sin_family, AF_INET);
    EXPECT_EQ(ntohs(in->sin_port), 6380);
    auto v6 = r.Lookup({"::1", 6379}, &pending);
    ASSERT_TRUE(v6.ok()) << v6.status();
    EXPECT_EQ((*v6)[0].addr.ss_family, AF_INET6);
    // A name: the first look only starts the lookup (the caller never waits for DNS).
    auto first = r.Lookup({"localhost", 6379}, &pending);
    EXPECT_TRUE(pending);
    EXPECT_TRUE(absl::IsUnavailable(first.status())) << first.status();
    EXPECT_TRUE(absl::StrContains(first.status().message(), "localhost:6379")) << first.status();
    auto settled = LookupSettled(r, {"localhost", 6379}, &pending);
    ASSERT_TRUE(settled.ok()) << settled.status();
    bool loopback = false;
    for (const SocketAddress& a : *settled) {
        if (a.addr.ss_family == AF_INET) {
            loopback |= ntohl(reinterpret_cast<const sockaddr_in*>(&a.addr)->sin_addr.s_addr) == INADDR_LOOPBACK;
        } else if (a.addr.ss_family == AF_INET6) {
            loopback |= IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&a.addr)->sin6_addr);
        }
    }
    EXPECT_TRUE(loopback);
    // Known from now on: answered at once.
    auto again = r.Lookup({"localhost", 6379}, &pending);
    EXPECT_TRUE(again.ok());
    EXPECT_FALSE(pending);
}

TEST(RedisResolver, ANameThatDoesNotResolveIsAnErrorThatNamesIt) {
    Resolver r(absl::Seconds(30), absl::Milliseconds(50));
    bool pending = false;
    auto a = LookupSettled(r, {"no-such-host.invalid", 6379}, &pending);
    if (pending) {
        GTEST_SKIP() << "the DNS server did not answer within 30 s";
    }
    ASSERT_FALSE(a.ok());
    EXPECT_TRUE(absl::IsUnavailable(a.status())) << a.status();
    EXPECT_TRUE(absl::StrContains(a.status().message(), "no-such-host.invalid:6379")) << a.status();
    // Tried again after `retry`: a lookup starts (or has already failed again).
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    auto b = r.Lookup({"no-such-host.invalid", 6379}, &pending);
    EXPECT_FALSE(b.ok());
}

TEST_F(RedisClientTest, PipelinesCommandsFromManyThreadsInOrder) {
    RedisServer server(dir_ + "/s");
    server.Start();
    auto c = RedisClient::Connect(Options(server.port()));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_FALSE((*c)->cluster());
    constexpr int kThreads = 4, kPerThread = 5000;
    std::atomic<int> bad{0}, done{0};
    absl::Notification all;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                std::string key = absl::StrCat("k", t, ":", i);
                // Binary-safe: NUL, CR, LF in the value.
                std::string value = absl::StrCat("v\0\r\n", t * kPerThread + i);
                (*c)->Send({"SET", key, value}, {.key = key}, [&](absl::StatusOr<Reply> r) {
                    if (!r.ok() || r->str != "OK") {
                        ++bad;
                    }
                });
                (*c)->Send({"GET", key}, {.key = key, .safe_to_retry = true}, [&, value](absl::StatusOr<Reply> r) {
                    if (!r.ok() || r->str != value) {
                        ++bad;
                    }
                    if (++done == kThreads * kPerThread) {
                        all.Notify();
                    }
                });
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    ASSERT_TRUE(all.WaitForNotificationWithTimeout(absl::Seconds(60)));
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(server.Command({"DBSIZE"}), std::to_string(kThreads * kPerThread));
    auto err = (*c)->Call({"INCR", "k0:0"});
    ASSERT_TRUE(err.ok());
    EXPECT_TRUE(err->is_error()) << "an error reply is a reply: " << err->ToString();
}

// Drives `lane` the way a daemon worker does (poll while busy, else sleep on its fd) until
// `until` returns true or `limit` passes.
bool DriveUntil(LoopLane& lane, const std::function<bool()>& until, absl::Duration limit = absl::Seconds(20)) {
    absl::Time end = absl::Now() + limit;
    while (!until()) {
        if (absl::Now() > end) {
            return false;
        }
        if (!lane.Poll() && !lane.Busy()) {
            pollfd p = {lane.fd(), POLLIN, 0};
            lane.Sleeping(true);
            ::poll(&p, 1, 5);
            lane.Sleeping(false);
        }
    }
    return true;
}

TEST_F(RedisClientTest, ALaneRunsOnItsThreadsOwnLoopAndSurvivesARestart) {
    RedisServer server(dir_ + "/s");
    server.Start();
    ClientOptions o = Options(server.port());
    o.retry_window = absl::Seconds(20);
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    auto lane = (*c)->Attach();
    ASSERT_TRUE(lane.ok()) << lane.status();
    EXPECT_TRUE(absl::IsFailedPrecondition((*c)->Attach().status())) << "one lane per thread";
    const std::thread::id me = std::this_thread::get_id();
    // Pipelined from this thread; every callback runs here, inside Poll, in order.
    constexpr int kCommands = 3000;
    int done = 0, bad = 0, elsewhere = 0;
    for (int i = 0; i < kCommands; ++i) {
        (*c)->Send({"INCR", "n"}, {.key = "n"}, [&, i](absl::StatusOr<Reply> r) {
            bad += !r.ok() || r->integer != i + 1;
            elsewhere += std::this_thread::get_id() != me;
            ++done;
        });
    }
    EXPECT_EQ(done, 0) << "nothing runs before the thread turns its loop";
    ASSERT_TRUE(DriveUntil(**lane, [&] { return done == kCommands; }));
    EXPECT_EQ(bad, 0);
    EXPECT_EQ(elsewhere, 0);
    EXPECT_FALSE((*lane)->Busy());
    // Call from the lane's thread goes through the client's own thread (no deadlock).
    EXPECT_EQ((*c)->Call({"GET", "n"})->str, std::to_string(kCommands));
    // The server goes away and comes back: a safe command sent meanwhile waits for it.
    server.Kill();
    std::optional<absl::StatusOr<Reply>> read;
    (*c)->Send({"GET", "n"}, {.safe_to_retry = true}, [&](absl::StatusOr<Reply> r) { read = std::move(r); });
    ASSERT_FALSE(DriveUntil(**lane, [&] { return read.has_value(); }, absl::Milliseconds(300)));
    server.Start();
    ASSERT_TRUE(DriveUntil(**lane, [&] { return read.has_value(); }));
    ASSERT_TRUE(read->ok()) << read->status();
    EXPECT_TRUE((*read)->is_nil()) << "the restarted server has no persistence";
    // A lane destroyed with a command in flight fails it; the thread then uses the client's own.
    std::optional<absl::StatusOr<Reply>> cut;
    (*c)->Send({"DEBUG", "SLEEP", "0.2"}, {}, [&](absl::StatusOr<Reply> r) { cut = std::move(r); });
    (*lane)->Poll();
    lane->reset();
    ASSERT_TRUE(cut.has_value());
    EXPECT_TRUE(absl::IsCancelled(cut->status()) || absl::IsUnavailable(cut->status())) << cut->status();
    EXPECT_EQ((*c)->Call({"SET", "after", "1"})->str, "OK");
    absl::Notification later;
    (*c)->Send({"GET", "after"}, {}, [&](absl::StatusOr<Reply> r) {
        EXPECT_NE(std::this_thread::get_id(), me) << "no lane here any more: the client's own thread answers";
        later.Notify();
    });
    EXPECT_TRUE(later.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(RedisClientTest, ServersNamedByHostNameAreReachedFromTheClientAndALane) {
    RedisServer server(dir_ + "/s");
    server.Start();
    ClientOptions o = Options(server.port());
    o.seeds = {{"localhost", server.port()}};
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->Call({"SET", "named", "1"})->str, "OK");
    auto lane = (*c)->Attach();
    ASSERT_TRUE(lane.ok()) << lane.status();
    std::optional<absl::StatusOr<Reply>> got;
    (*c)->Send({"GET", "named"}, {.safe_to_retry = true}, [&](absl::StatusOr<Reply> r) { got = std::move(r); });
    ASSERT_TRUE(DriveUntil(**lane, [&] { return got.has_value(); }));
    ASSERT_TRUE(got->ok()) << got->status();
    EXPECT_EQ((*got)->str, "1");
    // A seed whose name does not resolve: Unavailable within the connect timeout, named.
    o.seeds = {{"no-such-host.invalid", server.port()}};
    o.connect_timeout = absl::Milliseconds(500);
    auto start = absl::Now();
    auto bad = RedisClient::Connect(o);
    EXPECT_TRUE(absl::IsUnavailable(bad.status())) << bad.status();
    EXPECT_TRUE(absl::StrContains(bad.status().message(), "no-such-host.invalid")) << bad.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "waited for DNS instead of the connect timeout";
}

// A worker that starts while Redis is down still gets its lane, which carries on once the
// server is back.
TEST_F(RedisClientTest, ALaneAttachedWhileTheServerIsDownServesOnceItIsBack) {
    RedisServer server(dir_ + "/s");
    server.Start();
    ClientOptions o = Options(server.port());
    o.connect_timeout = absl::Milliseconds(300);
    o.retry_window = absl::Seconds(20);
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    server.Kill();
    auto lane = (*c)->Attach();
    ASSERT_TRUE(lane.ok()) << lane.status();
    const std::thread::id me = std::this_thread::get_id();
    std::optional<absl::StatusOr<Reply>> got;
    bool here = false;
    (*c)->Send({"INCR", "n"}, {.safe_to_retry = true}, [&](absl::StatusOr<Reply> r) {
        here = std::this_thread::get_id() == me;
        got = std::move(r);
    });
    ASSERT_FALSE(DriveUntil(**lane, [&] { return got.has_value(); }, absl::Milliseconds(300)));
    server.Start();
    ASSERT_TRUE(DriveUntil(**lane, [&] { return got.has_value(); }));
    ASSERT_TRUE(got->ok()) << got->status();
    EXPECT_EQ((*got)->integer, 1);
    EXPECT_TRUE(here) << "answered on the lane's thread";
}

TEST_F(RedisClientTest, CredentialsAreCheckedAndARefusalIsPermissionDenied) {
    RedisServer server(dir_ + "/s", {"--requirepass", "s3cret"});
    server.Start();
    ClientOptions o = Options(server.port());
    auto none = RedisClient::Connect(o);
    EXPECT_TRUE(absl::IsPermissionDenied(none.status())) << none.status();
    o.password = "wrong";
    auto wrong = RedisClient::Connect(o);
    EXPECT_TRUE(absl::IsPermissionDenied(wrong.status())) << wrong.status();
    EXPECT_FALSE(absl::StrContains(wrong.status().message(), "wrong")) << "the password must not be in messages";
    o.password = "s3cret";
    auto right = RedisClient::Connect(o);
    ASSERT_TRUE(right.ok()) << right.status();
    EXPECT_EQ((*right)->Call({"PING"})->str, "PONG");
    // An ACL user with its own password.
    server.Command({"ACL", "SETUSER", "zh", "on", ">userpass", "~*", "+@all"}, "s3cret");
    o.user = "zh";
    o.password = "userpass";
    auto user = RedisClient::Connect(o);
    ASSERT_TRUE(user.ok()) << user.status();
    EXPECT_EQ((*user)->Call({"ACL", "WHOAMI"})->str, "zh");
}

TEST_F(RedisClientTest, TheDatabaseIsSelectedOnEveryConnection) {
    RedisServer server(dir_ + "/s");
    server.Start();
    ClientOptions o = Options(server.port());
    o.database = 3;
    o.connections_per_node = 3;
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    for (int i = 0; i < 30; ++i) {
        ASSERT_EQ((*c)->Call({"SET", absl::StrCat("d", i), "x"})->str, "OK");
    }
    EXPECT_EQ(server.Command({"DBSIZE"}), "0") << "database 0 is untouched";
    EXPECT_EQ(server.Command({"INFO", "keyspace"}).find("db3:keys=30") != std::string::npos, true)
        << server.Command({"INFO", "keyspace"});
}

TEST_F(RedisClientTest, NoServerIsUnavailableWithinTheConnectTimeout) {
    ClientOptions o = Options(testing::FreeLoopbackPort());
    o.connect_timeout = absl::Milliseconds(500);
    auto start = absl::Now();
    auto c = RedisClient::Connect(o);
    EXPECT_TRUE(absl::IsUnavailable(c.status())) << c.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

// A peer that is not a sane Redis: an array header of a billion elements is refused before
// anything is allocated for it, the connection is dropped, and the caller hears why.
TEST_F(RedisClientTest, AnArrayHeaderTooLargeIsRefusedWithoutAllocatingIt) {
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener, 16), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    std::atomic<bool> stop{false};
    std::thread hostile([&] {
        std::vector<int> conns;
        while (!stop.load()) {
            pollfd p = {listener, POLLIN, 0};
            if (::poll(&p, 1, 20) == 1) {
                int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) {
                    char buf[512];
                    (void)!::read(fd, buf, sizeof buf);  // the PING
                    (void)!::write(fd, "*1000000000\r\n", 14);
                    conns.push_back(fd);
                }
            }
        }
        for (int fd : conns) {
            ::close(fd);
        }
    });
    ClientOptions o = Options(ntohs(addr.sin_port));
    o.connect_timeout = absl::Milliseconds(300);
    auto c = RedisClient::Connect(o);
    stop.store(true);
    hostile.join();
    ::close(listener);
    ASSERT_FALSE(c.ok());
    EXPECT_TRUE(absl::IsUnavailable(c.status())) << c.status();
    EXPECT_TRUE(absl::StrContains(c.status().message(), "an array of 1000000000 elements")) << c.status();
}

TEST_F(RedisClientTest, AServerThatGoesAwayAndComesBackIsReconnectedTo) {
    RedisServer server(dir_ + "/s");
    server.Start();
    ClientOptions o = Options(server.port());
    o.retry_window = absl::Seconds(20);
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ((*c)->Call({"SET", "k", "v"})->str, "OK");
    server.Kill();
    // Sent while it is down: safe commands wait for it; so does a write never sent.
    absl::Notification got, set;
    absl::StatusOr<Reply> read, write;
    (*c)->Send({"GET", "k"}, {.safe_to_retry = true}, [&](absl::StatusOr<Reply> r) {
        read = std::move(r);
        got.Notify();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    (*c)->Send({"SET", "k2", "w"}, {}, [&](absl::StatusOr<Reply> r) {
        write = std::move(r);
        set.Notify();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_FALSE(got.HasBeenNotified());
    server.Start();  // (no persistence: the restarted server is empty)
    ASSERT_TRUE(got.WaitForNotificationWithTimeout(absl::Seconds(20)));
    ASSERT_TRUE(set.WaitForNotificationWithTimeout(absl::Seconds(20)));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_TRUE(read->is_nil()) << read->ToString();
    ASSERT_TRUE(write.ok()) << "a write that was never sent is sent once the server is back: " << write.status();
    EXPECT_EQ(server.Command({"GET", "k2"}), "w");
    EXPECT_GE((*c)->stats().reconnects, 2u);
}

TEST_F(RedisClientTest, AWriteInFlightWhenTheServerDiesHasAnUnknownOutcome) {
    RedisServer server(dir_ + "/s");
    server.Start();
    ClientOptions o = Options(server.port());
    o.retry_window = absl::Seconds(2);
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    // DEBUG SLEEP holds the server so that the write after it is certainly in flight.
    (*c)->Send({"DEBUG", "SLEEP", "1"}, {}, [](absl::StatusOr<Reply>) {});
    absl::Notification done;
    absl::StatusOr<Reply> write;
    (*c)->Send({"INCR", "n"}, {}, [&](absl::StatusOr<Reply> r) {
        write = std::move(r);
        done.Notify();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    server.Kill();
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(absl::IsUnavailable(write.status())) << write.status();
    EXPECT_TRUE(absl::StrContains(write.status().message(), "may or may not")) << write.status();
}

TEST_F(RedisClientTest, ACommandWithoutAReplyTimesOutAndTheConnectionRecovers) {
    RedisServer server(dir_ + "/s");
    server.Start();
    ClientOptions o = Options(server.port());
    o.command_timeout = absl::Milliseconds(300);
    o.connections_per_node = 1;
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    auto slow = (*c)->Call({"DEBUG", "SLEEP", "1.5"});
    EXPECT_TRUE(absl::IsDeadlineExceeded(slow.status()) || absl::IsUnavailable(slow.status())) << slow.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    auto ping = (*c)->Call({"PING"}, {.safe_to_retry = true});
    ASSERT_TRUE(ping.ok()) << ping.status();
    EXPECT_EQ(ping->str, "PONG");
}

TEST_F(RedisClientTest, AWriteWaitingForReplicasIsAcknowledgedOnlyWhenTheyHaveIt) {
    RedisServer primary(dir_ + "/p");
    primary.Start();
    RedisServer replica(dir_ + "/r", {"--replicaof", "127.0.0.1", std::to_string(primary.port())});
    replica.Start();
    for (int i = 0; i < 100 && !absl::StrContains(replica.Command({"INFO", "replication"}), "master_link_status:up");
         ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto c = RedisClient::Connect(Options(primary.port()));
    ASSERT_TRUE(c.ok()) << c.status();
    // (Generous where the replica is up: a loaded 2-core machine under ASan has taken more
    // than 300 ms to confirm; short where it is gone and the wait must run out.)
    CommandOptions confirmed{.key = "k", .replicas = 1, .replica_timeout = absl::Seconds(5)};
    CommandOptions replicated{.key = "k", .replicas = 1, .replica_timeout = absl::Milliseconds(300)};
    auto w = (*c)->Call({"SET", "k", "1"}, confirmed);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->str, "OK") << "the command's own reply, once the replica has it";
    EXPECT_EQ(replica.Command({"GET", "k"}), "1");
    // An error reply is not waited for.
    auto e = (*c)->Call({"LPUSH", "k", "x"}, replicated);
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->is_error());
    replica.Kill();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto lost = (*c)->Call({"SET", "k", "2"}, replicated);
    EXPECT_TRUE(absl::IsUnavailable(lost.status())) << lost.status();
    EXPECT_TRUE(absl::StrContains(lost.status().message(), "0 of 1 replicas")) << lost.status();
    EXPECT_EQ(primary.Command({"GET", "k"}), "2") << "it is on the primary, unconfirmed";
    // Pipelined from many callers, each write still waits for its own WAIT.
    replica.Start();
    for (int i = 0; i < 100 && !absl::StrContains(replica.Command({"INFO", "replication"}), "master_link_status:up");
         ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::atomic<int> ok{0}, done{0};
    absl::Notification all;
    for (int i = 0; i < 200; ++i) {
        std::string key = absl::StrCat("w", i);
        (*c)->Send({"SET", key, "v"}, {.key = key, .replicas = 1, .replica_timeout = absl::Seconds(2)},
                   [&](absl::StatusOr<Reply> r) {
                       if (r.ok() && r->str == "OK") {
                           ++ok;
                       }
                       if (++done == 200) {
                           all.Notify();
                       }
                   });
    }
    ASSERT_TRUE(all.WaitForNotificationWithTimeout(absl::Seconds(30)));
    EXPECT_EQ(ok.load(), 200);
}

class RedisClusterTest : public RedisClientTest {
protected:
    void SetUp() override {
        RedisClientTest::SetUp();
        cluster_ = std::make_unique<RedisCluster>(dir_ + "/cluster");
        cluster_->Start();
    }
    void TearDown() override {
        cluster_.reset();
        RedisClientTest::TearDown();
    }
    std::unique_ptr<RedisCluster> cluster_;
};

TEST_F(RedisClusterTest, KeysAreRoutedToTheirSlotsPrimary) {
    // One seed is enough: the client learns the rest.
    auto c = RedisClient::Connect(Options(cluster_->node(4).port()));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE((*c)->cluster());
    constexpr int kKeys = 2000;
    std::atomic<int> bad{0}, done{0};
    absl::Notification all;
    for (int i = 0; i < kKeys; ++i) {
        std::string key = absl::StrCat("key:", i);
        (*c)->Send({"SET", key, std::to_string(i)}, {.key = key}, [&](absl::StatusOr<Reply> r) {
            if (!r.ok() || r->str != "OK") {
                ++bad;
            }
            if (++done == kKeys) {
                all.Notify();
            }
        });
    }
    ASSERT_TRUE(all.WaitForNotificationWithTimeout(absl::Seconds(30)));
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ((*c)->stats().redirects, 0u) << "the slot map was known: nothing should have been redirected";
    int total = 0;
    for (int i = 0; i < cluster_->size(); ++i) {
        if (absl::StartsWith(cluster_->node(i).Command({"ROLE"}), "master")) {
            int n = 0;
            ASSERT_TRUE(absl::SimpleAtoi(cluster_->node(i).Command({"DBSIZE"}), &n));
            EXPECT_GT(n, kKeys / 6) << "a primary got too few keys";
            total += n;
        }
    }
    EXPECT_EQ(total, kKeys);
    // Keys sharing a hash tag go together (what multi-key scripts need).
    auto r = (*c)->Call({"MSET", "{t}a", "1", "{t}b", "2"}, {.key = "{t}a"});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->str, "OK");
    // A lane learns the slot map too: every key read back through it from its primary.
    auto lane = (*c)->Attach();
    ASSERT_TRUE(lane.ok()) << lane.status();
    int read = 0, wrong = 0;
    for (int i = 0; i < kKeys; ++i) {
        std::string key = absl::StrCat("key:", i);
        (*c)->Send({"GET", key}, {.key = key, .safe_to_retry = true}, [&, i](absl::StatusOr<Reply> r) {
            wrong += !r.ok() || r->str != std::to_string(i);
            ++read;
        });
    }
    ASSERT_TRUE(DriveUntil(**lane, [&] { return read == kKeys; }));
    EXPECT_EQ(wrong, 0);
    EXPECT_EQ((*c)->stats().redirects, 0u);
}

TEST_F(RedisClusterTest, ASlotMidMigrationIsFollowedThroughAskAndThenMoved) {
    auto c = RedisClient::Connect(Options(cluster_->node(0).port()));
    ASSERT_TRUE(c.ok()) << c.status();
    std::string key = "migrating-key";
    int slot = KeySlot(key);
    ASSERT_EQ((*c)->Call({"SET", key, "here"}, {.key = key})->str, "OK");
    int from = cluster_->PrimaryOf(slot);
    ASSERT_GE(from, 0);
    int to = -1;
    for (int i = 0; i < cluster_->size() && to < 0; ++i) {
        if (i != from && absl::StartsWith(cluster_->node(i).Command({"ROLE"}), "master")) {
            to = i;
        }
    }
    ASSERT_GE(to, 0);
    std::string from_id = cluster_->node(from).Command({"CLUSTER", "MYID"});
    std::string to_id = cluster_->node(to).Command({"CLUSTER", "MYID"});
    std::string s = std::to_string(slot);
    ASSERT_EQ(cluster_->node(to).Command({"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}), "OK");
    ASSERT_EQ(cluster_->node(from).Command({"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}), "OK");
    ASSERT_EQ(cluster_->node(from).Command({"MIGRATE", "127.0.0.1", std::to_string(cluster_->node(to).port()), key,
                                            "0", "5000"}),
              "OK");
    // The source answers ASK for the moved key: the client asks the target, once.
    auto r = (*c)->Call({"GET", key}, {.key = key, .safe_to_retry = true});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->str, "here");
    EXPECT_GE((*c)->stats().redirects, 1u);
    // The migration ends: every node learns the new owner; the client follows MOVED.
    for (int i = 0; i < cluster_->size(); ++i) {
        cluster_->node(i).Command({"CLUSTER", "SETSLOT", s, "NODE", to_id});
    }
    uint64_t before = (*c)->stats().redirects;
    r = (*c)->Call({"GET", key}, {.key = key, .safe_to_retry = true});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->str, "here");
    EXPECT_EQ((*c)->stats().redirects, before + 1) << "MOVED once";
    r = (*c)->Call({"GET", key}, {.key = key, .safe_to_retry = true});
    EXPECT_EQ((*c)->stats().redirects, before + 1) << "and then straight to the new owner";
}

TEST_F(RedisClusterTest, APrimaryKilledUnderLoadFailsOverAndSafeCommandsCarryOn) {
    ClientOptions o = Options(cluster_->node(0).port());
    o.seeds.push_back({"127.0.0.1", cluster_->node(1).port()});
    o.retry_window = absl::Seconds(30);
    o.command_timeout = absl::Seconds(2);
    auto c = RedisClient::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    std::string key = "failover-key";
    int victim = cluster_->PrimaryOf(KeySlot(key));
    ASSERT_GE(victim, 0);
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::string last_error;
    absl::Mutex mu;
    std::thread load([&] {
        for (int i = 0; !stop.load(); ++i) {
            // SET of a fixed value is safe to repeat.
            auto w = (*c)->Call({"SET", key, std::to_string(i)}, {.key = key, .safe_to_retry = true});
            auto r = (*c)->Call({"GET", key}, {.key = key, .safe_to_retry = true});
            if (w.ok() && r.ok() && !w->is_error() && !r->is_error()) {
                ++ok;
            } else {
                ++failed;
                absl::MutexLock lock(&mu);
                last_error = !w.ok() ? w.status().ToString() : !r.ok() ? r.status().ToString() : r->ToString();
            }
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int before = ok.load();
    cluster_->node(victim).Kill();
    // Healthy again only once a replica took over (before the others notice, it is not).
    for (int i = 0; i < 300 && cluster_->PrimaryOf(KeySlot(key)) < 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(cluster_->WaitHealthy(std::chrono::seconds(30))) << "no replica took over";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    int after_failover = ok.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    stop = true;
    load.join();
    EXPECT_GT(before, 0);
    EXPECT_GT(ok.load(), after_failover) << "no progress after the failover";
    absl::MutexLock lock(&mu);
    EXPECT_EQ(failed.load(), 0) << "safe commands are retried through the failover; last error: " << last_error
                                << " (refreshes " << (*c)->stats().topology_refreshes << ", retries "
                                << (*c)->stats().retries << ", reconnects " << (*c)->stats().reconnects << ")";
    EXPECT_GE((*c)->stats().topology_refreshes, 1u);
}

}  // namespace
}  // namespace zerohop::redis

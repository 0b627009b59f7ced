// Several zerohopd daemons serving one container from the same Redis (standalone and
// Cluster): one namespace for every node, atomic updates across daemons, a refused password,
// and a primary killed under load.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "daemon_fixture.h"
#include "redis/redis_client.h"
#include "redis_fixture.h"
#include "zerohop/client.h"

namespace zerohop::testing {
namespace {

Path P(std::string_view s) { return *Path::Parse(s); }

class RedisDaemonTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/zh-redis-daemon-XXXXXX";
        dir_ = mkdtemp(tmpl);
    }
    void TearDown() override {
        daemons_.clear();
        std::filesystem::remove_all(dir_);
    }

    // `n` daemons, each its own directory and socket, "demo" on `url`.
    void StartDaemons(int n, const std::string& url, const std::string& more = "") {
        for (int i = 0; i < n; ++i) {
            std::string d = absl::StrCat(dir_, "/d", i);
            std::filesystem::create_directories(d);
            daemons_.push_back(std::make_unique<Daemon>(
                d, 2, "", absl::StrCat("backend: redis, options: {url: '", url, "'", more, "}")));
            daemons_.back()->Start();
        }
    }

    // Every daemon's clients add 1 to the same counters, `per_client` times each; none is lost.
    void CountersLoseNothing(int clients_per_daemon, int per_client) {
        {
            auto client = daemons_[0]->Connect("rw-key");
            ASSERT_TRUE(client.ok());
            ASSERT_TRUE((*client)->Mkdir({.path = P("/demo/counters")}).ok());
        }
        std::atomic<int> failures{0};
        std::string last_error;
        absl::Mutex mu;
        std::vector<std::thread> threads;
        for (auto& d : daemons_) {
            for (int c = 0; c < clients_per_daemon; ++c) {
                threads.emplace_back([&, daemon = d.get()] {
                    auto client = daemon->Connect("rw-key");
                    ASSERT_TRUE(client.ok()) << client.status();
                    for (int i = 0; i < per_client; ++i) {
                        for (const char* counter : {"/demo/counters/a", "/demo/counters/b"}) {
                            auto r = (*client)->UpdateItem({.path = P(counter),
                                                            .update = "n = n + 1",
                                                            .condition = "exists(n)",
                                                            .else_update = "n = 1"});
                            if (!r.ok()) {
                                ++failures;
                                absl::MutexLock lock(&mu);
                                last_error = r.status().ToString();
                            }
                        }
                    }
                });
            }
        }
        for (auto& t : threads) {
            t.join();
        }
        absl::MutexLock lock(&mu);
        ASSERT_EQ(failures.load(), 0) << last_error;
        auto client = daemons_[0]->Connect("rw-key");
        ASSERT_TRUE(client.ok());
        int64_t want = static_cast<int64_t>(daemons_.size()) * clients_per_daemon * per_client;
        for (const char* counter : {"/demo/counters/a", "/demo/counters/b"}) {
            auto item = (*client)->GetItem({.path = P(counter), .attributes = {"n"}});
            ASSERT_TRUE(item.ok()) << item.status();
            EXPECT_EQ(item->attributes.at("n").as_int64(), want) << counter << ": an update was lost";
        }
    }

    std::string dir_;
    std::vector<std::unique_ptr<Daemon>> daemons_;
};

TEST_F(RedisDaemonTest, DaemonsOnOneRedisShareOneNamespace) {
    RedisServer server(dir_ + "/redis");
    server.Start();
    StartDaemons(2, absl::StrCat("redis://127.0.0.1:", server.port()));
    auto a = daemons_[0]->Connect("rw-key");
    auto b = daemons_[1]->Connect("rw-key");
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE((*a)->Mkdir({.path = P("/demo/t")}).ok());
    ASSERT_TRUE((*a)->PutObject({.path = P("/demo/t/x")}, std::string(200000, 'x')).ok());
    auto got = (*b)->GetObject({.path = P("/demo/t/x")});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, std::string(200000, 'x')) << "what one node writes, another reads";
    ASSERT_TRUE((*b)->Rename({.from = P("/demo/t"), .to = P("/demo/u")}).ok());
    EXPECT_TRUE(absl::IsNotFound((*a)->Stat(P("/demo/t/x")).status()));
    EXPECT_TRUE((*a)->Stat(P("/demo/u/x")).ok());
}

TEST_F(RedisDaemonTest, ExpiredRecordsLeaveRedisOnceTheirShardIsRead) {
    RedisServer server(dir_ + "/redis");
    server.Start();
    StartDaemons(1, absl::StrCat("redis://127.0.0.1:", server.port()));
    auto c = daemons_[0]->Connect("rw-key");
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->CreateStream({.path = P("/demo/s"), .shard_count = 1, .retention_secs = 1}).ok());
    ASSERT_TRUE((*c)->PutRecords({.path = P("/demo/s"), .records = {{.data = "a"}, {.data = "b"}}}).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    ASSERT_TRUE((*c)->PutRecords({.path = P("/demo/s"), .records = {{.data = "c"}}}).ok());
    std::string key = server.Command({"KEYS", "{zh:demo}:s:*"});
    ASSERT_FALSE(key.empty());
    EXPECT_EQ(server.Command({"XLEN", key}), "3");
    auto got = (*c)->GetRecords({.path = P("/demo/s"), .location = {0, 1}});
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->records.size(), 1u);
    EXPECT_EQ(got->records[0].data, "c");
    std::string len;
    for (int i = 0; i < 100 && (len = server.Command({"XLEN", key})) != "1"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(len, "1") << "the expired records are still in Redis";
}

TEST_F(RedisDaemonTest, CounterUpdatesFromManyDaemonsLoseNothing) {
    RedisServer server(dir_ + "/redis");
    server.Start();
    StartDaemons(3, absl::StrCat("redis://127.0.0.1:", server.port()));
    CountersLoseNothing(3, 60);
}

TEST_F(RedisDaemonTest, CounterUpdatesFromManyDaemonsLoseNothingOnACluster) {
    RedisCluster cluster(dir_ + "/cluster");
    cluster.Start();
    StartDaemons(3, absl::StrCat("redis://127.0.0.1:", cluster.node(0).port(), ",127.0.0.1:", cluster.node(1).port()));
    CountersLoseNothing(2, 50);
}

TEST_F(RedisDaemonTest, MetricsLabelEachRequestWithTheBackendThatServedIt) {
    RedisServer server(dir_ + "/redis");
    server.Start();
    StartDaemons(1, absl::StrCat("redis://127.0.0.1:", server.port()));  // "other" stays embedded
    auto demo = daemons_[0]->Connect("rw-key");
    auto other = daemons_[0]->Connect("other-key");
    ASSERT_TRUE(demo.ok() && other.ok());
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE((*demo)->PutItem({.path = P("/demo/m"), .attributes = {{"v", Value::Int64(i)}}}).ok());
    }
    ASSERT_TRUE((*other)->PutItem({.path = P("/other/m"), .attributes = {{"v", Value::Int64(1)}}}).ok());
    EXPECT_FALSE((*demo)->GetItem({.path = P("/demo/missing")}).ok());
    ASSERT_TRUE((*demo)->Nop().ok());
    std::string m = daemons_[0]->Metrics();
    EXPECT_TRUE(absl::StrContains(m, "zerohop_requests_total{op=\"put_item\",backend=\"redis\"} 3\n")) << m;
    EXPECT_TRUE(absl::StrContains(m, "zerohop_requests_total{op=\"put_item\",backend=\"embedded\"} 1\n")) << m;
    EXPECT_TRUE(absl::StrContains(
        m, "zerohop_request_errors_total{op=\"get_item\",backend=\"redis\",code=\"NOT_FOUND\"} 1\n"))
        << m;
    EXPECT_TRUE(absl::StrContains(m, "zerohop_requests_total{op=\"nop\",backend=\"zerohopd\"} 1\n")) << m;
}

TEST_F(RedisDaemonTest, ARefusedPasswordStopsTheDaemonWithAClearErrorAndNoSecret) {
    RedisServer server(dir_ + "/redis", {"--requirepass", "the-right-one"});
    server.Start();
    std::ofstream(dir_ + "/pw") << "not-the-password\n";
    std::ofstream(dir_ + "/zerohopd.yaml")
        << "listen: " << dir_ << "/zh.sock\nmetrics_port: 0\nlog_level: warning\n"
        << "mounts:\n  - {container: demo, backend: redis, options: {url: 'redis://127.0.0.1:" << server.port()
        << "', password_file: " << dir_ << "/pw}}\n"
        << "credentials:\n  - {key: k, containers: {demo: rw}}\n";
    int code = -1;
    std::string out = RunShell(absl::StrCat("timeout 30 ", getenv("ZEROHOPD"), " --config ", dir_, "/zerohopd.yaml"),
                               &code);
    EXPECT_NE(code, 0) << out;
    EXPECT_TRUE(absl::StrContains(out, "refused the credentials")) << out;
    EXPECT_FALSE(absl::StrContains(out, "not-the-password")) << "the password is in the log: " << out;
}

TEST_F(RedisDaemonTest, ARedisThatGoesAwayAndComesBackIsWaitedForAndServedAgain) {
    // Persistent (every write fsynced), so that what was acknowledged is there after the restart.
    RedisServer server(dir_ + "/redis", {"--appendonly", "yes", "--appendfsync", "always"});
    server.Start();
    StartDaemons(1, absl::StrCat("redis://127.0.0.1:", server.port()), ", retry_window_ms: 20000");
    auto client = daemons_[0]->Connect("rw-key");
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE((*client)->PutItem({.path = P("/demo/k"), .attributes = {{"n", Value::Int64(1)}}}).ok());
    server.Kill();
    // Asked while it is down: a read, and a write never sent, wait for it (within the retry
    // window) on the worker's lane, which reconnects.
    absl::StatusOr<Item> read = absl::UnknownError("not run");
    absl::StatusOr<ObjectInfo> write = absl::UnknownError("not run");
    std::thread reader([&] {
        auto c = daemons_[0]->Connect("rw-key");
        ASSERT_TRUE(c.ok());
        read = (*c)->GetItem({.path = P("/demo/k"), .attributes = {"n"}});
    });
    std::thread writer([&] {
        auto c = daemons_[0]->Connect("rw-key");
        ASSERT_TRUE(c.ok());
        write = (*c)->PutItem({.path = P("/demo/while-down"), .attributes = {{"n", Value::Int64(2)}}});
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    server.Start();
    reader.join();
    writer.join();
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->attributes.at("n").as_int64(), 1);
    ASSERT_TRUE(write.ok()) << "a write that was never sent goes out once Redis is back: " << write.status();
    // And the session that was open all along carries on.
    auto after = (*client)->GetItem({.path = P("/demo/while-down"), .attributes = {"n"}});
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(after->attributes.at("n").as_int64(), 2);
    EXPECT_TRUE((*client)->UpdateItem({.path = P("/demo/k"), .update = "n = n + 1"}).ok());
}

TEST_F(RedisDaemonTest, APrimaryKilledUnderLoadLosesNoAcknowledgedWrite) {
    RedisCluster cluster(dir_ + "/cluster");
    cluster.Start();
    // Writes are acknowledged once a replica has them: that is what survives a failover.
    StartDaemons(1, absl::StrCat("redis://127.0.0.1:", cluster.node(0).port(), ",127.0.0.1:", cluster.node(1).port()),
                 ", replicas: 1, replica_timeout_ms: 2000, retry_window_ms: 30000");
    auto client = daemons_[0]->Connect("rw-key");
    ASSERT_TRUE(client.ok());
    int victim = cluster.PrimaryOf(redis::KeySlot("{zh:demo}:ver"));
    ASSERT_GE(victim, 0);
    std::atomic<bool> stop{false};
    std::vector<int> acknowledged;
    int errors = 0, other_errors = 0;
    std::string last_error;
    std::thread load([&] {
        for (int i = 0; !stop.load(); ++i) {
            auto r = (*client)->PutItem({.path = P(absl::StrCat("/demo/k", i)), .attributes = {{"i", Value::Int64(i)}}});
            if (r.ok()) {
                acknowledged.push_back(i);
            } else {
                ++errors;
                other_errors += absl::IsUnavailable(r.status()) ? 0 : 1;
                last_error = r.status().ToString();
            }
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cluster.node(victim).Kill();
    for (int i = 0; i < 300 && cluster.PrimaryOf(redis::KeySlot("{zh:demo}:ver")) < 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    // The promoted replica has no replica of its own until the old primary comes back (as
    // Kubernetes would restart it): until then writes cannot be confirmed, and fail.
    cluster.node(victim).Start();
    ASSERT_TRUE(cluster.WaitHealthy(std::chrono::seconds(30)));
    size_t at_failover = 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    at_failover = acknowledged.size();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    stop = true;
    load.join();
    EXPECT_GT(acknowledged.size(), at_failover) << "no progress after the failover (" << errors
                                                 << " errors, last: " << last_error << ")";
    // The only errors: writes that were not confirmed by a replica in the failover window.
    EXPECT_EQ(other_errors, 0) << last_error;
    for (int i : acknowledged) {
        auto item = (*client)->GetItem({.path = P(absl::StrCat("/demo/k", i))});
        ASSERT_TRUE(item.ok()) << "acknowledged write k" << i << " was lost: " << item.status();
    }
}

}  // namespace
}  // namespace zerohop::testing

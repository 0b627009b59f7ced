// zerohopd and libzerohop end to end: a real daemon process, real sessions.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "shmring/fd_passing.h"
#include "shmring/segment.h"
#include "shmring/doorbell.h"
#include "daemon_fixture.h"
#include "zerohop/client.h"
#include "wire/protocol.h"

namespace zerohop {
namespace {

using protocol::Descriptor;
using protocol::Op;
using testing::Daemon;

Path P(std::string_view s) { return *Path::Parse(s); }

class SessionTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/zh-session-XXXXXX";
        dir_ = mkdtemp(tmpl);
        daemon_ = std::make_unique<Daemon>(dir_);
        daemon_->Start();
        auto c = daemon_->Connect("rw-key");
        ASSERT_TRUE(c.ok()) << c.status();
        client_ = std::move(*c);
    }
    void TearDown() override {
        client_.reset();
        daemon_.reset();
        std::filesystem::remove_all(dir_);
    }

    std::string dir_;
    std::unique_ptr<Daemon> daemon_;
    std::unique_ptr<Client> client_;
};

#define ASSERT_OK(expr)                                          \
    do {                                                         \
        const auto& _r = (expr);                                 \
        ASSERT_TRUE(_r.ok()) << #expr << ": " << _r.status();    \
    } while (0)
#define ASSERT_OK_STATUS(expr)                         \
    do {                                               \
        absl::Status _s = (expr);                      \
        ASSERT_TRUE(_s.ok()) << #expr << ": " << _s;   \
    } while (0)

TEST_F(SessionTest, EveryOperationWorksThroughTheRings) {
    Client& c = *client_;
    ASSERT_OK_STATUS(c.Nop());
    auto containers = c.ListContainers();
    ASSERT_OK(containers);
    EXPECT_EQ(*containers, std::vector<std::string>{"demo"}) << "a key sees only its containers";
    ASSERT_OK(c.Mkdir({.path = P("/demo/dir")}));
    ASSERT_OK(c.PutObject({.path = P("/demo/dir/obj"), .attributes = {{"v", Value::Int64(1)}}}, "hello world"));
    EXPECT_EQ(*c.GetObject({.path = P("/demo/dir/obj")}), "hello world");
    EXPECT_EQ(*c.GetObject({.path = P("/demo/dir/obj"), .offset = 6, .length = 3}), "wor");
    EXPECT_EQ(*c.GetObject({.path = P("/demo/dir/obj"), .offset = 50, .length = 3}), "") << "past the end: nothing";
    ASSERT_OK(c.WriteObject({.path = P("/demo/dir/obj"), .offset = 0, .data = "HELLO"}));
    auto appended = c.Append({.path = P("/demo/dir/obj"), .data = "!"});
    ASSERT_OK(appended);
    EXPECT_EQ(appended->size, 12u);
    ASSERT_OK(c.Truncate({.path = P("/demo/dir/obj"), .size = 5}));
    EXPECT_EQ(*c.GetObject({.path = P("/demo/dir/obj")}), "HELLO");
    // An object larger than the daemon's buffer region comes back in ranges.
    std::string big(1 << 20, 'b');
    for (int i = 0; i < 5; ++i) {
        ASSERT_OK(c.Append({.path = P("/demo/dir/obj"), .data = big}));
    }
    auto whole = c.GetObject({.path = P("/demo/dir/obj")});
    ASSERT_OK(whole);
    EXPECT_EQ(whole->size(), 5u + 5 * (1u << 20));
    auto st = c.Stat(P("/demo/dir/obj"));
    ASSERT_OK(st);
    EXPECT_EQ(st->type, ObjectType::kObject);
    auto list = c.List({.path = P("/demo/dir")});
    ASSERT_OK(list);
    ASSERT_EQ(list->entries.size(), 1u);
    ASSERT_OK_STATUS(c.Rename({.from = P("/demo/dir/obj"), .to = P("/demo/dir/moved")}));
    ASSERT_OK(c.Symlink({.path = P("/demo/link"), .target = "dir/moved"}));
    EXPECT_EQ(*c.Readlink(P("/demo/link")), "dir/moved");
    ASSERT_OK(c.SetMetadata({.path = P("/demo/dir/moved"), .mode = 0600}));
    EXPECT_EQ(c.Stat(P("/demo/dir/moved"))->mode, 0600u);
    ASSERT_OK_STATUS(c.Delete({.path = P("/demo/dir/moved")}));
    ASSERT_OK_STATUS(c.Rmdir(P("/demo/dir")));
    EXPECT_EQ(c.Stat(P("/demo/dir")).status().code(), absl::StatusCode::kNotFound);

    ASSERT_OK(c.Mkdir({.path = P("/demo/people")}));
    ASSERT_OK(c.PutItem({.path = P("/demo/people/alice"), .attributes = {{"age", Value::Int64(40)}}}));
    auto batch = c.PutItems({{.path = P("/demo/people/bob"), .attributes = {{"age", Value::Int64(29)}}},
                             {.path = P("/demo/nodir/x"), .attributes = {}}});
    ASSERT_OK(batch);
    EXPECT_TRUE((*batch)[0].ok());
    EXPECT_EQ((*batch)[1].code(), absl::StatusCode::kNotFound);
    ASSERT_OK(c.UpdateItem({.path = P("/demo/people/alice"), .update = "visits = if_not_exists(visits, 0) + 1"}));
    auto alice = c.GetItem({.path = P("/demo/people/alice"), .attributes = {"age", "visits", "__name"}});
    ASSERT_OK(alice);
    EXPECT_EQ(alice->attributes.at("visits"), Value::Int64(1));
    auto scan = c.GetItems({.path = P("/demo/people"), .filter = "age > 30"});
    ASSERT_OK(scan);
    ASSERT_EQ(scan->items.size(), 1u);
    EXPECT_EQ(scan->items[0].name, "alice");
    auto bad = c.UpdateItem({.path = P("/demo/people/alice"), .update = "a = ("});
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(bad.status().message()).find("byte"), std::string::npos) << "errors keep their message";

    ASSERT_OK(c.CreateStream({.path = P("/demo/s"), .shard_count = 2, .retention_secs = 60}));
    EXPECT_EQ(c.DescribeStream(P("/demo/s"))->shard_count, 2u);
    auto put = c.PutRecords({.path = P("/demo/s"), .records = {{.data = "r1", .shard = 1}, {.data = "r2", .shard = 1}}});
    ASSERT_OK(put);
    auto loc = c.Seek({.path = P("/demo/s"), .shard = 1, .type = SeekType::kEarliest});
    ASSERT_OK(loc);
    auto recs = c.GetRecords({.path = P("/demo/s"), .location = *loc});
    ASSERT_OK(recs);
    ASSERT_EQ(recs->records.size(), 2u);
    EXPECT_EQ(recs->records[1].data, "r2");
    ASSERT_OK_STATUS(c.DeleteStream(P("/demo/s")));
    ASSERT_OK_STATUS(c.Sync());
    auto status = c.Status();
    ASSERT_OK(status);
    EXPECT_EQ(status->workers, 2u);
    EXPECT_GE(status->sessions_open, 1u);
    EXPECT_GT(status->requests, 10u);
    EXPECT_EQ(status->containers, std::vector<std::string>{"demo"});
}

TEST_F(SessionTest, PutsLargerThanTheBufferRegionStreamThroughIt) {
    // 64 MiB through a 2 MiB client region, generated on the fly: never held whole.
    constexpr uint64_t kSize = 64ull << 20;
    uint64_t produced = 0;
    auto gen = [&](char* buf, size_t cap) -> absl::StatusOr<size_t> {
        size_t n = static_cast<size_t>(std::min<uint64_t>(cap, kSize - produced));
        for (size_t i = 0; i < n; ++i) {
            buf[i] = static_cast<char>((produced + i) * 7 >> 2);
        }
        produced += n;
        return n;
    };
    ASSERT_OK(client_->PutObject({.path = P("/demo/big")}, "old"));
    auto put = client_->PutObjectFrom({.path = P("/demo/big"), .attributes = {{"v", Value::Int64(2)}}}, gen);
    ASSERT_OK(put);
    EXPECT_EQ(put->size, kSize);
    uint64_t checked = 0;
    GetObjectRequest req{.path = P("/demo/big")};
    while (checked < kSize) {
        auto view = client_->GetObjectView(req);
        ASSERT_OK(view);
        std::string_view b = view->data();
        ASSERT_FALSE(b.empty());
        for (size_t i = 0; i < b.size(); ++i) {
            ASSERT_EQ(b[i], static_cast<char>((checked + i) * 7 >> 2)) << "at " << checked + i;
        }
        checked += b.size();
        req.offset = checked;
    }
    EXPECT_EQ(client_->GetItem({.path = P("/demo/big")})->attributes.at("v"), Value::Int64(2));

    // A put whose source fails half way changes nothing.
    produced = 0;
    int calls = 0;
    auto failing = [&](char* buf, size_t cap) -> absl::StatusOr<size_t> {
        if (++calls > 3) {
            return absl::DataLossError("the source broke");
        }
        return gen(buf, cap);
    };
    auto broken = client_->PutObjectFrom({.path = P("/demo/big")}, failing);
    EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(client_->Stat(P("/demo/big"))->size, kSize) << "a failed put replaced the object";
    // A condition is checked when the last chunk is in.
    produced = 0;
    auto cond = client_->PutObjectFrom({.path = P("/demo/big"), .condition = "v == 99"}, gen);
    EXPECT_EQ(cond.status().code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_OK_STATUS(client_->Nop());  // the session is healthy afterwards
}

TEST_F(SessionTest, AsyncCompletionsArriveThroughPoll) {
    constexpr int kOps = 2000;
    std::atomic<int> ok{0};
    ASSERT_OK(client_->PutItem({.path = P("/demo/k"), .attributes = {{"v", Value::Int64(7)}}}));
    for (int i = 0; i < kOps; ++i) {
        client_->GetItemAsync({.path = P("/demo/k")}, [&](absl::StatusOr<Item> r) {
            if (r.ok() && r->attributes.at("v") == Value::Int64(7)) {
                ok.fetch_add(1);
            }
        });
        if (i % 32 == 31) {
            client_->Poll();
        }
    }
    auto deadline = absl::Now() + absl::Seconds(20);
    while (ok.load() < kOps && absl::Now() < deadline) {
        client_->WaitAndPoll(absl::Milliseconds(100));
    }
    EXPECT_EQ(ok.load(), kOps);
}

TEST_F(SessionTest, EveryOperationHasAnAsyncForm) {
    int pending = 0;
    std::vector<std::string> errors;
    auto ok = [](const auto&) { return true; };
    auto drain = [&] {
        auto deadline = absl::Now() + absl::Seconds(10);
        while (pending > 0 && absl::Now() < deadline) {
            client_->WaitAndPoll(absl::Milliseconds(100));
        }
        ASSERT_EQ(pending, 0);
    };
    // Each completion checks its result (an absl::Status or absl::StatusOr); drain() waits
    // until all have run.
    int issued = 0;
    auto s_expect = [&](auto check) {
        ++pending;
        return [&, check, n = ++issued](auto r) mutable {
            --pending;
            absl::Status st = [&] {
                if constexpr (std::is_same_v<std::decay_t<decltype(r)>, absl::Status>) {
                    return r;
                } else {
                    return r.status();
                }
            }();
            if (!st.ok()) {
                errors.push_back(absl::StrCat("request ", n, ": ", st.ToString()));
            } else if (!check(r)) {
                errors.push_back(absl::StrCat("request ", n, ": unexpected result"));
            }
        };
    };
    client_->MkdirAsync({.path = P("/demo/d")}, s_expect(ok));
    client_->PutObjectAsync({.path = P("/demo/d/o")}, "hello", s_expect(ok));
    client_->CreateStreamAsync({.path = P("/demo/s"), .shard_count = 2}, s_expect(ok));
    client_->PutItemAsync({.path = P("/demo/d/i"), .attributes = {{"v", Value::Int64(1)}}}, s_expect(ok));
    drain();
    client_->ListContainersAsync(s_expect([](const auto& r) { return r->size() == 1; }));
    client_->StatAsync(P("/demo/d/o"), s_expect([](const auto& r) { return r->size == 5; }));
    // Requests in flight together may run in any order: the checks allow for the writes beside them.
    client_->ListAsync({.path = P("/demo/d")}, s_expect([](const auto& r) { return r->entries.size() >= 2; }));
    client_->GetObjectAsync({.path = P("/demo/d/o")},
                            s_expect([](const auto& r) { return r->data().starts_with("hello"); }));
    client_->AppendAsync({.path = P("/demo/d/o"), .data = "!"}, s_expect([](const auto& r) { return r->size == 6; }));
    client_->GetItemAsync({.path = P("/demo/d/i")}, s_expect(ok));
    client_->GetItemsAsync({.path = P("/demo/d")}, s_expect([](const auto& r) { return !r->items.empty(); }));
    client_->UpdateItemAsync({.path = P("/demo/d/i"), .update = "v = v + 1"}, s_expect(ok));
    client_->PutItemsAsync({{.path = P("/demo/d/j"), .attributes = {{"v", Value::Int64(2)}}}},
                           s_expect([](const auto& r) { return r->size() == 1 && (*r)[0].ok(); }));
    client_->SymlinkAsync({.path = P("/demo/d/l"), .target = "o"}, s_expect(ok));
    client_->DescribeStreamAsync(P("/demo/s"), s_expect([](const auto& r) { return r->shard_count == 2; }));
    client_->PutRecordsAsync({.path = P("/demo/s"), .records = {{.data = "r1", .shard = 0}}},
                             s_expect([](const auto& r) { return r->size() == 1; }));
    client_->SyncAsync(s_expect(ok));
    client_->StatusAsync(s_expect(ok));
    client_->NopAsync(s_expect(ok));
    drain();
    client_->ReadlinkAsync(P("/demo/d/l"), s_expect([](const auto& r) { return *r == "o"; }));
    client_->WriteObjectAsync({.path = P("/demo/d/o"), .offset = 0, .data = "J"}, s_expect(ok));
    client_->TruncateAsync({.path = P("/demo/d/o"), .size = 2}, s_expect([](const auto& r) { return r->size == 2; }));
    client_->SetMetadataAsync({.path = P("/demo/d/o"), .mode = 0600}, s_expect(ok));
    client_->SeekAsync({.path = P("/demo/s"), .shard = 0, .type = SeekType::kEarliest}, s_expect(ok));
    client_->GetRecordsAsync({.path = P("/demo/s"), .location = {.shard = 0, .sequence = 1}},
                             s_expect([](const auto& r) { return r->records.size() == 1; }));
    drain();
    client_->RenameAsync({.from = P("/demo/d/o"), .to = P("/demo/d/p")}, s_expect(ok));
    client_->DeleteAsync({.path = P("/demo/d/l")}, s_expect(ok));
    client_->DeleteStreamAsync(P("/demo/s"), s_expect(ok));
    drain();
    client_->DeleteAsync({.path = P("/demo/d/p")}, s_expect(ok));
    client_->DeleteAsync({.path = P("/demo/d/i")}, s_expect(ok));
    client_->DeleteAsync({.path = P("/demo/d/j")}, s_expect(ok));
    drain();
    client_->RmdirAsync(P("/demo/d"), s_expect(ok));
    drain();
    EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "; ");
}

TEST_F(SessionTest, PutBuffersAreWrittenInPlace) {
    auto buf = client_->AllocatePutBuffer(100000);
    ASSERT_OK(buf);
    std::string expect(100000, '\0');
    for (size_t i = 0; i < expect.size(); ++i) {
        expect[i] = static_cast<char>('a' + i % 26);
    }
    std::memcpy(buf->data(), expect.data(), expect.size());
    ASSERT_OK(client_->PutObject({.path = P("/demo/buffered")}, std::move(*buf), 99999));
    EXPECT_EQ(*client_->GetObject({.path = P("/demo/buffered")}), expect.substr(0, 99999));
    // Too large for a buffer, too large for its capacity, and a dropped buffer frees its room.
    EXPECT_EQ(client_->AllocatePutBuffer(64 << 20).status().code(), absl::StatusCode::kInvalidArgument);
    auto small = client_->AllocatePutBuffer(10);
    ASSERT_OK(small);
    EXPECT_EQ(client_->PutObject({.path = P("/demo/b2")}, std::move(*small), 11).status().code(),
              absl::StatusCode::kInvalidArgument);
    for (int i = 0; i < 100; ++i) {
        auto b = client_->AllocatePutBuffer(512 << 10);
        ASSERT_OK(b);
    }
}

TEST_F(SessionTest, ASlowScanDoesNotHoldUpOtherSessionsOfItsWorker) {
    // One worker serves both sessions; the scans queue up on the store's one I/O thread, so
    // that they take far longer than the gets whatever the machine's load.
    std::string dir = dir_ + "/one-worker";
    std::filesystem::create_directories(dir);
    Daemon daemon(dir, /*workers=*/1, ", io_threads: 1");
    daemon.Start();
    auto a = daemon.Connect("rw-key");
    auto b = daemon.Connect("rw-key");
    ASSERT_OK(a);
    ASSERT_OK(b);
    ASSERT_OK((*b)->Mkdir({.path = P("/demo/t")}));
    for (int batch = 0; batch < 20; ++batch) {
        std::vector<PutItemRequest> items;
        for (int i = 0; i < 1000; ++i) {
            items.push_back({.path = P(absl::StrCat("/demo/t/k", batch, "-", i)),
                             .attributes = {{"v", Value::Int64(i)}}});
        }
        ASSERT_OK((*b)->PutItems(items));
    }
    ASSERT_OK((*b)->PutItem({.path = P("/demo/x"), .attributes = {{"v", Value::Int64(1)}}}));
    // Four scans that match nothing: each reads all 20,000 items.
    std::atomic<int> scans_done{0};
    std::atomic<bool> scans_ok{true};
    for (int i = 0; i < 4; ++i) {
        (*a)->GetItemsAsync({.path = P("/demo/t"), .filter = "v < 0"}, [&](absl::StatusOr<GetItemsResult> r) {
            scans_ok = scans_ok && r.ok() && r->items.empty();
            scans_done.fetch_add(1);
        });
    }
    std::thread poller([&] {
        while (scans_done.load() < 4) {
            (*a)->WaitAndPoll(absl::Milliseconds(100));
        }
    });
    // Served at once, while the scans are still running.
    for (int i = 0; i < 20; ++i) {
        ASSERT_OK((*b)->GetItem({.path = P("/demo/x")}));
    }
    int done_when_gets_finished = scans_done.load();
    poller.join();
    EXPECT_TRUE(scans_ok.load());
    EXPECT_LT(done_when_gets_finished, 4) << "the gets waited for the scans";
}

// What a request creates belongs to the caller it names only when the session's peer is root
// (zerohop-fuse, creating for the users of its mount in one request); anyone else's claim is
// replaced with its own uid and gid (SO_PEERCRED).
TEST_F(SessionTest, OnlyARootPeerNamesTheOwnerOfWhatItCreates) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "needs root (to be a root peer, and to be another uid)";
    }
    client_.reset();  // no thread of ours runs while a child is forked
    ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);  // the socket, for another uid
    Caller claimed{1234, 5678};
    auto create_all = [&](Client& c, const std::string& tag) -> absl::Status {
        auto at = [&](const char* name) { return P("/demo/" + tag + name); };
        ZH_RETURN_IF_ERROR(c.PutObject({.path = at("-object"), .caller = claimed}, "x").status());
        ZH_RETURN_IF_ERROR(c.Mkdir({.path = at("-dir"), .caller = claimed}).status());
        ZH_RETURN_IF_ERROR(c.Symlink({.path = at("-link"), .target = "x", .caller = claimed}).status());
        ZH_RETURN_IF_ERROR(c.Mknod({.path = at("-fifo"), .special = S_IFIFO, .caller = claimed}).status());
        ZH_RETURN_IF_ERROR(
            c.PutItem({.path = at("-item"), .attributes = {{"v", Value::Int64(1)}}, .caller = claimed}).status());
        ZH_RETURN_IF_ERROR(c.UpdateItem({.path = at("-counter"), .update = "SET v = 1", .caller = claimed}).status());
        return c.CreateStream({.path = at("-stream"), .shard_count = 1, .caller = claimed}).status();
    };
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (setgroups(0, nullptr) != 0 || setgid(4321) != 0 || setuid(4321) != 0) {
            _exit(2);
        }
        auto c = daemon_->Connect("rw-key");
        _exit(c.ok() && create_all(**c, "user").ok() ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;

    auto root = daemon_->Connect("rw-key");
    ASSERT_OK(root);
    ASSERT_OK_STATUS(create_all(**root, "root"));
    for (const char* name : {"-object", "-dir", "-link", "-fifo", "-item", "-counter", "-stream"}) {
        auto mine = (*root)->Stat(P(std::string("/demo/root") + name));
        ASSERT_OK(mine);
        EXPECT_EQ(mine->uid, 1234u) << name;
        EXPECT_EQ(mine->gid, 5678u) << name;
        auto theirs = (*root)->Stat(P(std::string("/demo/user") + name));
        ASSERT_OK(theirs);
        EXPECT_EQ(theirs->uid, 4321u) << name << ": a claim from a non-root peer is not believed";
        EXPECT_EQ(theirs->gid, 4321u) << name;
    }
}

TEST_F(SessionTest, KeysAreScopedToTheirContainersAndRights) {
    auto ro = daemon_->Connect("ro-key");
    ASSERT_OK(ro);
    ASSERT_OK(client_->PutItem({.path = P("/demo/x"), .attributes = {{"v", Value::Int64(1)}}}));
    EXPECT_TRUE((*ro)->GetItem({.path = P("/demo/x")}).ok());
    auto denied = (*ro)->PutItem({.path = P("/demo/x"), .attributes = {}});
    EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
    auto other = daemon_->Connect("other-key");
    ASSERT_OK(other);
    EXPECT_EQ((*other)->GetItem({.path = P("/demo/x")}).status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ((*other)->Rename({.from = P("/other/a"), .to = P("/demo/a")}).code(),
              absl::StatusCode::kPermissionDenied);
    auto none = daemon_->Connect("no-such-key");
    EXPECT_EQ(none.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_NE(std::string(none.status().message()).find("unknown access key"), std::string::npos);
}

TEST_F(SessionTest, ALargeObjectsFileComesAsADescriptorOnlyToAKeyThatMayWrite) {
    std::string big(300 * 1024, 'b');  // past the store's 64 KiB inline limit: a file
    for (size_t i = 0; i < big.size(); i += 4096) {
        big[i] = static_cast<char>('a' + i / 4096 % 26);
    }
    ASSERT_OK(client_->PutObject({.path = P("/demo/big")}, big));
    ASSERT_OK(client_->PutObject({.path = P("/demo/small")}, "tiny"));

    // Several at once, asynchronously: each answer takes its own descriptor off the socket.
    std::vector<absl::StatusOr<ObjectFile>> files;
    for (int i = 0; i < 8; ++i) {
        files.emplace_back(absl::UnknownError("not yet"));
    }
    int left = static_cast<int>(files.size());
    for (auto& f : files) {
        client_->OpenObjectFileAsync(P("/demo/big"), [&](absl::StatusOr<ObjectFile> r) {
            f = std::move(r);
            --left;
        });
    }
    for (auto deadline = absl::Now() + absl::Seconds(10); left > 0 && absl::Now() < deadline;) {
        client_->WaitAndPoll(absl::Milliseconds(100));
    }
    ASSERT_EQ(left, 0);
    for (auto& f : files) {
        ASSERT_OK(f);
        ASSERT_GE(f->fd, 0);
        EXPECT_EQ(f->info.size, big.size());
        std::string got(big.size(), '\0');
        ASSERT_EQ(::pread(f->fd, got.data(), got.size(), 0), static_cast<ssize_t>(big.size()));
        EXPECT_EQ(got, big);
        EXPECT_EQ(::write(f->fd, "x", 1), -1) << "the descriptor is read-only";
    }

    // A write at an offset lands in the same file; a put replaces it with another.
    auto before = client_->OpenObjectFile(P("/demo/big"));
    ASSERT_OK(before);
    ASSERT_OK(client_->WriteObject({.path = P("/demo/big"), .offset = 10, .data = "XYZ"}));
    char three[3];
    ASSERT_EQ(::pread(before->fd, three, 3, 10), 3);
    EXPECT_EQ(std::string(three, 3), "XYZ");
    ASSERT_OK(client_->PutObject({.path = P("/demo/big")}, std::string(100 * 1024, 'n')));
    ASSERT_EQ(::pread(before->fd, three, 3, 10), 3);
    EXPECT_EQ(std::string(three, 3), "XYZ") << "the old version stays readable through its descriptor";

    auto small = client_->OpenObjectFile(P("/demo/small"));
    ASSERT_OK(small);
    EXPECT_EQ(small->fd, -1) << "small objects live inline: no file";
    EXPECT_EQ(small->info.size, 4u);

    EXPECT_EQ(client_->OpenObjectFile(P("/demo/none")).status().code(), absl::StatusCode::kNotFound);
    auto ro = daemon_->Connect("ro-key");
    ASSERT_OK(ro);
    EXPECT_EQ((*ro)->OpenObjectFile(P("/demo/big")).status().code(), absl::StatusCode::kPermissionDenied);
    // The session is still fine for everything else.
    EXPECT_TRUE((*ro)->Stat(P("/demo/big")).ok());
    EXPECT_TRUE(client_->Stat(P("/demo/big")).ok());
}

// A raw session, without libzerohop: what a hostile or broken client can do.
struct RawSession {
    shmring::UniqueFd sock;
    std::optional<shmring::Segment> segment;
    std::optional<shmring::EventFd> bell;
    absl::Status refused;
};

RawSession OpenRaw(const std::string& socket, protocol::Hello hello) {
    RawSession rs;
    rs.sock.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket.data(), socket.size());
    if (::connect(rs.sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        rs.refused = absl::UnavailableError("connect");
        return rs;
    }
    std::string body = protocol::Encode(hello);
    uint32_t len = static_cast<uint32_t>(body.size());
    std::string framed(reinterpret_cast<char*>(&len), 4);
    framed += body;
    (void)shmring::SendWithFds(rs.sock.get(), framed, {});
    std::vector<shmring::UniqueFd> fds;
    char head[4];
    auto n = shmring::ReceiveWithFds(rs.sock.get(), head, 4, &fds);
    if (!n.ok() || *n != 4) {
        rs.refused = absl::UnavailableError("no welcome");
        return rs;
    }
    std::memcpy(&len, head, 4);
    std::string w(len, '\0');
    ::recv(rs.sock.get(), w.data(), len, MSG_WAITALL);
    auto welcome = protocol::Decode<protocol::Welcome>(w);
    if (!welcome.ok() || !welcome->status.ok()) {
        rs.refused = welcome.ok() ? welcome->status : welcome.status();
        return rs;
    }
    rs.segment.emplace(std::move(*shmring::Segment::Map(std::move(fds[0]))));
    rs.bell.emplace(std::move(fds[1]));
    return rs;
}

TEST_F(SessionTest, AClientThatNeverSaysHelloDelaysNobody) {
    std::vector<shmring::UniqueFd> silent;
    for (int i = 0; i < 5; ++i) {
        silent.emplace_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        struct sockaddr_un addr = {};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, daemon_->socket().data(), daemon_->socket().size());
        ASSERT_EQ(::connect(silent.back().get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }
    auto start = absl::Now();
    auto c = daemon_->Connect("rw-key");
    ASSERT_OK(c);
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(500)) << "a silent connection held up the handshake";
}

TEST_F(SessionTest, ProtocolVersionMismatchNamesBothVersions) {
    protocol::Hello hello;
    hello.version = 99;
    hello.access_key = "rw-key";
    RawSession rs = OpenRaw(daemon_->socket(), hello);
    EXPECT_EQ(rs.refused.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(std::string(rs.refused.message()).find("version 99"), std::string::npos) << rs.refused;
    EXPECT_NE(std::string(rs.refused.message()).find(absl::StrCat("speaks ", protocol::kProtocolVersion)), std::string::npos) << rs.refused;
}

TEST_F(SessionTest, AHostileClientCannotHurtAWellBehavedOne) {
    protocol::Hello hello;
    hello.access_key = "rw-key";
    RawSession evil = OpenRaw(daemon_->socket(), hello);
    ASSERT_TRUE(evil.refused.ok()) << evil.refused;
    ASSERT_OK(client_->PutItem({.path = P("/demo/good"), .attributes = {{"n", Value::Int64(0)}}}));

    std::atomic<bool> stop{false};
    std::thread attacker([&] {
        std::mt19937_64 rng(99);
        shmring::Segment& seg = *evil.segment;
        shmring::RingSlots sq = seg.submit_ring();
        uint64_t region = seg.layout().client_region.size;
        uint64_t tail = 0;  // the attacker's own position; it may make its ring unusable to itself
        for (int round = 0; !stop; ++round) {
            Descriptor d;
            switch (round % 6) {
                case 0:  // garbage bytes
                    for (auto& w : d.reserved) {
                        w = rng();
                    }
                    std::memcpy(&d, &d.reserved, sizeof d.reserved);
                    d.op = static_cast<uint16_t>(rng());
                    break;
                case 1:  // a payload outside the region
                    d.op = static_cast<uint16_t>(Op::kGetItem);
                    d.offset = region - 10;
                    d.length = 1000;
                    break;
                case 2:  // a length that wraps
                    d.op = static_cast<uint16_t>(Op::kPutItem);
                    d.offset = rng();
                    d.length = 0xffffffff;
                    break;
                case 3:  // releasing buffers it never got, or twice
                    d.op = static_cast<uint16_t>(Op::kRelease);
                    d.offset = rng() % (4 << 20);
                    break;
                case 4: {  // a well-formed header over random body bytes
                    d.op = static_cast<uint16_t>(Op::kUpdateItem);
                    d.offset = 0;
                    d.length = 200;
                    for (int i = 0; i < 200; ++i) {
                        seg.client_region()[i] = static_cast<char>(rng());
                    }
                    break;
                }
                default:  // scribble over the ring's sequence words
                    for (int i = 0; i < 8; ++i) {
                        reinterpret_cast<uint64_t*>(seg.base() + seg.layout().submit.offset)[rng() % 64] = rng();
                    }
                    continue;
            }
            if (!sq.PushPrivate(&tail, &d)) {  // floods: a full (or scribbled) ring just refuses
                tail += rng() % 3;             // ... and a confused producer skips slots
            }
            shmring::NotifyCreator(seg.header(), *evil.bell);
        }
    });
    for (int i = 1; i <= 3000; ++i) {
        auto u = client_->UpdateItem({.path = P("/demo/good"), .update = "n = n + 1"});
        ASSERT_TRUE(u.ok()) << "the good client failed at " << i << ": " << u.status();
    }
    stop = true;
    attacker.join();
    auto item = client_->GetItem({.path = P("/demo/good")});
    ASSERT_OK(item);
    EXPECT_EQ(item->attributes.at("n"), Value::Int64(3000));
    EXPECT_EQ(kill(daemon_->pid(), 0), 0) << "the daemon died";
}

// Answers that found the completion ring full wait in the daemon; once the client makes
// room they go out, even if the client never rings the doorbell again (it only rings when it
// submits, and a client waiting for an answer submits nothing).
TEST_F(SessionTest, AnswersThatFoundTheCompletionRingFullGoOutWhenItHasRoom) {
    protocol::Hello hello;
    hello.access_key = "rw-key";
    hello.complete_entries = 8;
    RawSession rs = OpenRaw(daemon_->socket(), hello);
    ASSERT_TRUE(rs.refused.ok()) << rs.refused;
    shmring::Segment& seg = *rs.segment;
    shmring::RingSlots sq = seg.submit_ring();
    shmring::RingSlots cq = seg.complete_ring();
    const uint32_t capacity = seg.layout().complete.capacity;
    uint64_t tail = 0, head = 0;
    for (uint32_t i = 1; i <= capacity + 2; ++i) {
        Descriptor d;
        d.op = static_cast<uint16_t>(Op::kNop);
        d.request_id = i;
        ASSERT_TRUE(sq.PushPrivate(&tail, &d));
    }
    shmring::NotifyCreator(seg.header(), *rs.bell);
    // Take answers as they come, from a full ring, without ever ringing again.
    std::set<uint64_t> answered;
    auto take = [&](absl::Duration within) {
        absl::Time until = absl::Now() + within;
        while (answered.size() < capacity + 2 && absl::Now() < until) {
            Descriptor c;
            if (cq.PopPrivate(&head, &c)) {
                answered.insert(c.request_id);
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
    };
    absl::Time until = absl::Now() + absl::Seconds(5);
    while (!cq.ReadyAt(head + capacity - 1) && absl::Now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(cq.ReadyAt(head + capacity - 1)) << "the ring never filled";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the worker falls asleep
    take(absl::Seconds(5));
    EXPECT_EQ(answered.size(), capacity + 2u) << "answers left in the daemon while the ring had room";
}

TEST_F(SessionTest, ManySessionsAndThreadsAtOnce) {
    constexpr int kSessions = 4, kThreads = 3, kEach = 300;
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < kSessions; ++i) {
        auto c = daemon_->Connect("rw-key");
        ASSERT_OK(c);
        clients.push_back(std::move(*c));
    }
    std::vector<std::thread> threads;
    for (int s = 0; s < kSessions; ++s) {
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, s] {
                for (int i = 0; i < kEach; ++i) {
                    ASSERT_TRUE(clients[s]->UpdateItem({.path = P("/demo/counter"), .update = "n = if_not_exists(n, 0) + 1"}).ok());
                }
            });
        }
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(client_->GetItem({.path = P("/demo/counter")})->attributes.at("n"),
              Value::Int64(kSessions * kThreads * kEach));
}

// 10,000 client processes (1,000 under the sanitizers, ten times slower to fork and serve)
// killed in the middle of their requests: the daemon keeps no descriptor, no session and no
// memory of theirs.
TEST_F(SessionTest, TenThousandKilledClientsLeaveNothingBehind) {
    // Warm up: lazily created daemon state is not a leak.
    for (int i = 0; i < 20; ++i) {
        auto c = daemon_->Connect("rw-key");
        ASSERT_OK(c);
        ASSERT_OK_STATUS((*c)->Nop());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    size_t fds_before = daemon_->SessionFds();
    size_t rss_before = daemon_->RssBytes();
    auto status_before = client_->Status();
    ASSERT_OK(status_before);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    constexpr int kClients = 1000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    constexpr int kClients = 1000;
#else
    constexpr int kClients = 10000;
#endif
#else
    constexpr int kClients = 10000;
#endif
    ASSERT_OK(client_->PutItem({.path = P("/demo/victim"), .attributes = {{"n", Value::Int64(1)}}}));
    std::mt19937 rng(10000);
    for (int i = 0; i < kClients; ++i) {
        int ready[2];
        ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ClientOptions small;
            small.client_bytes = 1 << 16;
            small.daemon_bytes = 1 << 16;
            auto c = daemon_->Connect("rw-key", small);
            if (!c.ok()) {
                _exit(3);
            }
            (void)!write(ready[1], "s", 1);  // it has a session: from here on it is mid-request
            // Reads, so that what the daemon holds afterwards is the sessions' alone (writes
            // would grow the store's memtable).
            for (;;) {
                (void)(*c)->GetItem({.path = P("/demo/victim")});
            }
        }
        close(ready[1]);
        char byte;
        bool connected = read(ready[0], &byte, 1) == 1;
        close(ready[0]);
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        ASSERT_TRUE(connected) << "client " << i << " found no session: " << status;
    }
    size_t fds_after = 0;
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        fds_after = daemon_->SessionFds();
        if (fds_after <= fds_before) {
            break;
        }
    }
    size_t rss_after = daemon_->RssBytes();
    EXPECT_LE(fds_after, fds_before) << "the daemon kept descriptors of dead clients";
    auto status_after = client_->Status();
    ASSERT_OK(status_after);
    EXPECT_EQ(status_after->sessions_open, status_before->sessions_open) << "the daemon kept sessions of dead clients";
    EXPECT_GE(status_after->sessions_total, status_before->sessions_total + kClients);
    // Sessions' memory goes with them; allow the allocator some slack, not 1,000 sessions' worth.
    EXPECT_LT(rss_after, rss_before + (32u << 20)) << rss_before << " -> " << rss_after;
    std::cout << "daemon session fds " << fds_before << " -> " << fds_after << ", RSS " << rss_before << " -> "
              << rss_after << " bytes after " << kClients << " killed clients\n";
    ASSERT_OK(client_->GetItem({.path = P("/demo/victim")}));
}

// Where in its life a client dies (SessionTest.AClientKilledAtAnyStepLeavesNothingBehind).
enum class DeathStep {
    kConnected,      // the socket connected, nothing sent
    kHalfHello,      // half a hello frame sent
    kHelloUnread,    // the hello sent, the welcome (and its descriptors) never read
    kWelcomed,       // the shared region and the bell received, nothing done with them
    kQueuedSilent,   // a request in the ring, the bell never rung
    kRequestUnread,  // a request rung in, its answer never read
    kHoldingView,    // holding a zero-copy view of a large object (a lent daemon buffer)
    kHoldingBuffer,  // holding a put buffer half written
    kMidUpload,      // streaming a put larger than its region
};

// Runs in the child: reaches `step`, tells the parent through `ready`, and waits to be killed.
[[noreturn]] void DieAt(DeathStep step, Daemon& daemon, int ready) {
    auto reached = [&] {
        (void)!write(ready, "s", 1);
        for (;;) {
            pause();
        }
    };
    protocol::Hello hello;
    hello.access_key = "rw-key";
    std::string body = protocol::Encode(hello);
    uint32_t len = static_cast<uint32_t>(body.size());
    std::string framed = std::string(reinterpret_cast<char*>(&len), 4) + body;
    if (step <= DeathStep::kHelloUnread) {
        shmring::UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        struct sockaddr_un addr = {};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, daemon.socket().data(), daemon.socket().size());
        if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            _exit(3);
        }
        if (step == DeathStep::kHalfHello) {
            (void)!::send(sock.get(), framed.data(), framed.size() / 2, MSG_NOSIGNAL);
        } else if (step == DeathStep::kHelloUnread) {
            (void)!::send(sock.get(), framed.data(), framed.size(), MSG_NOSIGNAL);
        }
        reached();
    }
    if (step <= DeathStep::kRequestUnread) {
        RawSession rs = OpenRaw(daemon.socket(), hello);
        if (!rs.refused.ok()) {
            _exit(3);
        }
        if (step >= DeathStep::kQueuedSilent) {
            Descriptor d;
            d.op = static_cast<uint16_t>(Op::kGetItem);
            std::string req = protocol::Encode(GetItemRequest{.path = P("/demo/victim")});
            std::memcpy(rs.segment->client_region(), req.data(), req.size());
            d.offset = 0;
            d.length = static_cast<uint32_t>(req.size());
            d.request_id = 1;
            uint64_t tail = 0;
            if (!rs.segment->submit_ring().PushPrivate(&tail, &d)) {
                _exit(4);
            }
            if (step == DeathStep::kRequestUnread) {
                shmring::NotifyCreator(rs.segment->header(), *rs.bell);
                std::this_thread::sleep_for(std::chrono::milliseconds(20));  // answered meanwhile
            }
        }
        reached();
    }
    ClientOptions small;
    small.client_bytes = 1 << 18;
    small.daemon_bytes = 4 << 20;
    auto c = daemon.Connect("rw-key", small);
    if (!c.ok()) {
        _exit(3);
    }
    if (step == DeathStep::kHoldingView) {
        auto view = (*c)->GetObjectView({.path = P("/demo/large")});
        if (!view.ok()) {
            _exit(5);
        }
        reached();
    }
    if (step == DeathStep::kHoldingBuffer) {
        auto buf = (*c)->AllocatePutBuffer(64 << 10);
        if (!buf.ok()) {
            _exit(5);
        }
        std::memset(buf->data(), 'x', 32 << 10);
        reached();
    }
    // kMidUpload: 8 MiB through a 256 KiB region, killed a moment after it starts.
    std::string data(8 << 20, 'u');
    (void)!write(ready, "s", 1);
    (void)(*c)->PutObject({.path = P("/demo/upload")}, data);
    for (;;) {
        pause();
    }
}

size_t ObjectFilesUnder(const std::string& dir) {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        n += e.is_regular_file() && e.path().parent_path().filename() == "objects" ? 1 : 0;
    }
    return n;
}

// A client may die at any step of its session, holding anything the daemon lent it; the
// daemon keeps nothing of it (no descriptor, no session, no upload, no half-written object)
// and everyone else carries on.
TEST_F(SessionTest, AClientKilledAtAnyStepLeavesNothingBehind) {
    ASSERT_OK(client_->PutItem({.path = P("/demo/victim"), .attributes = {{"n", Value::Int64(1)}}}));
    ASSERT_OK(client_->PutObject({.path = P("/demo/large")}, std::string(1 << 20, 'L')));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    size_t fds_before = daemon_->SessionFds();
    size_t files_before = ObjectFilesUnder(dir_);
    auto status_before = client_->Status();
    ASSERT_OK(status_before);
    const std::pair<DeathStep, const char*> steps[] = {
        {DeathStep::kConnected, "connected"},         {DeathStep::kHalfHello, "half a hello"},
        {DeathStep::kHelloUnread, "welcome unread"},  {DeathStep::kWelcomed, "welcomed"},
        {DeathStep::kQueuedSilent, "request queued"}, {DeathStep::kRequestUnread, "answer unread"},
        {DeathStep::kHoldingView, "holding a view"},  {DeathStep::kHoldingBuffer, "holding a put buffer"},
        {DeathStep::kMidUpload, "mid-upload"},
    };
    for (int round = 0; round < 3; ++round) {
        for (const auto& [step, name] : steps) {
            int ready[2];
            ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
            pid_t pid = fork();
            ASSERT_GE(pid, 0);
            if (pid == 0) {
                close(ready[0]);
                DieAt(step, *daemon_, ready[1]);
            }
            close(ready[1]);
            char byte;
            bool got_there = read(ready[0], &byte, 1) == 1;
            close(ready[0]);
            if (step == DeathStep::kMidUpload) {
                std::this_thread::sleep_for(std::chrono::milliseconds(2 + 3 * round));
            }
            kill(pid, SIGKILL);
            int status = 0;
            waitpid(pid, &status, 0);
            ASSERT_TRUE(got_there) << name << ": the client did not get there (exit " << WEXITSTATUS(status) << ")";
            // Everyone else carries on.
            ASSERT_OK(client_->UpdateItem({.path = P("/demo/victim"), .update = "n = n + 1"}));
            auto upload = client_->Stat(P("/demo/upload"));
            ASSERT_TRUE(absl::IsNotFound(upload.status()) || (upload.ok() && upload->size == (8u << 20)))
                << name << ": a half-streamed put is visible: " << upload.status();
        }
    }
    size_t fds_after = 0;
    std::optional<DaemonStatus> status_after;
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        fds_after = daemon_->SessionFds();
        auto st = client_->Status();
        ASSERT_OK(st);
        status_after = *st;
        if (fds_after <= fds_before && st->sessions_open == status_before->sessions_open &&
            ObjectFilesUnder(dir_) <= files_before + 1) {
            break;
        }
    }
    EXPECT_LE(fds_after, fds_before) << "the daemon kept descriptors of dead clients";
    EXPECT_EQ(status_after->sessions_open, status_before->sessions_open) << "the daemon kept sessions of dead clients";
    // At most the one upload that completed before its client died adds a file.
    EXPECT_LE(ObjectFilesUnder(dir_), files_before + 1) << "abandoned uploads left object files";
    // What was lent to the dead (views, put buffers) is back: a client can use all of it.
    ClientOptions small;
    small.daemon_bytes = 4 << 20;
    auto c = daemon_->Connect("rw-key", small);
    ASSERT_OK(c);
    for (int i = 0; i < 20; ++i) {
        auto view = (*c)->GetObjectView({.path = P("/demo/large")});
        ASSERT_OK(view);
    }
    auto item = client_->GetItem({.path = P("/demo/victim")});
    ASSERT_OK(item);
    EXPECT_EQ(item->attributes.at("n"), Value::Int64(1 + 3 * 9));
}

TEST_F(SessionTest, MetricsCountRequestsErrorsAndSessions) {
    ASSERT_OK(client_->PutItem({.path = P("/demo/m"), .attributes = {{"v", Value::Int64(1)}}}));
    for (int i = 0; i < 10; ++i) {
        ASSERT_OK(client_->GetItem({.path = P("/demo/m")}));
    }
    EXPECT_FALSE(client_->GetItem({.path = P("/demo/missing")}).ok());
    std::string m = daemon_->Metrics();
    ASSERT_NE(m.find("HTTP/1.0 200 OK"), std::string::npos) << m;
    EXPECT_NE(m.find("zerohop_requests_total{op=\"get_item\",backend=\"embedded\"} 11"), std::string::npos) << m;
    EXPECT_NE(m.find("zerohop_request_errors_total{op=\"get_item\",backend=\"embedded\",code=\"NOT_FOUND\"} 1"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("zerohop_request_duration_seconds_count{op=\"put_item\"} 1"), std::string::npos) << m;
    EXPECT_NE(m.find("zerohop_sessions_open "), std::string::npos) << m;
}

TEST_F(SessionTest, MetricsCountEachWorkersRequestsAndTheTotalsAddUp) {
    // Sessions go to the two workers in turn: four clients, two on each.
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 4; ++i) {
        auto c = daemon_->Connect("rw-key");
        ASSERT_OK(c);
        clients.push_back(std::move(*c));
    }
    for (auto& c : clients) {
        for (int i = 0; i < 25; ++i) {
            ASSERT_TRUE(c->Nop().ok());
        }
    }
    auto status = client_->Status();
    ASSERT_OK(status);
    std::string m = daemon_->Metrics();
    uint64_t sum = 0;
    for (int w = 0; w < 2; ++w) {
        std::string key = "zerohop_worker_requests_total{worker=\"" + std::to_string(w) + "\"} ";
        size_t at = m.find(key);
        ASSERT_NE(at, std::string::npos) << m;
        uint64_t n = std::stoull(m.substr(at + key.size()));
        EXPECT_GE(n, 50u) << "worker " << w << " served two of the clients: " << m;
        sum += n;
    }
    EXPECT_GE(sum, status->requests) << "the workers' counts are the daemon's total";
}

TEST_F(SessionTest, ADeadDaemonFailsCallsPromptlyWithUnavailable) {
    auto c = daemon_->Connect("rw-key", {.reconnect_timeout = absl::Milliseconds(300)});
    ASSERT_OK(c);
    daemon_->Kill(SIGKILL);
    auto start = absl::Now();
    auto r = (*c)->GetItem({.path = P("/demo/x")});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
    EXPECT_NE(std::string(r.status().message()).find("did not come back"), std::string::npos) << r.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));
    // A write in flight when the daemon goes says that its outcome is unknown.
    auto w = (*c)->PutItem({.path = P("/demo/y"), .attributes = {{"v", Value::Int64(1)}}});
    EXPECT_EQ(w.status().code(), absl::StatusCode::kUnavailable) << w.status();
}

TEST_F(SessionTest, ADaemonRestartedUnderLoadLosesNoAcknowledgedWriteAndClientsCarryOn) {
    ASSERT_OK(client_->PutItem({.path = P("/demo/fixed"), .attributes = {{"v", Value::Int64(7)}}}));
    constexpr int kThreads = 4;
    std::atomic<bool> stop{false};
    std::atomic<bool> restarted{false};
    struct Outcome {
        std::vector<int> acked;
        int unknown = 0;          // writes that failed with "outcome unknown"
        int after_restart = 0;    // acknowledged writes after the restart
        int failed_reads = 0;
        std::string unexpected;   // the first error that should not happen
        uint64_t reconnects = 0;
    };
    std::vector<Outcome> outcomes(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            Outcome& out = outcomes[t];
            auto c = daemon_->Connect("rw-key");
            if (!c.ok()) {
                out.unexpected = std::string(c.status().message());
                return;
            }
            for (int i = 0; !stop.load(); ++i) {
                auto w = (*c)->PutItem(
                    {.path = P(absl::StrCat("/demo/t", t, "-", i)), .attributes = {{"i", Value::Int64(i)}}});
                if (w.ok()) {
                    out.acked.push_back(i);
                    out.after_restart += restarted.load() ? 1 : 0;
                } else if (absl::IsUnavailable(w.status()) &&
                           absl::StrContains(w.status().message(), "outcome is unknown")) {
                    ++out.unknown;
                } else if (out.unexpected.empty()) {
                    out.unexpected = w.status().ToString();
                }
                // Reads are safe to repeat: a restart never fails them.
                auto r = (*c)->GetItem({.path = P("/demo/fixed")});
                if (!r.ok() || r->attributes.at("v") != Value::Int64(7)) {
                    ++out.failed_reads;
                    if (out.unexpected.empty()) {
                        out.unexpected = r.status().ToString();
                    }
                }
            }
            out.reconnects = (*c)->reconnects();
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    daemon_->Kill(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    daemon_->Start();
    restarted = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    for (auto& th : threads) {
        th.join();
    }
    auto c = daemon_->Connect("rw-key");
    ASSERT_OK(c);
    for (int t = 0; t < kThreads; ++t) {
        const Outcome& out = outcomes[t];
        EXPECT_EQ(out.unexpected, "") << "thread " << t;
        EXPECT_EQ(out.failed_reads, 0) << "thread " << t;
        EXPECT_EQ(out.reconnects, 1u) << "thread " << t;
        EXPECT_GT(out.after_restart, 0) << "thread " << t << " did not carry on after the restart";
        for (int i : out.acked) {
            auto item = (*c)->GetItem({.path = P(absl::StrCat("/demo/t", t, "-", i))});
            ASSERT_OK(item);
            EXPECT_EQ(item->attributes.at("i"), Value::Int64(i));
        }
        std::cout << "thread " << t << ": " << out.acked.size() << " acknowledged writes (" << out.after_restart
                  << " after the restart), " << out.unknown << " with an unknown outcome\n";
    }
}

TEST_F(SessionTest, SigtermAnswersWhatIsInFlightAndLosesNothing) {
    auto c = daemon_->Connect("rw-key", {.reconnect_timeout = absl::ZeroDuration()});
    ASSERT_OK(c);
    constexpr int kPuts = 48;
    std::vector<absl::Status> results(kPuts, absl::UnknownError("no answer"));
    int answered = 0;
    for (int i = 0; i < kPuts; ++i) {
        (*c)->PutItemAsync({.path = P(absl::StrCat("/demo/term", i)), .attributes = {{"i", Value::Int64(i)}}},
                           [&, i](absl::StatusOr<ObjectInfo> r) {
                               results[i] = r.status();
                               ++answered;
                           });
    }
    daemon_->Kill(SIGTERM);  // checks a clean exit (status 0, no sanitizer report)
    auto deadline = absl::Now() + absl::Seconds(20);
    while (answered < kPuts && absl::Now() < deadline) {
        (*c)->WaitAndPoll(absl::Milliseconds(50));
    }
    EXPECT_EQ(answered, kPuts) << "every request gets an answer, one way or the other";
    daemon_->Start();
    auto fresh = daemon_->Connect("rw-key");
    ASSERT_OK(fresh);
    int acknowledged = 0;
    for (int i = 0; i < kPuts; ++i) {
        if (results[i].ok()) {
            ++acknowledged;
            EXPECT_TRUE((*fresh)->GetItem({.path = P(absl::StrCat("/demo/term", i))}).ok()) << i;
        } else {
            EXPECT_EQ(results[i].code(), absl::StatusCode::kUnavailable) << results[i];
        }
    }
    std::cout << acknowledged << " of " << kPuts << " puts acknowledged before the stop\n";
}

TEST_F(SessionTest, AcknowledgedWritesSurviveADaemonKill) {
    for (int i = 0; i < 200; ++i) {
        ASSERT_OK(client_->PutItem({.path = P(absl::StrCat("/demo/k", i)), .attributes = {{"i", Value::Int64(i)}}}));
    }
    client_.reset();
    daemon_->Kill(SIGKILL);
    daemon_->Start();
    auto c = daemon_->Connect("rw-key");
    ASSERT_OK(c);
    for (int i = 0; i < 200; ++i) {
        auto item = (*c)->GetItem({.path = P(absl::StrCat("/demo/k", i))});
        ASSERT_OK(item);
        EXPECT_EQ(item->attributes.at("i"), Value::Int64(i));
    }
}

}  // namespace
}  // namespace zerohop

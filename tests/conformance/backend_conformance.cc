// The contract of every backend (daemon/backend/backend.h, zerohop/operations.h), checked
// against any backend.

#include "conformance/backend_conformance.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include <gmock/gmock.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "test_data.h"

namespace zerohop::testing {

void BackendConformance::SetUp() {
    BackendUnderTest made = GetParam().make();
    backend_ = std::move(made.backend);
    cleanup_ = std::move(made.cleanup);
    ASSERT_NE(backend_, nullptr);
    b_ = std::make_unique<SyncBackend>(backend_.get());
}

void BackendConformance::TearDown() {
    b_.reset();
    backend_.reset();
    if (cleanup_) {
        cleanup_();
    }
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
    return s.status();
}
inline absl::Status StatusOf(const absl::Status& s) { return s; }

#define ASSERT_OK(expr)                                            \
    do {                                                           \
        absl::Status _st = StatusOf(expr);                         \
        ASSERT_TRUE(_st.ok()) << #expr << ": " << _st;             \
    } while (0)

#define EXPECT_CODE(expr, code_)                                                              \
    do {                                                                                      \
        absl::Status _st = StatusOf(expr);                                                    \
        EXPECT_EQ(_st.code(), absl::StatusCode::code_) << #expr << " gave " << _st;         \
        EXPECT_FALSE(_st.message().empty()) << #expr << ": errors carry a message";          \
    } while (0)

std::vector<std::string> Names(const ListResult& r) {
    std::vector<std::string> out;
    for (const DirEntry& e : r.entries) {
        out.push_back(e.name);
    }
    return out;
}


// ---- namespace ----------------------------------------------------------------------

TEST_P(BackendConformance, ListsConfiguredContainers) {
    auto c = b_->ListContainers();
    ASSERT_OK(c);
    EXPECT_THAT(*c, ElementsAre("c1", "c2"));
    auto root = b_->List({.path = P("/")});
    ASSERT_OK(root);
    EXPECT_THAT(Names(*root), ElementsAre("c1", "c2"));
}

TEST_P(BackendConformance, StatsRootContainersAndMissingPaths) {
    auto root = b_->Stat("/");
    ASSERT_OK(root);
    EXPECT_EQ(root->type, ObjectType::kDirectory);
    auto c1 = b_->Stat("/c1");
    ASSERT_OK(c1);
    EXPECT_EQ(c1->type, ObjectType::kDirectory);
    EXPECT_CODE(b_->Stat("/c1/missing"), kNotFound);
    EXPECT_CODE(b_->Stat("/nope"), kNotFound);
    EXPECT_CODE(b_->Stat("/nope/x"), kNotFound);
    EXPECT_CODE(b_->Put("/nope/x", "data"), kNotFound);
}

TEST_P(BackendConformance, MkdirCreatesOnceUnderAnExistingDirectory) {
    auto d = b_->Mkdir("/c1/dir", 0750);
    ASSERT_OK(d);
    EXPECT_EQ(d->type, ObjectType::kDirectory);
    EXPECT_EQ(d->mode, 0750u);
    EXPECT_CODE(b_->Mkdir("/c1/dir"), kAlreadyExists);
    EXPECT_CODE(b_->Mkdir("/c1/missing/sub"), kNotFound);
    ASSERT_OK(b_->Put("/c1/file", "x"));
    EXPECT_CODE(b_->Mkdir("/c1/file"), kAlreadyExists);
    EXPECT_CODE(b_->Mkdir("/c1/file/sub"), kFailedPrecondition);
    EXPECT_CODE(b_->Mkdir("/c1"), kAlreadyExists);
    ASSERT_OK(b_->Mkdir("/c1/dir/sub"));
    EXPECT_EQ(b_->Stat("/c1/dir/sub")->type, ObjectType::kDirectory);
}

TEST_P(BackendConformance, RmdirRemovesOnlyEmptyDirectories) {
    ASSERT_OK(b_->Mkdir("/c1/d"));
    ASSERT_OK(b_->Put("/c1/d/f", "x"));
    EXPECT_CODE(b_->Rmdir("/c1/d"), kFailedPrecondition);
    ASSERT_OK(b_->Delete("/c1/d/f"));
    ASSERT_OK(b_->Rmdir("/c1/d"));
    EXPECT_CODE(b_->Stat("/c1/d"), kNotFound);
    EXPECT_CODE(b_->Rmdir("/c1/d"), kNotFound);
    ASSERT_OK(b_->Put("/c1/f", "x"));
    EXPECT_CODE(b_->Rmdir("/c1/f"), kFailedPrecondition);
    EXPECT_CODE(b_->Rmdir("/c1"), kFailedPrecondition);
}

// A directory counts the directories and streams it holds (a file system's link count is
// 2 + subdirs): kept through mkdir, rmdir, streams made and deleted, and renames in, out and
// over; files, symlinks and special files do not count; the root counts its containers.
TEST_P(BackendConformance, DirectoriesCountTheirSubdirectories) {
    auto subdirs = [&](std::string_view path) -> uint64_t {
        auto st = b_->Stat(path);
        EXPECT_TRUE(st.ok()) << path << ": " << st.status();
        return st.ok() ? st->subdirs : ~uint64_t{0};
    };
    EXPECT_EQ(subdirs("/"), 2u) << "the root holds the containers c1 and c2";
    uint64_t before = subdirs("/c1");
    ASSERT_OK(b_->Mkdir("/c1/top"));
    EXPECT_EQ(subdirs("/c1"), before + 1);
    EXPECT_EQ(subdirs("/c1/top"), 0u);
    ASSERT_OK(b_->Mkdir("/c1/top/a"));
    ASSERT_OK(b_->Mkdir("/c1/top/b"));
    ASSERT_OK(b_->Put("/c1/top/file", "x"));
    ASSERT_OK(b_->Symlink("/c1/top/link", "a"));
    ASSERT_OK(b_->Mknod({.path = P("/c1/top/fifo"), .special = S_IFIFO, .mode = 0644}));
    ASSERT_OK(b_->CreateStream("/c1/top/s", 2));
    EXPECT_EQ(subdirs("/c1/top"), 3u) << "a, b and the stream s";
    EXPECT_EQ(subdirs("/c1/top/s"), 0u) << "a stream holds shards, which are files";
    ASSERT_OK(b_->Mkdir("/c1/top/a/deep"));
    EXPECT_EQ(subdirs("/c1/top/a"), 1u);
    EXPECT_EQ(subdirs("/c1/top"), 3u) << "only direct subdirectories count";

    // Renames: out of top, into top, within top, and a directory over an empty one.
    ASSERT_OK(b_->Rename("/c1/top/a", "/c1/moved"));
    EXPECT_EQ(subdirs("/c1/top"), 2u);
    EXPECT_EQ(subdirs("/c1"), before + 2);
    EXPECT_EQ(subdirs("/c1/moved"), 1u) << "a directory keeps its count when it moves";
    ASSERT_OK(b_->Rename("/c1/moved", "/c1/top/back"));
    EXPECT_EQ(subdirs("/c1/top"), 3u);
    EXPECT_EQ(subdirs("/c1"), before + 1);
    ASSERT_OK(b_->Rename("/c1/top/b", "/c1/top/b2"));
    EXPECT_EQ(subdirs("/c1/top"), 3u);
    ASSERT_OK(b_->Rename("/c1/top/b2", "/c1/top/back/deep"));
    EXPECT_EQ(subdirs("/c1/top"), 2u) << "b2 replaced back/deep";
    EXPECT_EQ(subdirs("/c1/top/back"), 1u);
    ASSERT_OK(b_->Rename("/c1/top/file", "/c1/top/file2"));
    EXPECT_EQ(subdirs("/c1/top"), 2u);

    // Removals.
    ASSERT_OK(b_->DeleteStream("/c1/top/s"));
    EXPECT_EQ(subdirs("/c1/top"), 1u);
    ASSERT_OK(b_->Rmdir("/c1/top/back/deep"));
    ASSERT_OK(b_->Rmdir("/c1/top/back"));
    EXPECT_EQ(subdirs("/c1/top"), 0u);

    // A listing gives the same counts, and a change of metadata answers with it.
    ASSERT_OK(b_->Mkdir("/c1/top/x"));
    ASSERT_OK(b_->Mkdir("/c1/top/x/y"));
    auto listed = b_->List({.path = P("/c1/top")});
    ASSERT_OK(listed);
    bool seen = false;
    for (const DirEntry& e : listed->entries) {
        if (e.name == "x") {
            seen = true;
            EXPECT_EQ(e.info.subdirs, 1u);
        }
    }
    EXPECT_TRUE(seen);
    auto changed = b_->SetMetadata({.path = P("/c1/top/x"), .mode = 0700});
    ASSERT_OK(changed);
    EXPECT_EQ(changed->subdirs, 1u);
}

// A directory's mtime and ctime move when an entry is added to it or removed from it (made,
// deleted, renamed in or out), as on a local file system; not when an entry in it changes.
// Its mtime set explicitly holds until the next such change.
TEST_P(BackendConformance, DirectoriesTakeTheTimeOfEachEntryAddedOrRemoved) {
    ASSERT_OK(b_->Mkdir("/c1/d"));
    ASSERT_OK(b_->Mkdir("/c1/e"));
    auto times = [&](std::string_view path) {
        auto st = b_->Stat(path);
        EXPECT_TRUE(st.ok()) << st.status();
        return st.ok() ? std::make_pair(st->mtime, st->ctime) : std::pair<Timestamp, Timestamp>{};
    };
    auto moves = [&](std::string_view dir, const std::string& what, const std::function<absl::Status()>& change) {
        auto before = times(dir);
        absl::SleepFor(absl::Milliseconds(2));
        absl::Status s = change();
        ASSERT_TRUE(s.ok()) << what << ": " << s;
        auto after = times(dir);
        EXPECT_GT(after.first, before.first) << what << " moves " << dir << "'s mtime";
        EXPECT_GT(after.second, before.second) << what << " moves " << dir << "'s ctime";
        EXPECT_EQ(after.first, after.second) << what;
    };
    moves("/c1/d", "mkdir", [&] { return b_->Mkdir("/c1/d/sub").status(); });
    moves("/c1/d", "put", [&] { return b_->Put("/c1/d/f", "x").status(); });
    moves("/c1/d", "symlink", [&] { return b_->Symlink("/c1/d/l", "f").status(); });
    moves("/c1/d", "mknod",
          [&] { return b_->Mknod({.path = P("/c1/d/p"), .special = S_IFIFO, .mode = 0644}).status(); });
    moves("/c1/d", "create_stream", [&] { return b_->CreateStream("/c1/d/s", 1).status(); });
    moves("/c1/d", "put_item", [&] { return b_->PutItem("/c1/d/item", {{"k", Value::Int64(1)}}).status(); });
    moves("/c1/d", "delete", [&] { return b_->Delete("/c1/d/l"); });
    moves("/c1/d", "rmdir", [&] { return b_->Rmdir("/c1/d/sub"); });
    moves("/c1/d", "delete_stream", [&] { return b_->DeleteStream("/c1/d/s"); });
    moves("/c1/d", "rename out", [&] { return b_->Rename("/c1/d/f", "/c1/e/f"); });
    moves("/c1/e", "rename in", [&] { return b_->Rename("/c1/d/p", "/c1/e/p"); });
    moves("/c1", "mkdir in a container", [&] { return b_->Mkdir("/c1/x").status(); });

    // Changes of an entry in it leave the directory as it is.
    auto before = times("/c1/e");
    absl::SleepFor(absl::Milliseconds(2));
    ASSERT_OK(b_->Put("/c1/e/f", "replaced"));
    ASSERT_OK(b_->SetMetadata({.path = P("/c1/e/f"), .mode = 0600}));
    EXPECT_EQ(times("/c1/e"), before);

    // An explicit mtime (touch -d) holds until the next change of the entries.
    ASSERT_OK(b_->SetMetadata({.path = P("/c1/e"), .mtime = Timestamp{1000000000, 5}}));
    EXPECT_EQ(times("/c1/e").first, (Timestamp{1000000000, 5}));
    EXPECT_GT(times("/c1/e").second, before.second) << "a change of metadata moves the ctime";
    ASSERT_OK(b_->Put("/c1/e/g", "new"));
    EXPECT_GT(times("/c1/e").first, (Timestamp{1000000000, 5}));
    // The directory moved keeps its times but for the ctime.
    auto dir_before = times("/c1/e");
    absl::SleepFor(absl::Milliseconds(2));
    ASSERT_OK(b_->Rename("/c1/e", "/c1/d/e2"));
    auto moved = times("/c1/d/e2");
    EXPECT_EQ(moved.first, dir_before.first);
    EXPECT_GT(moved.second, dir_before.second);
}

// Directories made and removed from many threads at once, counted while they change: the
// count ends exact.
TEST_P(BackendConformance, SubdirectoryCountsStayExactUnderConcurrentChanges) {
    ASSERT_OK(b_->Mkdir("/c1/busy"));
    constexpr int kThreads = 4, kEach = 25;
    std::vector<std::thread> threads;
    std::atomic<bool> done{false};
    std::thread reader([&] {
        while (!done.load()) {
            (void)b_->Stat("/c1/busy");
        }
    });
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                std::string d = absl::StrCat("/c1/busy/d", t, "-", i);
                EXPECT_TRUE(b_->Mkdir(d).ok());
                if (i % 5 == 0) {
                    EXPECT_TRUE(b_->Rmdir(d).ok());
                } else if (i % 5 == 1) {
                    EXPECT_TRUE(b_->Rename(d, absl::StrCat("/c1/busy-out-", t, "-", i)).ok());
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    done = true;
    reader.join();
    EXPECT_EQ(b_->Stat("/c1/busy")->subdirs, uint64_t{kThreads * kEach * 3 / 5});
}

TEST_P(BackendConformance, ALargeDirectoryListsAndScansEveryNameOnceInOrder) {
    ASSERT_OK(b_->Mkdir("/c1/big"));
    std::vector<std::string> want;
    // Names that share long prefixes and differ early, late and in length; two thirds of
    // them in one of 16 buckets of a stable hash (a backend that splits its index that way
    // must still merge the buckets in order when one is far fuller than the rest).
    for (int i = 0, k = 0; want.size() < 1500; ++k) {
        std::string name = absl::StrCat(k % 3 == 0 ? "a" : k % 3 == 1 ? "ab" : "b", "-", k);
        if (want.size() % 3 != 2 && ShardForPartitionKey(name, 16) != 0) {
            continue;
        }
        ASSERT_OK(b_->PutItem("/c1/big/" + name, {{"i", Value::Int64(i++)}}));
        want.push_back(name);
    }
    std::sort(want.begin(), want.end());
    for (uint32_t limit : {1u, 7u, 100u, 1000u}) {
        std::vector<std::string> got;
        std::string marker;
        for (int pages = 0; pages < 3000; ++pages) {
            auto page = b_->List({.path = *Path::Parse("/c1/big"), .marker = marker, .limit = limit});
            ASSERT_OK(page);
            ASSERT_LE(page->entries.size(), limit);
            for (const DirEntry& e : page->entries) {
                got.push_back(e.name);
            }
            if (!page->truncated) {
                break;
            }
            marker = page->next_marker;
        }
        size_t first = 0;
        while (first < got.size() && first < want.size() && got[first] == want[first]) {
            ++first;
        }
        EXPECT_EQ(got, want) << "pages of " << limit << ": " << got.size() << " names, the first difference at "
                             << first << ": " << (first < got.size() ? got[first] : "(end)") << " where "
                             << (first < want.size() ? want[first] : "(end)") << " was expected";
    }
    std::vector<std::string> prefixed;
    for (const std::string& n : want) {
        if (absl::StartsWith(n, "ab")) {
            prefixed.push_back(n);
        }
    }
    auto page = b_->List({.path = *Path::Parse("/c1/big"), .prefix = "ab", .limit = 1000});
    ASSERT_OK(page);
    std::vector<std::string> got;
    for (const DirEntry& e : page->entries) {
        got.push_back(e.name);
    }
    EXPECT_EQ(got, prefixed);
    // Three scanners, each its segment, pages of 100: together every item exactly once.
    std::vector<std::string> scanned;
    for (uint32_t seg = 0; seg < 3; ++seg) {
        std::string marker;
        for (int pages = 0; pages < 3000; ++pages) {
            auto r = b_->GetItems({.path = *Path::Parse("/c1/big"), .marker = marker, .limit = 100, .segment = seg,
                                   .total_segments = 3});
            ASSERT_OK(r);
            for (const Item& it : r->items) {
                scanned.push_back(it.name);
            }
            if (r->done) {
                break;
            }
            marker = r->next_marker;
        }
    }
    std::sort(scanned.begin(), scanned.end());
    EXPECT_EQ(scanned, want);
    // Emptied, it can be removed; not before.
    EXPECT_CODE(b_->Rmdir("/c1/big"), kFailedPrecondition);
    for (const std::string& n : want) {
        ASSERT_OK(b_->Delete("/c1/big/" + n));
    }
    ASSERT_OK(b_->Rmdir("/c1/big"));
}

TEST_P(BackendConformance, ListPagesWithPrefixMarkerAndLimit) {
    ASSERT_OK(b_->Mkdir("/c1/t"));
    for (int i = 0; i < 25; ++i) {
        ASSERT_OK(b_->Put(absl::StrCat("/c1/t/", i < 10 ? "a" : "b", absl::Dec(i, absl::kZeroPad2)), "v",
                          {{"n", Value::Int64(i)}}));
    }
    ASSERT_OK(b_->Mkdir("/c1/t/zdir"));
    std::vector<std::string> all;
    std::string marker;
    int pages = 0;
    while (true) {
        auto page = b_->List({.path = P("/c1/t"), .marker = marker, .limit = 10});
        ASSERT_OK(page);
        ++pages;
        for (const auto& e : page->entries) {
            all.push_back(e.name);
        }
        if (!page->truncated) {
            break;
        }
        marker = page->next_marker;
        ASSERT_LT(pages, 10);
    }
    EXPECT_EQ(all.size(), 26u);
    EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
    EXPECT_EQ(all.back(), "zdir");
    auto prefixed = b_->List({.path = P("/c1/t"), .prefix = "a", .with_attributes = true});
    ASSERT_OK(prefixed);
    ASSERT_EQ(prefixed->entries.size(), 10u);
    EXPECT_EQ(prefixed->entries[3].attributes.at("n"), Value::Int64(3));
    EXPECT_EQ(prefixed->entries[3].info.size, 1u);
    EXPECT_FALSE(prefixed->truncated);
    EXPECT_CODE(b_->List({.path = P("/c1/t/a00")}), kFailedPrecondition);
    EXPECT_CODE(b_->List({.path = P("/c1/none")}), kNotFound);
}

TEST_P(BackendConformance, RenameReplacesFilesAtomically) {
    ASSERT_OK(b_->Put("/c1/a", "new", {{"v", Value::Int64(2)}}));
    ASSERT_OK(b_->Put("/c1/b", "old"));
    ASSERT_OK(b_->Rename("/c1/a", "/c1/b"));
    EXPECT_CODE(b_->Stat("/c1/a"), kNotFound);
    EXPECT_EQ(*b_->Get("/c1/b"), "new");
    EXPECT_EQ(b_->GetItem("/c1/b")->attributes.at("v"), Value::Int64(2));
    ASSERT_OK(b_->Put("/c1/a", "again"));
    EXPECT_CODE(b_->Rename("/c1/a", "/c1/b", /*no_replace=*/true), kAlreadyExists);
    EXPECT_EQ(*b_->Get("/c1/b"), "new");
    EXPECT_CODE(b_->Rename("/c1/missing", "/c1/x"), kNotFound);
    EXPECT_CODE(b_->Rename("/c1/a", "/c1/nodir/x"), kNotFound);
    ASSERT_OK(b_->Rename("/c1/a", "/c1/a"));
    EXPECT_EQ(*b_->Get("/c1/a"), "again");
}

TEST_P(BackendConformance, RenameMovesWholeDirectories) {
    ASSERT_OK(b_->Mkdir("/c1/src"));
    ASSERT_OK(b_->Mkdir("/c1/src/deep"));
    ASSERT_OK(b_->Put("/c1/src/deep/f", "payload"));
    ASSERT_OK(b_->Mkdir("/c1/dst"));
    ASSERT_OK(b_->Rename("/c1/src", "/c1/dst/moved"));
    EXPECT_CODE(b_->Stat("/c1/src"), kNotFound);
    EXPECT_EQ(*b_->Get("/c1/dst/moved/deep/f"), "payload");
    EXPECT_CODE(b_->Rename("/c1/dst", "/c1/dst/moved/deep/x"), kInvalidArgument);
    ASSERT_OK(b_->Mkdir("/c1/full"));
    ASSERT_OK(b_->Put("/c1/full/f", "x"));
    EXPECT_CODE(b_->Rename("/c1/dst", "/c1/full"), kFailedPrecondition);
    ASSERT_OK(b_->Mkdir("/c1/empty"));
    ASSERT_OK(b_->Rename("/c1/dst", "/c1/empty"));
    EXPECT_EQ(*b_->Get("/c1/empty/moved/deep/f"), "payload");
    EXPECT_CODE(b_->Rename("/c1/empty", "/c1/full/f"), kFailedPrecondition);
    EXPECT_CODE(b_->Rename("/c1/full/f", "/c1/empty"), kFailedPrecondition);
}

TEST_P(BackendConformance, RecreatedDirectoriesStartEmpty) {
    ASSERT_OK(b_->Mkdir("/c1/d"));
    ASSERT_OK(b_->Put("/c1/d/x", "old"));
    ASSERT_OK(b_->Delete("/c1/d/x"));
    ASSERT_OK(b_->Rmdir("/c1/d"));
    EXPECT_CODE(b_->Put("/c1/d/x", "nowhere"), kNotFound);
    ASSERT_OK(b_->Mkdir("/c1/d"));
    ASSERT_OK(b_->Put("/c1/d/y", "new"));
    auto list = b_->List({.path = P("/c1/d")});
    ASSERT_OK(list);
    EXPECT_THAT(Names(*list), ElementsAre("y"));
    EXPECT_CODE(b_->Get("/c1/d/x"), kNotFound);
    ASSERT_OK(b_->Rename("/c1/d", "/c1/e"));
    EXPECT_CODE(b_->Get("/c1/d/y"), kNotFound);
    EXPECT_EQ(*b_->Get("/c1/e/y"), "new");
}

TEST_P(BackendConformance, WritesRacingDirectoryRenamesAreNeverLost) {
    ASSERT_OK(b_->Mkdir("/c1/a"));
    // The renamer keeps going until both sides have done enough work to race: on a loaded
    // two-core machine it could otherwise finish before a single write got in.
    std::atomic<bool> stop{false};
    std::atomic<int> writes{0};
    std::thread renamer([&] {
        const absl::Time deadline = absl::Now() + absl::Seconds(60);
        for (int i = 0; (i < 200 || writes.load() < 50) && absl::Now() < deadline; ++i) {
            ASSERT_TRUE(b_->Rename("/c1/a", "/c1/b").ok());
            ASSERT_TRUE(b_->Rename("/c1/b", "/c1/a").ok());
        }
        stop = true;
    });
    std::vector<std::string> written;
    for (int i = 0; !stop; ++i) {
        std::string name = absl::StrCat("x", i);
        absl::Status st = b_->PutItem("/c1/a/" + name, {{"i", Value::Int64(i)}}).status();
        if (st.ok()) {
            written.push_back(name);
            writes.fetch_add(1);
        } else {
            ASSERT_TRUE(absl::IsNotFound(st) || absl::IsUnavailable(st)) << st;
        }
    }
    renamer.join();
    ASSERT_FALSE(written.empty());
    for (const std::string& name : written) {
        ASSERT_OK(b_->GetItem("/c1/a/" + name));
    }
    auto list = b_->List({.path = P("/c1/a"), .limit = kMaxListLimit});
    ASSERT_OK(list);
    EXPECT_EQ(list->entries.size(), written.size()) << "a write landed outside the directory";
}

TEST_P(BackendConformance, SymlinksStoreTheirTarget) {
    auto s = b_->Symlink("/c1/link", "../some/target");
    ASSERT_OK(s);
    EXPECT_EQ(s->type, ObjectType::kSymlink);
    EXPECT_EQ(*b_->Readlink("/c1/link"), "../some/target");
    EXPECT_EQ(b_->Stat("/c1/link")->size, 14u);
    EXPECT_CODE(b_->Symlink("/c1/link", "x"), kAlreadyExists);
    EXPECT_CODE(b_->Symlink("/c1/l2", ""), kInvalidArgument);
    ASSERT_OK(b_->Put("/c1/f", "x"));
    EXPECT_CODE(b_->Readlink("/c1/f"), kInvalidArgument);
    EXPECT_CODE(b_->Get("/c1/link"), kFailedPrecondition);
    ASSERT_OK(b_->Delete("/c1/link"));
    EXPECT_CODE(b_->Readlink("/c1/link"), kNotFound);
}

// FIFOs, devices and unix sockets (made through the mount) are entries with their kind, mode,
// owner and device number and no bytes: listed, stat'ed, renamed and removed like others.
TEST_P(BackendConformance, SpecialFilesKeepTheirKindAndDeviceNumber) {
    auto fifo = b_->Mknod({.path = P("/c1/fifo"), .special = S_IFIFO, .mode = 0640, .caller = {7, 8}});
    ASSERT_OK(fifo);
    EXPECT_EQ(fifo->type, ObjectType::kSpecial);
    EXPECT_EQ(fifo->special, static_cast<uint32_t>(S_IFIFO));
    EXPECT_EQ(fifo->mode, 0640u);
    EXPECT_EQ(fifo->uid, 7u);
    EXPECT_EQ(fifo->gid, 8u);
    ASSERT_OK(b_->Mknod({.path = P("/c1/tty"), .special = S_IFCHR, .mode = 0620, .rdev = makedev(4, 64)}));
    ASSERT_OK(b_->Mknod({.path = P("/c1/disk"), .special = S_IFBLK, .mode = 0660, .rdev = makedev(259, 3)}));
    ASSERT_OK(b_->Mknod({.path = P("/c1/sock"), .special = S_IFSOCK, .mode = 0755}));
    auto tty = b_->Stat("/c1/tty");
    ASSERT_OK(tty);
    EXPECT_EQ(tty->type, ObjectType::kSpecial);
    EXPECT_EQ(tty->special, static_cast<uint32_t>(S_IFCHR));
    EXPECT_EQ(tty->rdev, makedev(4, 64));
    EXPECT_EQ(b_->Stat("/c1/disk")->rdev, makedev(259, 3));
    EXPECT_EQ(b_->Stat("/c1/sock")->special, static_cast<uint32_t>(S_IFSOCK));
    EXPECT_EQ(b_->Stat("/c1/fifo")->size, 0u);
    auto list = b_->List({.path = P("/c1")});
    ASSERT_OK(list);
    ASSERT_EQ(list->entries.size(), 4u);
    EXPECT_EQ(list->entries[0].name, "disk");
    EXPECT_EQ(list->entries[0].info.special, static_cast<uint32_t>(S_IFBLK));

    // Made once; only these four kinds; permission bits only; a number only for devices.
    EXPECT_CODE(b_->Mknod({.path = P("/c1/fifo"), .special = S_IFIFO}), kAlreadyExists);
    EXPECT_CODE(b_->Mknod({.path = P("/c1/r"), .special = S_IFREG}), kInvalidArgument);
    EXPECT_CODE(b_->Mknod({.path = P("/c1/d"), .special = S_IFDIR}), kInvalidArgument);
    EXPECT_CODE(b_->Mknod({.path = P("/c1/m"), .special = S_IFIFO, .mode = S_IFIFO | 0644}), kInvalidArgument);
    EXPECT_CODE(b_->Mknod({.path = P("/c1/n"), .special = S_IFIFO, .rdev = 1}), kInvalidArgument);
    EXPECT_CODE(b_->Mknod({.path = P("/c1/nodir/x"), .special = S_IFIFO}), kNotFound);

    // No bytes to read or write; renamed, replaced by a rename, changed and removed like files.
    EXPECT_CODE(b_->Get("/c1/fifo"), kFailedPrecondition);
    ASSERT_OK(b_->Mkdir("/c1/d"));
    ASSERT_OK(b_->Rename("/c1/fifo", "/c1/d/fifo"));
    EXPECT_EQ(b_->Stat("/c1/d/fifo")->special, static_cast<uint32_t>(S_IFIFO));
    ASSERT_OK(b_->Put("/c1/f", "bytes"));
    ASSERT_OK(b_->Rename("/c1/f", "/c1/sock"));
    EXPECT_EQ(b_->Stat("/c1/sock")->type, ObjectType::kObject);
    auto changed = b_->SetMetadata({.path = P("/c1/tty"), .mode = 0600, .uid = 5});
    ASSERT_OK(changed);
    EXPECT_EQ(changed->mode, 0600u);
    EXPECT_EQ(changed->rdev, makedev(4, 64)) << "a change of metadata keeps the device number";
    ASSERT_OK(b_->Delete("/c1/tty"));
    ASSERT_OK(b_->Delete("/c1/d/fifo"));
    EXPECT_CODE(b_->Stat("/c1/tty"), kNotFound);
}

TEST_P(BackendConformance, DeleteHonoursConditionsAndTypes) {
    ASSERT_OK(b_->Put("/c1/x", "data", {{"ver", Value::Int64(3)}}));
    EXPECT_CODE(b_->Delete("/c1/x", "ver == 4"), kFailedPrecondition);
    EXPECT_EQ(*b_->Get("/c1/x"), "data");
    EXPECT_CODE(b_->Delete("/c1/x", "ver =="), kInvalidArgument);
    ASSERT_OK(b_->Delete("/c1/x", "ver == 3"));
    EXPECT_CODE(b_->Get("/c1/x"), kNotFound);
    EXPECT_CODE(b_->Delete("/c1/x"), kNotFound);
    ASSERT_OK(b_->Mkdir("/c1/d"));
    EXPECT_CODE(b_->Delete("/c1/d"), kFailedPrecondition);
}

TEST_P(BackendConformance, SetMetadataChangesModeOwnerAndTimes) {
    auto made = b_->Put("/c1/f", "x");
    ASSERT_OK(made);
    EXPECT_EQ(made->atime, made->mtime) << "made now: accessed, changed and modified now";
    auto info = b_->SetMetadata({.path = P("/c1/f"), .mode = 0600, .uid = 1000, .gid = 100,
                                 .mtime = Timestamp{1234567890, 42}});
    ASSERT_OK(info);
    auto st = b_->Stat("/c1/f");
    ASSERT_OK(st);
    EXPECT_EQ(st->mode, 0600u);
    EXPECT_EQ(st->uid, 1000u);
    EXPECT_EQ(st->gid, 100u);
    EXPECT_EQ(st->mtime, (Timestamp{1234567890, 42}));
    EXPECT_EQ(st->atime, made->mtime) << "the access time is the creation's until set";
    // The access time is set by itself, kept by changes of anything else.
    ASSERT_OK(b_->SetMetadata({.path = P("/c1/f"), .atime = Timestamp{-86400 * 365, 7}}));
    ASSERT_OK(b_->SetMetadata({.path = P("/c1/f"), .mode = 0640, .mtime = Timestamp{4102444800, 9}}));
    ASSERT_OK(b_->Put("/c1/f", "rewritten"));
    st = b_->Stat("/c1/f");
    ASSERT_OK(st);
    EXPECT_EQ(st->atime, (Timestamp{-86400 * 365, 7}));
    EXPECT_EQ(st->mode, 0640u);
    ASSERT_OK(b_->Mkdir("/c1/d"));
    ASSERT_OK(b_->SetMetadata({.path = P("/c1/d"), .atime = Timestamp{5, 6}}));
    EXPECT_EQ(b_->Stat("/c1/d")->atime, (Timestamp{5, 6}));
    EXPECT_CODE(b_->SetMetadata({.path = P("/c1/none"), .mode = 0600}), kNotFound);
    EXPECT_CODE(b_->SetMetadata({.path = P("/c1/f"), .mtime = Timestamp{std::numeric_limits<int64_t>::max(), 0}}),
                kInvalidArgument);
    EXPECT_CODE(b_->SetMetadata({.path = P("/c1/f"), .atime = Timestamp{0, 1'000'000'000}}), kInvalidArgument);
}

// ---- objects --------------------------------------------------------------------------

TEST_P(BackendConformance, PutAndGetSmallAndLargeObjectsWithRanges) {
    for (size_t size : {size_t{0}, size_t{1}, size_t{1000}, size_t{64 * 1024}, size_t{64 * 1024 + 1},
                        size_t{3 * 1024 * 1024 + 17}}) {
        std::string data = Pattern(size, static_cast<uint32_t>(size));
        std::string path = absl::StrCat("/c1/obj", size);
        auto info = b_->Put(path, data);
        ASSERT_OK(info);
        EXPECT_EQ(info->size, size);
        EXPECT_EQ(info->type, ObjectType::kObject);
        auto got = b_->Get(path);
        ASSERT_OK(got);
        EXPECT_TRUE(*got == data) << size;
        if (size > 10) {
            EXPECT_EQ(*b_->Get(path, 3, 5), data.substr(3, 5));
            EXPECT_EQ(*b_->Get(path, size - 2, 100), data.substr(size - 2));  // clipped at the end
        }
        EXPECT_EQ(*b_->Get(path, size + 10, 5), "");
    }
}

TEST_P(BackendConformance, PutReplacesBytesAndAttributesUnderACondition) {
    ASSERT_OK(b_->Put("/c1/o", "one", {{"v", Value::Int64(1)}}));
    auto first = b_->Stat("/c1/o");
    ASSERT_OK(first);
    EXPECT_CODE(b_->Put("/c1/o", "two", {{"v", Value::Int64(2)}}, "v == 5"), kFailedPrecondition);
    EXPECT_EQ(*b_->Get("/c1/o"), "one");
    ASSERT_OK(b_->Put("/c1/o", std::string(200000, 'z'), {{"v", Value::Int64(2)}}, "v == 1"));
    EXPECT_EQ(b_->Get("/c1/o")->size(), 200000u);
    auto item = b_->GetItem("/c1/o");
    ASSERT_OK(item);
    EXPECT_EQ(item->attributes.size(), 1u);
    EXPECT_EQ(item->attributes.at("v"), Value::Int64(2));
    EXPECT_EQ(item->info.id, first->id);  // same object, new version
    ASSERT_OK(b_->Put("/c1/o", "small again"));
    EXPECT_EQ(*b_->Get("/c1/o"), "small again");
    EXPECT_TRUE(b_->GetItem("/c1/o")->attributes.empty());
    // A condition on a missing object sees no attributes.
    EXPECT_CODE(b_->Put("/c1/new", "x", {}, "exists(v)"), kFailedPrecondition);
    ASSERT_OK(b_->Put("/c1/new", "x", {}, "NOT exists(v)"));
    ASSERT_OK(b_->Mkdir("/c1/dir"));
    EXPECT_CODE(b_->Put("/c1/dir", "x"), kFailedPrecondition);
    EXPECT_CODE(b_->Put("/c1/missing/o", "x"), kNotFound);
}

TEST_P(BackendConformance, WritesAtOffsetsFillHolesWithZeros) {
    ASSERT_OK(b_->Put("/c1/w", "hello"));
    ASSERT_OK(b_->Write("/c1/w", 1, "EL"));
    EXPECT_EQ(*b_->Get("/c1/w"), "hELlo");
    auto info = b_->Write("/c1/w", 8, "xy");
    ASSERT_OK(info);
    EXPECT_EQ(info->size, 10u);
    EXPECT_EQ(*b_->Get("/c1/w"), std::string("hELlo\0\0\0xy", 10));
    // Grow past the inline size: the bytes move and stay right.
    std::string big = Pattern(300000, 7);
    ASSERT_OK(b_->Write("/c1/w", 100, big));
    auto got = b_->Get("/c1/w");
    ASSERT_OK(got);
    ASSERT_EQ(got->size(), 300100u);
    EXPECT_EQ(got->substr(0, 10), std::string("hELlo\0\0\0xy", 10));
    EXPECT_EQ(got->substr(10, 90), std::string(90, '\0'));
    EXPECT_TRUE(got->substr(100) == big);
    ASSERT_OK(b_->Write("/c1/w", 5, "MID"));
    EXPECT_EQ(b_->Get("/c1/w", 0, 10).value(), std::string("hELloMIDxy", 10));
    EXPECT_CODE(b_->Write("/c1/none", 0, "x"), kNotFound);
    EXPECT_CODE(b_->Write("/c1/w", kMaxObjectBytes, "x"), kInvalidArgument);
}

TEST_P(BackendConformance, AppendsAreAtomicUnderConcurrency) {
    ASSERT_OK(b_->Put("/c1/log", ""));
    constexpr int kThreads = 8, kEach = 50;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::string rec = absl::StrCat("[", t, "]");
            rec.resize(8, '.');
            for (int i = 0; i < kEach; ++i) {
                ASSERT_TRUE(b_->Append("/c1/log", rec).ok());
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    auto log = b_->Get("/c1/log");
    ASSERT_OK(log);
    ASSERT_EQ(log->size(), size_t{kThreads * kEach * 8});
    std::map<char, int> per_thread;
    for (size_t i = 0; i < log->size(); i += 8) {
        ASSERT_EQ((*log)[i], '[') << "torn append at " << i;
        per_thread[(*log)[i + 1]]++;
    }
    for (const auto& [t, n] : per_thread) {
        EXPECT_EQ(n, kEach) << t;
    }
    auto info = b_->Append("/c1/log", "tail");
    ASSERT_OK(info);
    EXPECT_EQ(info->size, size_t{kThreads * kEach * 8 + 4});
    EXPECT_CODE(b_->Append("/c1/none", "x"), kNotFound);
}

TEST_P(BackendConformance, TruncateShrinksAndGrows) {
    ASSERT_OK(b_->Put("/c1/t", "0123456789"));
    ASSERT_OK(b_->Truncate("/c1/t", 4));
    EXPECT_EQ(*b_->Get("/c1/t"), "0123");
    ASSERT_OK(b_->Truncate("/c1/t", 6));
    EXPECT_EQ(*b_->Get("/c1/t"), std::string("0123\0\0", 6));
    ASSERT_OK(b_->Truncate("/c1/t", 500000));
    EXPECT_EQ(b_->Stat("/c1/t")->size, 500000u);
    EXPECT_EQ(*b_->Get("/c1/t", 0, 6), std::string("0123\0\0", 6));
    EXPECT_EQ(*b_->Get("/c1/t", 499990, 100), std::string(10, '\0'));
    ASSERT_OK(b_->Truncate("/c1/t", 2));
    EXPECT_EQ(*b_->Get("/c1/t"), "01");
    ASSERT_OK(b_->Truncate("/c1/t", 0));
    EXPECT_EQ(*b_->Get("/c1/t"), "");
    EXPECT_CODE(b_->Truncate("/c1/none", 1), kNotFound);
}

TEST_P(BackendConformance, ReadsOwnWritesImmediately) {
    for (int i = 0; i < 100; ++i) {
        std::string v = absl::StrCat("value-", i);
        ASSERT_OK(b_->Put("/c1/rw", v));
        ASSERT_EQ(*b_->Get("/c1/rw"), v);
        ASSERT_OK(b_->UpdateItem("/c1/rw", absl::StrCat("n = ", i)));
        ASSERT_EQ(b_->GetItem("/c1/rw", {"n"})->attributes.at("n"), Value::Int64(i));
    }
}

// ---- items ----------------------------------------------------------------------------

AttributeMap EveryType() {
    return {{"b", Value::Bool(true)},
            {"i", Value::Int64(-5)},
            {"d", Value::Double(0.25)},
            {"s", Value::String("héllo")},
            {"blob", Value::Blob(std::string("\0\xff", 2))},
            {"t", Value::Time(Timestamp{1700000000, 999999999})},
            {"ia", Value::Int64Array({1, -2, 3})},
            {"da", Value::DoubleArray({1.5})}};
}

TEST_P(BackendConformance, ItemsKeepEveryValueType) {
    ASSERT_OK(b_->Mkdir("/c1/people"));
    ASSERT_OK(b_->PutItem("/c1/people/alice", EveryType()));
    auto item = b_->GetItem("/c1/people/alice");
    ASSERT_OK(item);
    EXPECT_EQ(item->name, "alice");
    EXPECT_EQ(item->attributes, EveryType());
    EXPECT_EQ(item->info.type, ObjectType::kObject);
}

TEST_P(BackendConformance, GetItemProjectsUserAndSystemAttributes) {
    ASSERT_OK(b_->PutItem("/c1/it", EveryType()));
    auto some = b_->GetItem("/c1/it", {"i", "s", "missing", "__name", "__size", "__obj_type"});
    ASSERT_OK(some);
    EXPECT_EQ(some->attributes.size(), 5u);
    EXPECT_EQ(some->attributes.at("__name"), Value::String("it"));
    EXPECT_EQ(some->attributes.at("__size"), Value::Int64(0));
    EXPECT_EQ(some->attributes.at("__obj_type"), Value::Int64(0));
    auto everything = b_->GetItem("/c1/it", {"**"});
    ASSERT_OK(everything);
    EXPECT_TRUE(everything->attributes.contains("__mtime_nsecs"));
    EXPECT_TRUE(everything->attributes.contains("blob"));
    EXPECT_CODE(b_->GetItem("/c1/none"), kNotFound);
}

TEST_P(BackendConformance, PutItemReplacesAllAttributesAndKeepsBytes) {
    ASSERT_OK(b_->Put("/c1/obj", "bytes stay", {{"a", Value::Int64(1)}, {"b", Value::Int64(2)}}));
    ASSERT_OK(b_->PutItem("/c1/obj", {{"c", Value::Int64(3)}}));
    auto item = b_->GetItem("/c1/obj");
    ASSERT_OK(item);
    EXPECT_EQ(item->attributes, (AttributeMap{{"c", Value::Int64(3)}}));
    EXPECT_EQ(*b_->Get("/c1/obj"), "bytes stay");
    EXPECT_CODE(b_->PutItem("/c1/x", {{"__size", Value::Int64(1)}}), kInvalidArgument);
    EXPECT_CODE(b_->PutItem("/c1/x", {{"", Value::Int64(1)}}), kInvalidArgument);
    EXPECT_CODE(b_->PutItem("/c1/missing/x", {{"a", Value::Int64(1)}}), kNotFound);
}

TEST_P(BackendConformance, PutItemKeepsTheItemsIdentityAndRefusesWhatIsNotAnItem) {
    auto first = b_->PutItem("/c1/who", {{"n", Value::Int64(1)}});
    ASSERT_OK(first);
    auto other = b_->PutItem("/c1/other", {{"n", Value::Int64(1)}});
    ASSERT_OK(other);
    EXPECT_NE(first->id, other->id);
    auto again = b_->PutItem("/c1/who", {{"n", Value::Int64(2)}});
    ASSERT_OK(again);
    EXPECT_EQ(again->id, first->id) << "a put replaces the attributes, not the item";
    EXPECT_EQ(again->mode, first->mode);
    EXPECT_GE(again->mtime, first->mtime);
    auto stat = b_->Stat("/c1/who");
    ASSERT_OK(stat);
    EXPECT_EQ(stat->id, first->id);
    EXPECT_EQ(stat->mtime, again->mtime);
    auto fresh = b_->PutItem("/c1/third", {{"n", Value::Int64(1)}});
    ASSERT_OK(fresh);
    EXPECT_NE(fresh->id, first->id);
    EXPECT_NE(fresh->id, other->id);
    ASSERT_OK(b_->Mkdir("/c1/dir"));
    EXPECT_CODE(b_->PutItem("/c1/dir", {{"n", Value::Int64(1)}}), kFailedPrecondition);
    EXPECT_CODE(b_->PutItem("/c1/who/x", {{"n", Value::Int64(1)}}), kFailedPrecondition);
    ASSERT_OK(b_->CreateStream("/c1/events", 2));
    EXPECT_CODE(b_->PutItem("/c1/events/x", {{"n", Value::Int64(1)}}), kFailedPrecondition);
    EXPECT_CODE(b_->PutItem("/c1/dir/missing/x", {{"n", Value::Int64(1)}}), kNotFound);
    auto listed = b_->List({.path = *Path::Parse("/c1/dir")});
    ASSERT_OK(listed);
    EXPECT_TRUE(listed->entries.empty());
}

TEST_P(BackendConformance, CompareAndSwapOnMtime) {
    ASSERT_OK(b_->PutItem("/c1/cas", {{"v", Value::Int64(1)}}));
    auto seen = b_->GetItem("/c1/cas", {"__mtime_secs", "__mtime_nsecs"});
    ASSERT_OK(seen);
    std::string cond = absl::StrCat("__mtime_secs == ", seen->attributes.at("__mtime_secs").as_int64(),
                                    " AND __mtime_nsecs == ", seen->attributes.at("__mtime_nsecs").as_int64());
    ASSERT_OK(b_->PutItem("/c1/cas", {{"v", Value::Int64(2)}}, cond));
    EXPECT_CODE(b_->PutItem("/c1/cas", {{"v", Value::Int64(3)}}, cond), kFailedPrecondition);
    EXPECT_EQ(b_->GetItem("/c1/cas")->attributes.at("v"), Value::Int64(2));
}

TEST_P(BackendConformance, UpdateItemAppliesExpressionsInOrder) {
    ASSERT_OK(b_->UpdateItem("/c1/u", "SET a = 1; b = 'x'; arr = init_array(3, 'int'); arr[1] = 9"));
    auto item = b_->GetItem("/c1/u");
    ASSERT_OK(item);
    EXPECT_EQ(item->attributes.at("a"), Value::Int64(1));
    EXPECT_EQ(item->attributes.at("arr"), Value::Int64Array({0, 9, 0}));
    ASSERT_OK(b_->UpdateItem("/c1/u", "temp=b; b=a; a=temp; REMOVE temp"));
    item = b_->GetItem("/c1/u");
    EXPECT_EQ(item->attributes.at("a"), Value::String("x"));
    EXPECT_EQ(item->attributes.at("b"), Value::Int64(1));
    EXPECT_FALSE(item->attributes.contains("temp"));
    // Condition false: the else expression runs; without one, nothing changes.
    ASSERT_OK(b_->UpdateItem("/c1/u", "c = 1", "b == 2", "c = 2"));
    EXPECT_EQ(b_->GetItem("/c1/u")->attributes.at("c"), Value::Int64(2));
    EXPECT_CODE(b_->UpdateItem("/c1/u", "c = 3", "b == 2"), kFailedPrecondition);
    EXPECT_EQ(b_->GetItem("/c1/u")->attributes.at("c"), Value::Int64(2));
    // A failing update changes nothing, even after earlier statements succeeded.
    auto bad = b_->UpdateItem("/c1/u", "c = 100; d = missing + 1");
    EXPECT_CODE(bad, kInvalidArgument);
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr("missing"));
    EXPECT_EQ(b_->GetItem("/c1/u")->attributes.at("c"), Value::Int64(2));
    auto syntax = b_->UpdateItem("/c1/u", "SET a = (1");
    EXPECT_CODE(syntax, kInvalidArgument);
    EXPECT_THAT(std::string(syntax.status().message()), HasSubstr("byte"));
    EXPECT_CODE(b_->UpdateItem("/c1/u", "a = 1", "a =="), kInvalidArgument);
}

TEST_P(BackendConformance, ReadsNeverGoBackInTime) {
    ASSERT_OK(b_->PutItem("/c1/clock", {{"n", Value::Int64(0)}}));
    constexpr int64_t kWrites = 2000;
    std::atomic<bool> done{false};
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r) {
        readers.emplace_back([&] {
            int64_t last = 0;
            while (!done.load()) {
                auto item = b_->GetItem("/c1/clock", {"n"});
                ASSERT_TRUE(item.ok());
                int64_t n = item->attributes.at("n").as_int64();
                ASSERT_GE(n, last) << "a read saw an older value after a newer one";
                last = n;
            }
        });
    }
    for (int64_t i = 1; i <= kWrites; ++i) {
        ASSERT_OK(b_->PutItem("/c1/clock", {{"n", Value::Int64(i)}}));
        // Once acknowledged, every later read sees it.
        ASSERT_EQ(b_->GetItem("/c1/clock", {"n"})->attributes.at("n"), Value::Int64(i));
    }
    done = true;
    for (auto& t : readers) {
        t.join();
    }
}

TEST_P(BackendConformance, ConcurrentCounterUpdatesLoseNothing) {
    constexpr int kThreads = 8, kEach = 100;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kEach; ++i) {
                ASSERT_TRUE(b_->UpdateItem("/c1/counter", "n = if_not_exists(n, 0) + 1").ok());
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(b_->GetItem("/c1/counter")->attributes.at("n"), Value::Int64(kThreads * kEach));
}

TEST_P(BackendConformance, GetItemsFiltersProjectsAndPages) {
    ASSERT_OK(b_->Mkdir("/c1/tbl"));
    for (int i = 0; i < 120; ++i) {
        ASSERT_OK(b_->PutItem(absl::StrCat("/c1/tbl/k", absl::Dec(i, absl::kZeroPad3)),
                              {{"i", Value::Int64(i)},
                               {"even", Value::Bool(i % 2 == 0)},
                               {"name", Value::String(absl::StrCat("item", i))}}));
    }
    ASSERT_OK(b_->Mkdir("/c1/tbl/subdir"));  // not an item
    std::vector<int> seen;
    std::string marker;
    for (int pages = 0;; ++pages) {
        ASSERT_LT(pages, 100);
        auto page = b_->GetItems({.path = P("/c1/tbl"),
                                  .filter = "even AND i >= 10",
                                  .attributes = {"i", "__name"},
                                  .marker = marker,
                                  .limit = 7});
        ASSERT_OK(page);
        EXPECT_LE(page->items.size(), 7u);
        for (const Item& it : page->items) {
            EXPECT_EQ(it.attributes.size(), 2u);
            EXPECT_EQ(it.attributes.at("__name"), Value::String(it.name));
            seen.push_back(static_cast<int>(it.attributes.at("i").as_int64()));
        }
        if (page->done) {
            break;
        }
        marker = page->next_marker;
    }
    std::vector<int> want;
    for (int i = 10; i < 120; i += 2) {
        want.push_back(i);
    }
    EXPECT_EQ(seen, want);
    auto bad = b_->GetItems({.path = P("/c1/tbl"), .filter = "i >"});
    EXPECT_CODE(bad, kInvalidArgument);
    EXPECT_CODE(b_->GetItems({.path = P("/c1/none")}), kNotFound);
    EXPECT_CODE(b_->GetItems({.path = P("/c1/tbl"), .segment = 2, .total_segments = 2}), kInvalidArgument);
}

TEST_P(BackendConformance, GetItemsSegmentsSplitATableExactly) {
    ASSERT_OK(b_->Mkdir("/c1/seg"));
    for (int i = 0; i < 200; ++i) {
        ASSERT_OK(b_->PutItem(absl::StrCat("/c1/seg/item", i), {{"i", Value::Int64(i)}}));
    }
    constexpr uint32_t kSegments = 4;
    std::multiset<std::string> all;
    for (uint32_t s = 0; s < kSegments; ++s) {
        std::string marker;
        size_t mine = 0;
        while (true) {
            auto page = b_->GetItems({.path = P("/c1/seg"), .marker = marker, .limit = 50, .segment = s,
                                      .total_segments = kSegments});
            ASSERT_OK(page);
            for (const Item& it : page->items) {
                all.insert(it.name);
                ++mine;
            }
            if (page->done) {
                break;
            }
            marker = page->next_marker;
        }
        EXPECT_GT(mine, 20u) << "segment " << s << " is badly unbalanced";
    }
    EXPECT_EQ(all.size(), 200u);
    EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 200u);  // no item in two segments
}

TEST_P(BackendConformance, PutItemsGivesEachItemItsOwnStatus) {
    ASSERT_OK(b_->PutItem("/c1/exists", {{"v", Value::Int64(1)}}));
    std::vector<PutItemRequest> reqs;
    reqs.push_back({.path = P("/c1/a"), .attributes = {{"v", Value::Int64(1)}}});
    reqs.push_back({.path = P("/c1/exists"), .attributes = {{"v", Value::Int64(2)}}, .condition = "v == 9"});
    reqs.push_back({.path = P("/c1/nodir/b"), .attributes = {{"v", Value::Int64(1)}}});
    reqs.push_back({.path = P("/c1/c"), .attributes = {{"v", Value::Int64(3)}}});
    auto r = b_->PutItems(std::move(reqs));
    ASSERT_OK(r);
    ASSERT_EQ(r->size(), 4u);
    EXPECT_TRUE((*r)[0].ok());
    EXPECT_EQ((*r)[1].code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ((*r)[2].code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE((*r)[3].ok());
    EXPECT_EQ(b_->GetItem("/c1/exists")->attributes.at("v"), Value::Int64(1));
    EXPECT_EQ(b_->GetItem("/c1/c")->attributes.at("v"), Value::Int64(3));
}

TEST_P(BackendConformance, OversizedItemsAreRejectedWholly) {
    AttributeMap big{{"blob", Value::Blob(std::string(kMaxItemAttributeBytes, 'x'))}};
    EXPECT_CODE(b_->PutItem("/c1/big", big), kInvalidArgument);
    EXPECT_CODE(b_->Stat("/c1/big"), kNotFound);
    ASSERT_OK(b_->PutItem("/c1/big", {{"s", Value::String(std::string(kMaxItemAttributeBytes / 2, 'y'))}}));
    EXPECT_CODE(b_->UpdateItem("/c1/big", "t = s; u = s"), kInvalidArgument);
    EXPECT_EQ(b_->GetItem("/c1/big")->attributes.size(), 1u);
    EXPECT_CODE(b_->Put("/c1/big2", "x", big), kInvalidArgument);
    std::string long_name(256, 'n');
    EXPECT_CODE(b_->PutItem("/c1/n", {{long_name, Value::Int64(1)}}), kInvalidArgument);
}

TEST_P(BackendConformance, DeleteItemWithCondition) {
    ASSERT_OK(b_->PutItem("/c1/d", {{"state", Value::String("done")}}));
    EXPECT_CODE(b_->Delete("/c1/d", "state == 'running'"), kFailedPrecondition);
    ASSERT_OK(b_->Delete("/c1/d", "state == 'done'"));
    EXPECT_CODE(b_->GetItem("/c1/d"), kNotFound);
}

// ---- streams --------------------------------------------------------------------------

TEST_P(BackendConformance, StreamsAreCreatedDescribedAndDeleted) {
    auto s = b_->CreateStream("/c1/events", 4, 7200);
    ASSERT_OK(s);
    EXPECT_EQ(s->type, ObjectType::kStream);
    auto d = b_->DescribeStream("/c1/events");
    ASSERT_OK(d);
    EXPECT_EQ(d->shard_count, 4u);
    EXPECT_EQ(d->retention_secs, 7200);
    auto shards = b_->List({.path = P("/c1/events")});
    ASSERT_OK(shards);
    EXPECT_THAT(Names(*shards), ElementsAre("0", "1", "2", "3"));
    EXPECT_EQ(shards->entries[0].info.type, ObjectType::kShard);
    EXPECT_CODE(b_->CreateStream("/c1/events", 4), kAlreadyExists);
    EXPECT_CODE(b_->CreateStream("/c1/bad", 0), kInvalidArgument);
    EXPECT_CODE(b_->CreateStream("/c1/bad", kMaxShards + 1), kInvalidArgument);
    EXPECT_CODE(b_->CreateStream("/c1/bad", 1, 0), kInvalidArgument);
    EXPECT_CODE(b_->Delete("/c1/events"), kFailedPrecondition);
    EXPECT_CODE(b_->Rmdir("/c1/events"), kFailedPrecondition);
    EXPECT_CODE(b_->Put("/c1/events/9", "x"), kFailedPrecondition);
    ASSERT_OK(b_->PutRecords("/c1/events", {{.data = "r"}}));
    ASSERT_OK(b_->DeleteStream("/c1/events"));
    EXPECT_CODE(b_->DescribeStream("/c1/events"), kNotFound);
    EXPECT_CODE(b_->GetRecords("/c1/events", {0, 1}), kNotFound);
    // A new stream of the same name starts empty.
    ASSERT_OK(b_->CreateStream("/c1/events", 1));
    EXPECT_TRUE(b_->GetRecords("/c1/events", {0, 1})->records.empty());
    ASSERT_OK(b_->Put("/c1/plain", "x"));
    EXPECT_CODE(b_->DescribeStream("/c1/plain"), kFailedPrecondition);
}

TEST_P(BackendConformance, PutRecordsPlacesByShardKeyOrRoundRobin) {
    ASSERT_OK(b_->CreateStream("/c1/s", 3));
    std::vector<RecordInput> recs;
    recs.push_back({.data = "explicit", .shard = 2});
    recs.push_back({.data = "k1", .partition_key = "user-7"});
    recs.push_back({.data = "k2", .partition_key = "user-7"});
    recs.push_back({.data = "bad", .shard = 3});
    recs.push_back({.data = std::string(kMaxRecordBytes + 1, 'x')});
    for (int i = 0; i < 6; ++i) {
        recs.push_back({.data = absl::StrCat("rr", i)});
    }
    auto r = b_->PutRecords("/c1/s", recs);
    ASSERT_OK(r);
    ASSERT_EQ(r->size(), recs.size());
    EXPECT_TRUE((*r)[0].status.ok());
    EXPECT_EQ((*r)[0].shard, 2u);
    EXPECT_EQ((*r)[1].shard, (*r)[2].shard);
    EXPECT_EQ((*r)[1].shard, ShardForPartitionKey("user-7", 3));
    EXPECT_EQ((*r)[3].status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ((*r)[4].status.code(), absl::StatusCode::kInvalidArgument);
    std::set<uint32_t> rr;
    for (size_t i = 5; i < recs.size(); ++i) {
        ASSERT_TRUE((*r)[i].status.ok());
        rr.insert((*r)[i].shard);
    }
    EXPECT_EQ(rr.size(), 3u) << "round robin reaches every shard";
    auto got = b_->GetRecords("/c1/s", {(*r)[1].shard, 1});
    ASSERT_OK(got);
    std::vector<std::string> keyed;
    for (const auto& rec : got->records) {
        if (rec.partition_key == "user-7") {
            keyed.push_back(rec.data);
        }
    }
    EXPECT_THAT(keyed, ElementsAre("k1", "k2")) << "one partition key keeps its order";
    EXPECT_CODE(b_->PutRecords("/c1/none", {{.data = "x"}}), kNotFound);
}

TEST_P(BackendConformance, SequenceNumbersAreDensePerShardUnderConcurrency) {
    ASSERT_OK(b_->CreateStream("/c1/dense", 2));
    constexpr int kThreads = 6, kBatches = 30, kPerBatch = 5;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int b = 0; b < kBatches; ++b) {
                std::vector<RecordInput> recs;
                for (int i = 0; i < kPerBatch; ++i) {
                    recs.push_back({.data = absl::StrCat(t, ":", b, ":", i), .shard = static_cast<uint32_t>(i % 2)});
                }
                auto r = b_->PutRecords("/c1/dense", std::move(recs));
                ASSERT_TRUE(r.ok());
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    size_t total = 0;
    for (uint32_t shard = 0; shard < 2; ++shard) {
        uint64_t expect = 1;
        StreamLocation loc{shard, 1};
        while (true) {
            auto page = b_->GetRecords("/c1/dense", loc, 37);
            ASSERT_OK(page);
            for (const auto& rec : page->records) {
                ASSERT_EQ(rec.sequence, expect++) << "shard " << shard;
                EXPECT_EQ(rec.shard, shard);
            }
            total += page->records.size();
            if (page->records.empty()) {
                EXPECT_EQ(page->behind, 0u);
                break;
            }
            loc = page->next;
        }
        auto st = b_->Stat(absl::StrCat("/c1/dense/", shard));
        ASSERT_OK(st);
        EXPECT_EQ(st->last_sequence, expect - 1);
    }
    EXPECT_EQ(total, size_t{kThreads * kBatches * kPerBatch});
}

TEST_P(BackendConformance, SeekFindsEarliestLatestSequenceAndTime) {
    ASSERT_OK(b_->CreateStream("/c1/seek", 1));
    std::vector<Timestamp> arrivals;
    for (int i = 0; i < 10; ++i) {
        ASSERT_OK(b_->PutRecords("/c1/seek", {{.data = absl::StrCat("r", i)}}));
        auto page = b_->GetRecords("/c1/seek", {0, static_cast<uint64_t>(i + 1)}, 1);
        ASSERT_OK(page);
        ASSERT_EQ(page->records.size(), 1u);
        arrivals.push_back(page->records[0].arrival);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto earliest = b_->Seek({.path = P("/c1/seek"), .shard = 0, .type = SeekType::kEarliest});
    ASSERT_OK(earliest);
    EXPECT_EQ(earliest->sequence, 1u);
    auto latest = b_->Seek({.path = P("/c1/seek"), .shard = 0, .type = SeekType::kLatest});
    ASSERT_OK(latest);
    EXPECT_EQ(latest->sequence, 11u);
    EXPECT_TRUE(b_->GetRecords("/c1/seek", *latest)->records.empty());
    auto by_seq = b_->Seek({.path = P("/c1/seek"), .shard = 0, .type = SeekType::kSequence, .sequence = 4});
    ASSERT_OK(by_seq);
    EXPECT_EQ(b_->GetRecords("/c1/seek", *by_seq, 1)->records[0].data, "r3");
    auto by_time = b_->Seek({.path = P("/c1/seek"), .shard = 0, .type = SeekType::kTime, .time = arrivals[6]});
    ASSERT_OK(by_time);
    EXPECT_EQ(by_time->sequence, 7u);
    auto future = b_->Seek({.path = P("/c1/seek"), .shard = 0, .type = SeekType::kTime,
                            .time = Timestamp{arrivals.back().secs + 100, 0}});
    EXPECT_EQ(future->sequence, 11u);
    EXPECT_CODE(b_->Seek({.path = P("/c1/seek"), .shard = 1}), kInvalidArgument);
    EXPECT_CODE(b_->Seek({.path = P("/c1/seek"), .type = SeekType::kSequence, .sequence = 99}), kInvalidArgument);
    // After LATEST, only new records are read.
    ASSERT_OK(b_->PutRecords("/c1/seek", {{.data = "new"}}));
    auto fresh = b_->GetRecords("/c1/seek", *latest);
    ASSERT_OK(fresh);
    ASSERT_EQ(fresh->records.size(), 1u);
    EXPECT_EQ(fresh->records[0].data, "new");
}

TEST_P(BackendConformance, GetRecordsHonoursLimitBytesAndReportsLag) {
    ASSERT_OK(b_->CreateStream("/c1/lag", 1));
    std::vector<RecordInput> recs;
    for (int i = 0; i < 20; ++i) {
        recs.push_back({.data = std::string(100, static_cast<char>('a' + i)), .partition_key = "pk",
                        .client_info = absl::StrCat("ci", i)});
    }
    ASSERT_OK(b_->PutRecords("/c1/lag", recs));
    auto page = b_->GetRecords("/c1/lag", {0, 1}, 5);
    ASSERT_OK(page);
    ASSERT_EQ(page->records.size(), 5u);
    EXPECT_EQ(page->next.sequence, 6u);
    EXPECT_EQ(page->behind, 15u);
    EXPECT_EQ(page->records[2].client_info, "ci2");
    EXPECT_EQ(page->records[2].partition_key, "pk");
    auto capped = b_->GetRecords("/c1/lag", page->next, 100, 250);
    ASSERT_OK(capped);
    EXPECT_EQ(capped->records.size(), 2u);
    auto tiny = b_->GetRecords("/c1/lag", {0, 1}, 100, 1);
    ASSERT_OK(tiny);
    EXPECT_EQ(tiny->records.size(), 1u) << "a page holds at least one record";
    EXPECT_CODE(b_->GetRecords("/c1/lag", {5, 1}), kInvalidArgument);
}

TEST_P(BackendConformance, ExpiredRecordsAreUnreadable) {
    ASSERT_OK(b_->CreateStream("/c1/short", 1, /*retention_secs=*/1));
    ASSERT_OK(b_->PutRecords("/c1/short", {{.data = "old1"}, {.data = "old2"}}));
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    ASSERT_OK(b_->PutRecords("/c1/short", {{.data = "new"}}));
    auto all = b_->GetRecords("/c1/short", {0, 1});
    ASSERT_OK(all);
    ASSERT_EQ(all->records.size(), 1u);
    EXPECT_EQ(all->records[0].data, "new");
    EXPECT_EQ(all->records[0].sequence, 3u);
    auto earliest = b_->Seek({.path = P("/c1/short"), .type = SeekType::kEarliest});
    ASSERT_OK(earliest);
    EXPECT_EQ(earliest->sequence, 3u);
}

TEST_P(BackendConformance, SyncSucceeds) { ASSERT_OK(b_->Sync()); }

}  // namespace
}  // namespace zerohop::testing

// What the embedded store does when its files fail under it: every fault is a clear error,
// nothing that was not durable is acknowledged, nothing that was is corrupted, and the store
// takes writes again once the fault clears. And what a power cut at any point leaves: every
// acknowledged write, exactly. The faults come from FaultyFiles (tests/faults), a wrapper of
// RocksDB's FileSystem and of the store's object-file calls.

#include <dirent.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "conformance/sync_backend.h"
#include "test_data.h"
#include "embedded/embedded_backend.h"
#include "faults/faulty_files.h"

namespace zerohop {
namespace {

using testing::Pattern;
using testing::SyncBackend;
using testing::TempDir;
using Call = FaultyFiles::Call;
using Kind = FaultyFiles::Kind;



// Opens the store in `dir`, on `files` when given (else on the real file system).
absl::StatusOr<std::unique_ptr<EmbeddedBackend>> OpenStore(const std::string& dir, FaultyFiles* files,
                                                           bool sync_writes) {
    EmbeddedOptions opts;
    opts.dir = dir;
    opts.containers = {"c1"};
    opts.sync_writes = sync_writes;
    opts.io_threads = 0;
    opts.maintenance_interval = absl::ZeroDuration();
    if (files != nullptr) {
        opts.file_system = files->file_system();
        opts.object_file_calls = files->object_file_calls();
    }
    return EmbeddedBackend::Open(std::move(opts));
}

size_t ObjectFiles(const std::string& dir) {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir + "/objects")) {
        n += e.is_regular_file() ? 1 : 0;
    }
    return n;
}

// ---- the expected namespace -------------------------------------------------------------

// What each path should hold: an object's bytes ("O" + bytes) or an item's counter ("I" + n);
// absent paths are not in the map.
using Namespace = std::map<std::string, std::string>;

constexpr int kKeys = 4;

// A mixed write load, deterministic for a seed, with what each step should leave. Steps stay
// inside what a failed step may leave half done on a local file system: in-place writes
// only within an object's size (a failed one may have changed those bytes and nothing else).
class Load {
public:
    explicit Load(uint64_t seed) : rng_(seed) {}

    // Applies the next step to `s` and to `*after` (a copy of the expected namespace).
    absl::Status Step(SyncBackend& s, Namespace* after) {
        ++step_;
        int k = static_cast<int>(rng_() % kKeys);
        switch (rng_() % 10) {
            case 0: {
                std::string path = absl::StrCat("/c1/item", k);
                (*after)[path] = absl::StrCat("I", step_);
                return s.PutItem(path, {{"n", Value::Int64(step_)}}).status();
            }
            case 1: {
                std::string& v = (*after)["/c1/counter"];
                v = absl::StrCat("I", v.empty() ? 1 : std::stoll(v.substr(1)) + 1);
                return s.UpdateItem("/c1/counter", "n = if_not_exists(n, 0) + 1").status();
            }
            case 2: {
                std::string path = absl::StrCat("/c1/small", k);
                std::string data = Pattern(100 + rng_() % 30000, step_);
                (*after)[path] = "O" + data;
                return s.Put(path, data).status();
            }
            case 3: {  // beyond inline_max_bytes: an object file
                std::string path = absl::StrCat("/c1/big", k);
                std::string data = Pattern(70000 + rng_() % 200000, step_);
                (*after)[path] = "O" + data;
                return s.Put(path, data).status();
            }
            case 4: {  // grows past inline into a file
                std::string data = Pattern(4000, step_);
                auto it = after->find("/c1/log");
                if (it == after->end()) {
                    (*after)["/c1/log"] = "O" + data;
                    return s.Put("/c1/log", data).status();
                }
                it->second += data;
                return s.Append("/c1/log", data).status();
            }
            case 5: {
                std::string path = absl::StrCat("/c1/big", k);
                auto it = after->find(path);
                if (it == after->end() || it->second.size() < 6000) {
                    return absl::OkStatus();
                }
                uint64_t off = rng_() % (it->second.size() - 1 - 5000);
                std::string data = Pattern(5000, step_);
                it->second.replace(1 + off, data.size(), data);
                return s.Write(path, off, data).status();
            }
            case 6: {
                std::string path = absl::StrCat("/c1/big", k);
                auto it = after->find(path);
                if (it == after->end()) {
                    return absl::OkStatus();
                }
                uint64_t size = (it->second.size() - 1) / 2;
                it->second.resize(1 + size);
                return s.Truncate(path, size).status();
            }
            case 7: {
                std::string from = absl::StrCat("/c1/small", k);
                std::string to = absl::StrCat("/c1/small", (k + 1) % kKeys);
                auto it = after->find(from);
                if (it == after->end() || from == to) {
                    return absl::OkStatus();
                }
                (*after)[to] = it->second;
                after->erase(from);
                return s.Rename(from, to);
            }
            case 8: {
                std::string path = absl::StrCat("/c1/item", k);
                if (!after->count(path)) {
                    return absl::OkStatus();
                }
                after->erase(path);
                return s.Delete(path);
            }
            default:  // settle the memtables into table files: flushes, manifests, directories
                return static_cast<EmbeddedBackend*>(s.backend())->Flush();
        }
    }

private:
    std::mt19937_64 rng_;
    int64_t step_ = 0;
};

// What `path` holds now, in the Namespace encoding; nullopt when absent.
std::optional<std::string> Read(SyncBackend& s, const std::string& path) {
    bool item = path.find("/item") != std::string::npos || path.find("/counter") != std::string::npos;
    if (item) {
        auto got = s.GetItem(path);
        if (absl::IsNotFound(got.status())) {
            return std::nullopt;
        }
        EXPECT_TRUE(got.ok()) << path << ": " << got.status();
        if (!got.ok() || !got->attributes.count("n")) {
            return "(unreadable)";
        }
        return absl::StrCat("I", got->attributes.at("n").as_int64());
    }
    auto got = s.Get(path);
    if (absl::IsNotFound(got.status())) {
        return std::nullopt;
    }
    EXPECT_TRUE(got.ok()) << path << ": " << got.status();
    return got.ok() ? "O" + *got : "(unreadable)";
}

std::string Describe(const std::optional<std::string>& v) {
    if (!v) {
        return "absent";
    }
    return absl::StrCat(v->substr(0, 1), v->size() > 24 ? absl::StrCat(v->size() - 1, " bytes") : v->substr(1));
}

// Every path of `acked` and `maybe` holds what `acked` says or what `maybe` says (the
// namespace with one step of unknown outcome applied), and nothing else is there.
void ExpectHolds(SyncBackend& s, const Namespace& acked, const Namespace& maybe, const std::string& context) {
    std::set<std::string> paths;
    for (const auto& [p, v] : acked) paths.insert(p);
    for (const auto& [p, v] : maybe) paths.insert(p);
    for (const char* name : {"item", "small", "big"}) {
        for (int k = 0; k < kKeys; ++k) paths.insert(absl::StrCat("/c1/", name, k));
    }
    paths.insert("/c1/log");
    paths.insert("/c1/counter");
    for (const std::string& p : paths) {
        std::optional<std::string> got = Read(s, p);
        auto a = acked.find(p);
        auto m = maybe.find(p);
        std::optional<std::string> want_a = a == acked.end() ? std::nullopt : std::optional(a->second);
        std::optional<std::string> want_m = m == maybe.end() ? std::nullopt : std::optional(m->second);
        EXPECT_TRUE(got == want_a || got == want_m)
            << context << ": " << p << " holds " << Describe(got) << ", acknowledged " << Describe(want_a)
            << (want_m != want_a ? ", or after the unknown step " + Describe(want_m) : "");
    }
}

// ---- power cuts -------------------------------------------------------------------------

// Runs the load on a store in `dir` on `files` until a step fails or `steps` are done.
// Returns the step's failure (OK when none failed).
absl::Status RunUntilFailure(SyncBackend& s, Load& load, int steps, Namespace* acked, Namespace* maybe) {
    for (int i = 0; i < steps; ++i) {
        Namespace after = *acked;
        absl::Status st = load.Step(s, &after);
        if (!st.ok()) {
            *maybe = std::move(after);
            return st;
        }
        *acked = std::move(after);
    }
    *maybe = *acked;
    return absl::OkStatus();
}

constexpr int kSteps = 80;

TEST(EmbeddedPowerCut, EveryAcknowledgedWriteSurvivesAPowerCutAtAnyPoint) {
    // How many changing file calls the whole load makes, so that cuts land all over it.
    int total = 0;
    {
        TempDir dir("zh-faults");
        FaultyFiles files;
        auto b = OpenStore(dir.path(), &files, /*sync_writes=*/true);
        ASSERT_TRUE(b.ok()) << b.status();
        SyncBackend s(b->get());
        Load load(7);
        Namespace acked, maybe;
        absl::Status st = RunUntilFailure(s, load, kSteps, &acked, &maybe);
        ASSERT_TRUE(st.ok()) << st;
        total = files.calls();
    }
    ASSERT_GT(total, kSteps);
    constexpr int kCuts = 40;
    int lost_files = 0;
    for (int cut = 0; cut < kCuts; ++cut) {
        TempDir dir("zh-faults");
        Namespace acked, maybe;
        int after = 1 + static_cast<int>((static_cast<int64_t>(total) * cut) / kCuts);
        std::string lost;
        {
            FaultyFiles files;
            auto b = OpenStore(dir.path(), &files, /*sync_writes=*/true);
            ASSERT_TRUE(b.ok()) << b.status();
            SyncBackend s(b->get());
            Load load(7);
            files.CutPowerAfter(after - files.calls());
            absl::Status st = RunUntilFailure(s, load, kSteps, &acked, &maybe);
            if (files.power_cut()) {
                EXPECT_FALSE(st.ok()) << "cut after call " << after << ": the load went on";
            }
            b->reset();  // the machine goes down with the store open
            lost = files.RestorePower(cut);
            lost_files += lost.empty() ? 0 : 1;
        }
        auto b = OpenStore(dir.path(), nullptr, false);
        ASSERT_TRUE(b.ok()) << "cut after call " << after << ": the store does not open: " << b.status()
                            << "\nlost:\n" << lost;
        SyncBackend s(b->get());
        ExpectHolds(s, acked, maybe, absl::StrCat("cut after call ", after, " of ", total, "; lost:\n", lost));
        // Nothing half-written stays behind: object files are exactly those entries name.
        size_t files_named = 0;
        for (const auto& [p, v] : acked) {
            auto info = s.Stat(p);
            files_named += info.ok() && info->size > 64 * 1024 ? 1 : 0;
        }
        EXPECT_LE(ObjectFiles(dir.path()), files_named + 1) << "cut after call " << after;
        if (HasFailure()) {
            break;
        }
    }
    EXPECT_GE(lost_files, 2) << "the cuts lost no unsynced data: the test would not see a missing sync";
}

TEST(EmbeddedPowerCut, WithoutSyncWritesSyncMakesWhatCameBeforeSurvive) {
    TempDir dir("zh-faults");
    std::map<std::string, std::string> before, after;
    {
        FaultyFiles files;
        auto b = OpenStore(dir.path(), &files, /*sync_writes=*/false);
        ASSERT_TRUE(b.ok()) << b.status();
        SyncBackend s(b->get());
        for (int i = 0; i < 20; ++i) {
            std::string path = absl::StrCat("/c1/before", i);
            before[path] = Pattern(i % 2 ? 100000 : 1000, i);
            ASSERT_TRUE(s.Put(path, before[path]).ok());
        }
        ASSERT_TRUE(s.Sync().ok());
        for (int i = 0; i < 20; ++i) {
            std::string path = absl::StrCat("/c1/after", i);
            after[path] = Pattern(i % 2 ? 100000 : 1000, 100 + i);
            ASSERT_TRUE(s.Put(path, after[path]).ok());
        }
        files.CutPowerAfter(0);
        b->reset();
        files.RestorePower(1);
    }
    auto b = OpenStore(dir.path(), nullptr, false);
    ASSERT_TRUE(b.ok()) << b.status();
    SyncBackend s(b->get());
    for (const auto& [path, data] : before) {
        auto got = s.Get(path);
        ASSERT_TRUE(got.ok()) << path << " was synced and is gone: " << got.status();
        EXPECT_TRUE(*got == data) << path;
    }
    for (const auto& [path, data] : after) {
        auto got = s.Get(path);
        // Lost, whole, or (its object file lost while the log kept its entry) a clear error;
        // never other bytes.
        EXPECT_TRUE(absl::IsNotFound(got.status()) || absl::IsDataLoss(got.status()) || (got.ok() && *got == data))
            << path << " (unsynced) is neither absent nor whole: " << got.status();
    }
}

// ---- failing calls ----------------------------------------------------------------------

struct FaultCase {
    const char* name;
    Call call;
    Kind kind;
    int error;
    bool sync_writes;
    enum Op { kPutItem, kPutBig, kFlush, kShrinkBig } op;
};

class EmbeddedFault : public ::testing::TestWithParam<FaultCase> {};

absl::Status Attempt(SyncBackend& s, FaultCase::Op op, const std::string& tag) {
    switch (op) {
        case FaultCase::kPutItem:
            return s.PutItem("/c1/failed-" + tag, {{"n", Value::Int64(1)}}).status();
        case FaultCase::kPutBig:
            return s.Put("/c1/failed-" + tag, Pattern(300000, 9)).status();
        case FaultCase::kFlush:
            return static_cast<EmbeddedBackend*>(s.backend())->Flush();
        case FaultCase::kShrinkBig:  // a file-backed object cut short: its commit must fail first
            return s.Truncate("/c1/big0", 1000).status();
    }
    return absl::OkStatus();
}

TEST_P(EmbeddedFault, IsAClearErrorAcknowledgesNothingAndClears) {
    const FaultCase& c = GetParam();
    TempDir dir("zh-faults");
    Namespace acked;
    FaultyFiles files;
    {
        auto b = OpenStore(dir.path(), &files, c.sync_writes);
        ASSERT_TRUE(b.ok()) << b.status();
        SyncBackend s(b->get());
        auto put = [&](const std::string& path, std::string data) {
            absl::Status st = s.Put(path, data).status();
            if (st.ok()) {
                acked[path] = "O" + data;
            }
            return st;
        };
        ASSERT_TRUE(put("/c1/small0", Pattern(1000, 1)).ok());
        ASSERT_TRUE(put("/c1/big0", Pattern(200000, 2)).ok());
        ASSERT_TRUE(s.PutItem("/c1/item0", {{"n", Value::Int64(7)}}).ok());  // in the memtable
        acked["/c1/item0"] = "I7";
        size_t files_before = ObjectFiles(dir.path());

        files.Fail(c.call, c.kind, c.error);
        absl::Status failed = Attempt(s, c.op, "1");
        ASSERT_FALSE(failed.ok()) << "the fault was not reported";
        EXPECT_GT(files.failed(), 0);
        if (c.error == ENOSPC) {
            EXPECT_EQ(failed.code(), absl::StatusCode::kResourceExhausted) << failed;
            EXPECT_NE(failed.message().find("disk full"), std::string::npos) << failed;
        } else {
            EXPECT_NE(failed.message().find("rror"), std::string::npos) << "not a clear error: " << failed;
        }
        // A second attempt while the fault lasts fails too, and reads go on.
        EXPECT_FALSE(Attempt(s, c.op, "2").ok());
        ExpectHolds(s, acked, acked, "during the fault");
        EXPECT_EQ(ObjectFiles(dir.path()), files_before) << "a failed put left its object file";

        files.Clear();
        absl::Status again;
        for (int i = 0; i < 100; ++i) {
            again = put("/c1/small1", Pattern(2000, 3 + i));
            if (again.ok()) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ASSERT_TRUE(again.ok()) << "the store takes no writes after the fault cleared: " << again;
        ASSERT_TRUE(put("/c1/big1", Pattern(150000, 4)).ok());
        ASSERT_TRUE(static_cast<EmbeddedBackend*>(s.backend())->Flush().ok());
    }
    auto b = OpenStore(dir.path(), nullptr, false);
    ASSERT_TRUE(b.ok()) << b.status();
    SyncBackend s(b->get());
    ExpectHolds(s, acked, acked, "reopened");
    // A write whose sync failed has an unknown outcome: its bytes may have reached the disk.
    if ((c.op == FaultCase::kPutItem || c.op == FaultCase::kPutBig) && c.call != Call::kSync) {
        for (const char* tag : {"1", "2"}) {
            EXPECT_TRUE(absl::IsNotFound(s.Stat(absl::StrCat("/c1/failed-", tag)).status()))
                << "a write that failed is there after all";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Faults, EmbeddedFault,
    ::testing::Values(FaultCase{"WalWriteEio", Call::kWrite, Kind::kWal, EIO, false, FaultCase::kPutItem},
                      FaultCase{"WalWriteEnospc", Call::kWrite, Kind::kWal, ENOSPC, false, FaultCase::kPutItem},
                      FaultCase{"WalSyncEio", Call::kSync, Kind::kWal, EIO, true, FaultCase::kPutItem},
                      FaultCase{"ObjectWriteEnospc", Call::kWrite, Kind::kObject, ENOSPC, false, FaultCase::kPutBig},
                      FaultCase{"ObjectWriteEio", Call::kWrite, Kind::kObject, EIO, false, FaultCase::kPutBig},
                      FaultCase{"ObjectCreateEio", Call::kCreate, Kind::kObject, EIO, false, FaultCase::kPutBig},
                      FaultCase{"ObjectSyncEio", Call::kSync, Kind::kObject, EIO, true, FaultCase::kPutBig},
                      FaultCase{"TableWriteEio", Call::kWrite, Kind::kTable, EIO, false, FaultCase::kFlush},
                      FaultCase{"TableWriteEnospc", Call::kWrite, Kind::kTable, ENOSPC, false, FaultCase::kFlush},
                      FaultCase{"ManifestWriteEio", Call::kWrite, Kind::kManifest, EIO, false, FaultCase::kFlush},
                      FaultCase{"ManifestSyncEio", Call::kSync, Kind::kManifest, EIO, false, FaultCase::kFlush},
                      FaultCase{"ShrinkWithLogWriteEio", Call::kWrite, Kind::kWal, EIO, false, FaultCase::kShrinkBig}),
    [](const ::testing::TestParamInfo<FaultCase>& info) { return std::string(info.param.name); });

// A disk that refuses every write, long enough that the store cannot even reopen: reads are
// served from a read-only open meanwhile, writes say why they fail, and the store takes
// writes again by itself once the disk does.
TEST(EmbeddedDiskGone, ReadsGoOnWhileTheDiskRefusesWritesAndWritesComeBackWithIt) {
    TempDir dir("zh-faults");
    FaultyFiles files;
    auto b = OpenStore(dir.path(), &files, /*sync_writes=*/true);
    ASSERT_TRUE(b.ok()) << b.status();
    SyncBackend s(b->get());
    Namespace acked;
    for (int i = 0; i < kKeys; ++i) {
        ASSERT_TRUE(s.PutItem(absl::StrCat("/c1/item", i), {{"n", Value::Int64(i)}}).ok());
        acked[absl::StrCat("/c1/item", i)] = absl::StrCat("I", i);
    }
    ASSERT_TRUE(s.Put("/c1/big0", Pattern(100000, 1)).ok());
    acked["/c1/big0"] = "O" + Pattern(100000, 1);
    for (Call call : {Call::kWrite, Call::kSync, Call::kCreate, Call::kRename}) {
        files.Fail(call, Kind::kAny, EIO);
    }
    absl::Status last;
    for (int i = 0; i < 5; ++i) {
        last = s.PutItem("/c1/refused", {{"n", Value::Int64(1)}}).status();
        EXPECT_FALSE(last.ok());
        ExpectHolds(s, acked, acked, absl::StrCat("while the disk refuses writes, attempt ", i));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable) << last;
    EXPECT_NE(last.message().find("reads only"), std::string::npos) << last;
    files.Clear();
    absl::Status again = absl::UnknownError("not tried");
    for (int i = 0; i < 200 && !again.ok(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        again = s.PutItem("/c1/item0", {{"n", Value::Int64(100)}}).status();
    }
    ASSERT_TRUE(again.ok()) << "no writes once the disk took them again: " << again;
    acked["/c1/item0"] = "I100";
    ExpectHolds(s, acked, acked, "after the disk came back");
    EXPECT_TRUE(absl::IsNotFound(s.Stat("/c1/refused").status()));
}

TEST(EmbeddedTornWrite, ATornLogRecordFailsItsWriteAndLosesNoOther) {
    TempDir dir("zh-faults");
    Namespace acked;
    {
        FaultyFiles files;
        auto b = OpenStore(dir.path(), &files, /*sync_writes=*/true);
        ASSERT_TRUE(b.ok()) << b.status();
        SyncBackend s(b->get());
        for (int i = 0; i < 5; ++i) {
            ASSERT_TRUE(s.PutItem(absl::StrCat("/c1/item", i), {{"n", Value::Int64(i)}}).ok());
            acked[absl::StrCat("/c1/item", i)] = absl::StrCat("I", i);
        }
        files.TearNextWrite(Kind::kWal);
        ASSERT_FALSE(s.PutItem("/c1/torn", {{"n", Value::Int64(99)}}).ok());
        // What reached the log is unknown: RocksDB cannot resume, and the store reopens from
        // its log (dropping the torn record) before it takes the next write.
        absl::Status again;
        for (int i = 0; i < 100; ++i) {
            again = s.PutItem("/c1/item0", {{"n", Value::Int64(100)}}).status();
            if (again.ok()) {
                break;
            }
            EXPECT_EQ(again.code(), absl::StatusCode::kUnavailable) << again;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ASSERT_TRUE(again.ok()) << again;
        acked["/c1/item0"] = "I100";
        ExpectHolds(s, acked, acked, "reopened in place after the torn write");
        EXPECT_TRUE(absl::IsNotFound(s.Stat("/c1/torn").status()));
        for (int i = 5; i < 10; ++i) {
            ASSERT_TRUE(s.PutItem(absl::StrCat("/c1/item", i % kKeys), {{"n", Value::Int64(i)}}).ok());
            acked[absl::StrCat("/c1/item", i % kKeys)] = absl::StrCat("I", i);
        }
    }
    // Reopened once more (a restart): the torn record stays dropped, the writes after it are there.
    auto b = OpenStore(dir.path(), nullptr, false);
    ASSERT_TRUE(b.ok()) << b.status();
    SyncBackend s(b->get());
    ExpectHolds(s, acked, acked, "reopened after a torn log write");
    EXPECT_TRUE(absl::IsNotFound(s.Stat("/c1/torn").status()));
}

TEST(EmbeddedOpenFault, AStoreThatCannotOpenSaysWhyAndOpensOnceTheFaultClears) {
    TempDir dir("zh-faults");
    {
        auto b = OpenStore(dir.path(), nullptr, false);
        ASSERT_TRUE(b.ok()) << b.status();
        SyncBackend s(b->get());
        ASSERT_TRUE(s.PutItem("/c1/item-kept", {{"n", Value::Int64(1)}}).ok());
    }
    FaultyFiles files;
    files.Fail(Call::kRename, Kind::kAny, EIO);
    auto failed = OpenStore(dir.path(), &files, false);
    ASSERT_FALSE(failed.ok());
    EXPECT_NE(failed.status().message().find(dir.path()), std::string::npos) << failed.status();
    files.Clear();
    auto b = OpenStore(dir.path(), &files, false);
    ASSERT_TRUE(b.ok()) << b.status();
    SyncBackend s(b->get());
    EXPECT_EQ(Read(s, "/c1/item-kept"), "I1");
}

}  // namespace
}  // namespace zerohop

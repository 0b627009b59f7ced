// What the embedded store promises beyond the shared contract: crash safety, full
// disks, huge objects, space reclamation, cleanup of half-written files, corrupt records.

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "conformance/sync_backend.h"
#include "test_data.h"
#include "embedded/embedded_backend.h"
#include "embedded/internal/records.h"
#include "rocksdb/db.h"

namespace zerohop {
namespace {

using testing::P;
using testing::Pattern;
using testing::SyncBackend;
using testing::TempDir;


std::unique_ptr<EmbeddedBackend> OpenOrDie(const std::string& dir, EmbeddedOptions opts = {}) {
    opts.dir = dir;
    if (opts.containers.empty()) {
        opts.containers = {"c1"};
    }
    auto b = EmbeddedBackend::Open(opts);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
}


size_t RssBytes() {
    std::ifstream f("/proc/self/statm");
    size_t pages = 0, rss = 0;
    f >> pages >> rss;
    return rss * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// ---- kill -9 ----------------------------------------------------------------------------

constexpr char kCrashWriterFlag[] = "--zh-crash-writer";
constexpr size_t kLogRecord = 16;
constexpr size_t kBigBytes = 100 * 1024;

std::string LogRecord(int round, int i) {
    std::string r = absl::StrCat(round, ":", i, ";");
    r.resize(kLogRecord, '.');
    return r;
}

// The child: writes forever, announcing each acknowledged write on stdout.
int RunCrashWriter(const std::string& dir, int round) {
    auto b = OpenOrDie(dir);
    if (!b) {
        return 2;
    }
    SyncBackend s(b.get());
    (void)s.Mkdir("/c1/items");
    (void)s.Mkdir("/c1/big");
    if (!s.Stat("/c1/log").ok() && !s.Put("/c1/log", "").ok()) {
        return 3;
    }
    (void)s.CreateStream("/c1/s", 1);
    auto say = [](const std::string& line) {
        std::string l = line + "\n";
        return ::write(1, l.data(), l.size()) == static_cast<ssize_t>(l.size());
    };
    say("ready");
    for (int i = 0;; ++i) {
        std::string key = absl::StrCat("r", round, "-", i);
        if (!s.PutItem("/c1/items/" + key, {{"v", Value::Int64(i)}, {"round", Value::Int64(round)}}).ok() ||
            !say("item " + key + " " + std::to_string(i))) {
            return 4;
        }
        auto appended = s.Append("/c1/log", LogRecord(round, i));
        if (!appended.ok() || !say(absl::StrCat("append ", appended->size))) {
            return 5;
        }
        if (i % 8 == 0) {
            if (!s.Put("/c1/big/" + key, Pattern(kBigBytes, round * 100000 + i)).ok() ||
                !say(absl::StrCat("big ", key, " ", round * 100000 + i))) {
                return 6;
            }
        }
        auto rec = s.PutRecords("/c1/s", {{.data = key}});
        if (!rec.ok() || !(*rec)[0].status.ok() || !say(absl::StrCat("rec ", (*rec)[0].sequence, " ", key))) {
            return 7;
        }
    }
}

TEST(EmbeddedCrash, KillNineLosesNoAcknowledgedWrite) {
    TempDir dir("zh-store");
    std::mt19937 rng(12345);
    std::map<std::string, int64_t> items;      // key -> v
    std::map<std::string, uint64_t> bigs;      // key -> seed
    std::map<uint64_t, std::string> records;   // seq -> data
    std::vector<std::string> log;              // acknowledged log records, in order
    uint64_t acked_log_size = 0;
    constexpr int kRounds = 6;
    for (int round = 0; round < kRounds; ++round) {
        int out[2];
        ASSERT_EQ(pipe(out), 0);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            dup2(out[1], 1);
            close(out[0]);
            close(out[1]);
            std::string r = std::to_string(round);
            execl("/proc/self/exe", "embedded_store_test", kCrashWriterFlag, dir.path().c_str(), r.c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        close(out[1]);
        FILE* f = fdopen(out[0], "r");
        ASSERT_NE(f, nullptr);
        char line[512];
        int last_item = -1;
        ASSERT_NE(fgets(line, sizeof line, f), nullptr) << "writer died before it was ready";
        ASSERT_STREQ(line, "ready\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 400)(rng)));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited by itself with " << WEXITSTATUS(status);
        // Everything the writer announced before it died was acknowledged.
        while (fgets(line, sizeof line, f) != nullptr) {
            std::string l(line);
            if (l.empty() || l.back() != '\n') {
                break;  // a torn announcement: that write was not seen as acknowledged
            }
            std::vector<std::string> w = absl::StrSplit(l.substr(0, l.size() - 1), ' ');
            if (w[0] == "item") {
                int64_t v;
                ASSERT_TRUE(absl::SimpleAtoi(w[2], &v));
                items[w[1]] = v;
                last_item = static_cast<int>(v);
            } else if (w[0] == "append") {
                ASSERT_TRUE(absl::SimpleAtoi(w[1], &acked_log_size));
                log.push_back(LogRecord(round, last_item));
            } else if (w[0] == "big") {
                uint64_t seed;
                ASSERT_TRUE(absl::SimpleAtoi(w[2], &seed));
                bigs[w[1]] = seed;
            } else if (w[0] == "rec") {
                uint64_t seq;
                ASSERT_TRUE(absl::SimpleAtoi(w[1], &seq));
                records[seq] = w[2];
            }
        }
        fclose(f);

        auto b = OpenOrDie(dir.path());
        ASSERT_NE(b, nullptr);
        SyncBackend s(b.get());
        for (const auto& [key, v] : items) {
            auto it = s.GetItem("/c1/items/" + key);
            ASSERT_TRUE(it.ok()) << "round " << round << ": lost item " << key << ": " << it.status();
            EXPECT_EQ(it->attributes.at("v"), Value::Int64(v));
        }
        for (const auto& [key, seed] : bigs) {
            auto got = s.Get("/c1/big/" + key);
            ASSERT_TRUE(got.ok()) << "lost object " << key;
            EXPECT_TRUE(*got == Pattern(kBigBytes, seed)) << "object " << key << " differs";
        }
        auto logged = s.Get("/c1/log");
        ASSERT_TRUE(logged.ok());
        ASSERT_GE(logged->size(), acked_log_size);
        // Each acknowledged append is where it was acknowledged; an unacknowledged tail may follow.
        size_t checked = 0;
        for (size_t off = 0; off + kLogRecord <= acked_log_size; off += kLogRecord) {
            std::string rec = logged->substr(off, kLogRecord);
            EXPECT_EQ(rec.find(':') != std::string::npos, true) << "garbage at " << off;
            ++checked;
        }
        EXPECT_EQ(checked * kLogRecord, acked_log_size);
        // Unacknowledged appends of a killed writer may sit after the acknowledged ones, and a
        // later round appends after them: compare acknowledged records as a subsequence.
        size_t pos = 0;
        for (const std::string& want : log) {
            size_t at = logged->find(want, pos);
            ASSERT_NE(at, std::string::npos) << "acknowledged append " << want << " lost";
            pos = at + kLogRecord;
        }
        for (const auto& [seq, data] : records) {
            auto page = s.GetRecords("/c1/s", {0, seq}, 1);
            ASSERT_TRUE(page.ok());
            ASSERT_EQ(page->records.size(), 1u) << "lost record " << seq;
            EXPECT_EQ(page->records[0].data, data);
        }
        // Writes go on where they stopped: sequence numbers stay dense.
        auto next = s.PutRecords("/c1/s", {{.data = "after-crash"}});
        ASSERT_TRUE(next.ok());
        uint64_t last_acked = records.empty() ? 0 : records.rbegin()->first;
        EXPECT_GE((*next)[0].sequence, last_acked + 1);
        records[(*next)[0].sequence] = "after-crash";
        auto all = s.GetRecords("/c1/s", {0, 1}, 10000);
        ASSERT_TRUE(all.ok());
        for (size_t k = 0; k < all->records.size(); ++k) {
            ASSERT_EQ(all->records[k].sequence, k + 1) << "hole in the shard after a crash";
        }
    }
    EXPECT_GT(items.size(), 10u) << "the writer made too little progress to test anything";
}

// ---- files ------------------------------------------------------------------------------

TEST(EmbeddedFiles, HalfWrittenObjectFilesAreRemovedOnOpen) {
    TempDir dir("zh-store");
    {
        auto b = OpenOrDie(dir.path());
        SyncBackend s(b.get());
        ASSERT_TRUE(s.Put("/c1/kept", std::string(200000, 'k')).ok());
    }
    std::string orphan = dir.path() + "/objects/00000000deadbeef";
    std::ofstream(orphan) << "a put that never committed";
    size_t files_before = 0;
    for (auto& e : std::filesystem::directory_iterator(dir.path() + "/objects")) {
        (void)e;
        ++files_before;
    }
    ASSERT_EQ(files_before, 2u);
    auto b = OpenOrDie(dir.path());
    EXPECT_FALSE(std::filesystem::exists(orphan));
    SyncBackend s(b.get());
    EXPECT_EQ(s.Get("/c1/kept")->size(), 200000u);
}

TEST(EmbeddedFiles, ReplacedAndDeletedObjectsFreeTheirFiles) {
    TempDir dir("zh-store");
    auto b = OpenOrDie(dir.path());
    SyncBackend s(b.get());
    ASSERT_TRUE(s.Put("/c1/o", std::string(200000, 'a')).ok());
    ASSERT_TRUE(s.Put("/c1/o", std::string(300000, 'b')).ok());
    ASSERT_TRUE(s.Put("/c1/p", std::string(300000, 'c')).ok());
    ASSERT_TRUE(s.Rename("/c1/p", "/c1/o").ok());
    // Files no longer referred to are unlinked by the I/O threads, soon after the commit.
    auto count = [&](size_t want) {
        size_t n = 0;
        for (int i = 0; i < 500; ++i) {
            n = 0;
            for (auto& e : std::filesystem::directory_iterator(dir.path() + "/objects")) {
                (void)e;
                ++n;
            }
            if (n == want) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return n;
    };
    EXPECT_EQ(count(1), 1u);
    EXPECT_EQ(*s.Get("/c1/o"), std::string(300000, 'c'));
    ASSERT_TRUE(s.Delete("/c1/o").ok());
    EXPECT_EQ(count(0), 0u);
}

TEST(EmbeddedFiles, HugeObjectsStreamWithoutBeingHeldInMemory) {
    uint64_t gib = 3;
    if (const char* env = getenv("ZH_HUGE_OBJECT_GIB")) {
        ASSERT_TRUE(absl::SimpleAtoi(env, &gib));
    }
    const uint64_t size = gib << 30;
    TempDir dir("zh-store");
    auto b = OpenOrDie(dir.path());

    // Bytes made on the fly: the object exists nowhere in memory.
    class Generated : public DataSource {
    public:
        explicit Generated(uint64_t size) : left_(size) {}
        absl::StatusOr<size_t> Read(char* buf, size_t cap) override {
            size_t n = static_cast<size_t>(std::min<uint64_t>(cap, left_));
            for (size_t i = 0; i < n; ++i) {
                buf[i] = static_cast<char>((pos_ + i) * 131 >> 3);
            }
            pos_ += n;
            left_ -= n;
            return n;
        }

    private:
        uint64_t left_, pos_ = 0;
    };
    class Checker : public DataSink {
    public:
        explicit Checker(uint64_t start) : pos_(start) {}
        absl::Status Write(std::string_view chunk) override {
            for (size_t i = 0; i < chunk.size(); ++i) {
                if (chunk[i] != static_cast<char>((pos_ + i) * 131 >> 3)) {
                    return absl::DataLossError(absl::StrCat("mismatch at ", pos_ + i));
                }
            }
            pos_ += chunk.size();
            peak_rss_ = std::max(peak_rss_, RssBytes());
            return absl::OkStatus();
        }
        uint64_t pos_;
        size_t peak_rss_ = 0;
    };

    size_t rss_before = RssBytes();
    Generated source(size);
    auto put = Await<ObjectInfo>([&](auto done) {
        b->PutObject({.path = P("/c1/huge")}, &source, std::move(done));
    });
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_EQ(put->size, size);
    EXPECT_LT(RssBytes(), rss_before + (256u << 20)) << "the put held the object in memory";

    Checker all(0);
    auto got = Await<GetObjectResult>([&](auto done) {
        b->GetObject({.path = P("/c1/huge")}, &all, std::move(done));
    });
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->bytes, size);
    EXPECT_EQ(all.pos_, size);
    EXPECT_LT(all.peak_rss_, rss_before + (256u << 20)) << "the get held the object in memory";

    // Ranged reads and writes at the far end.
    Checker tail(size - 4096);
    auto ranged = Await<GetObjectResult>([&](auto done) {
        b->GetObject({.path = P("/c1/huge"), .offset = size - 4096, .length = 1 << 20}, &tail, std::move(done));
    });
    ASSERT_TRUE(ranged.ok());
    EXPECT_EQ(ranged->bytes, 4096u);
    SyncBackend s(b.get());
    ASSERT_TRUE(s.Write("/c1/huge", size - 3, "END").ok());
    EXPECT_EQ(*s.Get("/c1/huge", size - 3, 10), "END");
    auto appended = s.Append("/c1/huge", "+");
    ASSERT_TRUE(appended.ok());
    EXPECT_EQ(appended->size, size + 1);
}

// ---- retention --------------------------------------------------------------------------

// The store's database opened directly, as a tool would (with the metadata's merge
// operator): column families default (metadata), data, records.
struct RawDb {
    std::vector<rocksdb::ColumnFamilyHandle*> cf;
    rocksdb::DB* db = nullptr;
    rocksdb::Status status;

    RawDb(const std::string& dir, bool read_only) {
        rocksdb::ColumnFamilyOptions meta;
        meta.merge_operator = embedded::NewDirStatsMerge();
        std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
            {rocksdb::kDefaultColumnFamilyName, meta}, {"data", {}}, {"records", {}}};
        status = read_only ? rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir + "/db", cfs, &cf, &db)
                           : rocksdb::DB::Open(rocksdb::DBOptions(), dir + "/db", cfs, &cf, &db);
    }
    ~RawDb() {
        for (auto* h : cf) {
            db->DestroyColumnFamilyHandle(h);
        }
        delete db;
    }
};

size_t CountRecordKeys(const std::string& dir) {
    RawDb raw(dir, /*read_only=*/true);
    EXPECT_TRUE(raw.status.ok()) << raw.status.ToString();
    if (!raw.status.ok()) {
        return 0;
    }
    size_t n = 0;
    std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(rocksdb::ReadOptions(), raw.cf[2]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
        ++n;
    }
    return n;
}

TEST(EmbeddedRetention, ExpiredRecordsAreReclaimed) {
    TempDir dir("zh-store");
    std::atomic<int64_t> now_ns{1'700'000'000'000'000'000};
    EmbeddedOptions opts;
    opts.clock = [&] { return Timestamp::FromNanos(now_ns.load()); };
    opts.maintenance_interval = absl::ZeroDuration();
    {
        auto b = OpenOrDie(dir.path(), opts);
        SyncBackend s(b.get());
        ASSERT_TRUE(s.CreateStream("/c1/s", 2, /*retention_secs=*/60).ok());
        for (int i = 0; i < 100; ++i) {
            ASSERT_TRUE(s.PutRecords("/c1/s", {{.data = std::string(1000, 'x'), .shard = static_cast<uint32_t>(i % 2)}}).ok());
        }
        now_ns += int64_t{30} * 1'000'000'000;
        for (int i = 0; i < 10; ++i) {
            ASSERT_TRUE(s.PutRecords("/c1/s", {{.data = "fresh", .shard = 0}}).ok());
        }
        now_ns += int64_t{45} * 1'000'000'000;  // the first 100 are now older than 60 s
        ASSERT_TRUE(b->Maintain().ok());
        auto page = s.GetRecords("/c1/s", {0, 1});
        ASSERT_TRUE(page.ok());
        ASSERT_EQ(page->records.size(), 10u);
        EXPECT_EQ(page->records[0].sequence, 51u);
        EXPECT_TRUE(s.GetRecords("/c1/s", {1, 1})->records.empty());
        auto earliest = s.Seek({.path = P("/c1/s"), .shard = 1, .type = SeekType::kEarliest});
        EXPECT_EQ(earliest->sequence, 51u);
        // New records continue the sequence after the reclaimed ones.
        auto r = s.PutRecords("/c1/s", {{.data = "later", .shard = 1}});
        EXPECT_EQ((*r)[0].sequence, 51u);
    }
    EXPECT_EQ(CountRecordKeys(dir.path()), 11u) << "reclaimed records still take space";
}

// ---- objects written by whoever holds their file ----------------------------------------

// Once an object's file is handed out (open_object_file: FUSE registers it with the kernel,
// which then writes it straight), the file's size and mtime are the object's: writes into
// the file are seen by stat, listings, gets, conditions and appends at once. A put replaces
// the object with a new file, which is the store's again.
TEST(EmbeddedObjectFiles, AnObjectWhoseFileWasHandedOutIsSizedByItsFile) {
    TempDir dir("zh-store");
    auto b = OpenOrDie(dir.path());
    SyncBackend s(b.get());
    std::string big(200 * 1024, 'b');
    ASSERT_TRUE(s.Put("/c1/f", big).ok());
    auto before = s.Stat("/c1/f");
    ASSERT_TRUE(before.ok());
    auto file = Await<ObjectFile>([&](auto done) { b->OpenObjectFile(P("/c1/f"), std::move(done)); });
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_GE(file->fd, 0);
    EXPECT_EQ(file->info.size, big.size());
    EXPECT_EQ(file->info.mtime, before->mtime) << "handing the file out changes nothing that shows";
    EXPECT_EQ(s.Stat("/c1/f")->mtime, before->mtime);

    // What the kernel does through its own descriptor of the file.
    int w = ::open(absl::StrCat("/proc/self/fd/", file->fd).c_str(), O_WRONLY);
    ASSERT_GE(w, 0) << strerror(errno);
    absl::SleepFor(absl::Milliseconds(5));
    ASSERT_EQ(::pwrite(w, "kernel", 6, static_cast<off_t>(big.size())), 6);
    auto after = s.Stat("/c1/f");
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->size, big.size() + 6);
    // The mtime the kernel gave the file (from its coarse clock, which may lag the store's
    // by more than the sleep on a loaded machine: compared for equality, not order).
    struct stat written = {};
    ASSERT_EQ(::fstat(w, &written), 0);
    EXPECT_NE(after->mtime, before->mtime);
    EXPECT_EQ(after->mtime.secs, written.st_mtim.tv_sec);
    EXPECT_EQ(after->mtime.nsecs, written.st_mtim.tv_nsec);
    EXPECT_EQ(*s.Get("/c1/f", big.size(), 100), "kernel");
    auto listed = s.List({.path = P("/c1")});
    ASSERT_TRUE(listed.ok());
    ASSERT_EQ(listed->entries.size(), 1u);
    EXPECT_EQ(listed->entries[0].info.size, big.size() + 6);
    EXPECT_FALSE(s.Delete("/c1/f", absl::StrCat("__size == ", big.size())).ok()) << "conditions see the file's size";
    auto scanned = s.GetItems({.path = P("/c1"), .filter = absl::StrCat("__size > ", big.size())});
    ASSERT_TRUE(scanned.ok()) << scanned.status();
    EXPECT_EQ(scanned->items.size(), 1u) << "and so do table scans";

    // The store's own changes go to the same file and agree with it.
    auto appended = s.Append("/c1/f", "+api");
    ASSERT_TRUE(appended.ok());
    EXPECT_EQ(appended->size, big.size() + 10);
    EXPECT_EQ(*s.Get("/c1/f", big.size(), 100), "kernel+api");
    EXPECT_EQ(s.Stat("/c1/f")->mtime, appended->mtime) << "a change's answer names the mtime a stat shows";
    ASSERT_TRUE(s.Truncate("/c1/f", 1000).ok());
    EXPECT_EQ(s.Stat("/c1/f")->size, 1000u);
    EXPECT_EQ(::lseek(w, 0, SEEK_END), 1000) << "cut in the file itself";
    ASSERT_TRUE(s.SetMetadata({.path = P("/c1/f"), .mtime = Timestamp{1234, 5}}).ok());
    EXPECT_EQ(s.Stat("/c1/f")->mtime, (Timestamp{1234, 5}));
    auto item = s.PutItem("/c1/f", {{"k", Value::Int64(1)}});
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(s.Stat("/c1/f")->mtime, item->mtime) << "an item write's answer names the mtime a stat shows";
    EXPECT_EQ(s.Stat("/c1/f")->size, 1000u) << "and leaves the bytes";

    // A put: a new file, sized by the store; the old descriptor writes a version nobody sees.
    ASSERT_TRUE(s.Put("/c1/f", big).ok());
    ASSERT_EQ(::pwrite(w, "orphan", 6, 0), 6);
    EXPECT_EQ(s.Stat("/c1/f")->size, big.size());
    EXPECT_EQ(*s.Get("/c1/f", 0, 6), "bbbbbb");
    ::close(w);

    // It survives a reopen: still sized by its file.
    auto again = Await<ObjectFile>([&](auto done) { b->OpenObjectFile(P("/c1/f"), std::move(done)); });
    ASSERT_TRUE(again.ok());
    w = ::open(absl::StrCat("/proc/self/fd/", again->fd).c_str(), O_WRONLY);
    ASSERT_EQ(::pwrite(w, "x", 1, static_cast<off_t>(big.size()) + 99), 1);
    ::close(w);
    b.reset();
    b = OpenOrDie(dir.path());
    EXPECT_EQ(SyncBackend(b.get()).Stat("/c1/f")->size, big.size() + 100);
}

// ---- directories ------------------------------------------------------------------------

// A store made before directories kept their subdirectory counts (no "T" records, no
// marker) is counted once when opened: link counts are right from the first stat.
TEST(EmbeddedDirectories, AStoreFromBeforeCountsIsCountedWhenOpened) {
    TempDir dir("zh-store");
    {
        auto b = OpenOrDie(dir.path());
        SyncBackend s(b.get());
        ASSERT_TRUE(s.Mkdir("/c1/a").ok());
        ASSERT_TRUE(s.Mkdir("/c1/a/x").ok());
        ASSERT_TRUE(s.Mkdir("/c1/a/y").ok());
        ASSERT_TRUE(s.CreateStream("/c1/a/s", 1).ok());
        ASSERT_TRUE(s.Put("/c1/a/f", "file").ok());
        ASSERT_TRUE(s.Mkdir("/c1/b").ok());
    }
    {
        // Back to what an older version left: no counts, no marker.
        RawDb raw(dir.path(), /*read_only=*/false);
        ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
        ASSERT_TRUE(raw.db->Delete(rocksdb::WriteOptions(), raw.cf[0], embedded::kSubdirsCountedKey).ok());
        ASSERT_TRUE(raw.db->DeleteRange(rocksdb::WriteOptions(), raw.cf[0], "T", "U").ok());
    }
    auto b = OpenOrDie(dir.path());
    SyncBackend s(b.get());
    EXPECT_EQ(s.Stat("/c1/a")->subdirs, 3u) << "x, y and the stream";
    EXPECT_EQ(s.Stat("/c1")->subdirs, 2u);
    EXPECT_EQ(s.Stat("/c1/b")->subdirs, 0u);
    ASSERT_TRUE(s.Rmdir("/c1/a/x").ok());
    EXPECT_EQ(s.Stat("/c1/a")->subdirs, 2u) << "and kept from there";
}

// ---- corruption -------------------------------------------------------------------------

TEST(EmbeddedCorruption, CorruptRecordsAreDataLossNotCrashes) {
    TempDir dir("zh-store");
    {
        auto b = OpenOrDie(dir.path());
        SyncBackend s(b.get());
        ASSERT_TRUE(s.PutItem("/c1/item", {{"a", Value::Int64(1)}}).ok());
    }
    uint64_t root_id = 0;
    {
        RawDb raw(dir.path(), /*read_only=*/false);
        ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
        std::string root;
        ASSERT_TRUE(raw.db->Get(rocksdb::ReadOptions(), raw.cf[0], embedded::EntryKey(0, "c1"), &root).ok());
        root_id = embedded::DecodeEntry(root)->info.id;
        std::string entry;
        ASSERT_TRUE(raw.db->Get(rocksdb::ReadOptions(), raw.cf[0], embedded::EntryKey(root_id, "item"), &entry).ok());
        entry.resize(entry.size() - 3);  // cut into the attributes
        ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), raw.cf[0], embedded::EntryKey(root_id, "item"), entry).ok());
        ASSERT_TRUE(
            raw.db->Put(rocksdb::WriteOptions(), raw.cf[0], embedded::EntryKey(root_id, "garbage"), "\x07zz").ok());
    }
    auto b = OpenOrDie(dir.path());
    SyncBackend s(b.get());
    EXPECT_EQ(s.GetItem("/c1/item").status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(s.Stat("/c1/garbage").status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(s.GetItems({.path = P("/c1")}).status().code(), absl::StatusCode::kDataLoss);
    ASSERT_TRUE(s.PutItem("/c1/other", {{"a", Value::Int64(2)}}).ok()) << "the rest of the store works";
}

// ---- full disk --------------------------------------------------------------------------

// A small tmpfs mounted for the test; needs root (CI runs as root).
class SmallDisk {
public:
    explicit SmallDisk(size_t bytes) {
        if (geteuid() != 0) {
            return;
        }
        path_ = dir_.path() + "/disk";
        std::filesystem::create_directories(path_);
        std::string opts = absl::StrCat("size=", bytes);
        mounted_ = mount("zh-test", path_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    }
    ~SmallDisk() {
        if (mounted_) {
            umount2(path_.c_str(), MNT_DETACH);
        }
    }
    bool Resize(size_t bytes) {
        std::string opts = absl::StrCat("size=", bytes);
        return mount("zh-test", path_.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()) == 0;
    }
    bool mounted() const { return mounted_; }
    const std::string& path() const { return path_; }

private:
    TempDir dir_{"zh-store"};
    std::string path_;
    bool mounted_ = false;
};

TEST(EmbeddedFullDisk, FullDiskIsResourceExhaustedAndCorruptsNothing) {
    SmallDisk disk(48 << 20);
    if (!disk.mounted()) {
        if (const char* ci = getenv("CI"); ci != nullptr && std::string(ci) == "true") {
            FAIL() << "CI must run this test as root: it mounts a small tmpfs";
        }
        GTEST_SKIP() << "needs root to mount a small tmpfs";
    }
    std::string store = disk.path() + "/store";
    std::map<std::string, std::string> acked;
    absl::Status failure;
    {
        auto b = OpenOrDie(store);
        ASSERT_NE(b, nullptr);
        SyncBackend s(b.get());
        for (int i = 0; i < 10000 && failure.ok(); ++i) {
            std::string key = absl::StrCat("/c1/o", i);
            std::string data = Pattern(i % 2 ? 512 * 1024 : 2000, i);
            absl::Status st = s.Put(key, data, {{"i", Value::Int64(i)}}).status();
            if (st.ok()) {
                acked[key] = std::move(data);
            } else {
                failure = st;
            }
        }
        ASSERT_EQ(failure.code(), absl::StatusCode::kResourceExhausted) << failure;
        EXPECT_NE(std::string(failure.message()).find("disk full"), std::string::npos) << failure;
        ASSERT_GT(acked.size(), 10u);
        // Everything acknowledged still reads back in the same process.
        for (const auto& [key, data] : acked) {
            auto got = s.Get(key);
            ASSERT_TRUE(got.ok()) << key << ": " << got.status();
            ASSERT_TRUE(*got == data) << key;
        }
        // Once there is room again the same store takes writes again.
        ASSERT_TRUE(disk.Resize(160 << 20));
        absl::Status again;
        for (int attempt = 0; attempt < 50; ++attempt) {
            again = s.Put("/c1/after", "room again").status();
            if (again.ok()) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        ASSERT_TRUE(again.ok()) << again;
    }
    auto b = OpenOrDie(store);
    ASSERT_NE(b, nullptr);
    SyncBackend s(b.get());
    for (const auto& [key, data] : acked) {
        auto got = s.Get(key);
        ASSERT_TRUE(got.ok()) << key << " after reopen: " << got.status();
        ASSERT_TRUE(*got == data) << key;
    }
    EXPECT_EQ(*s.Get("/c1/after"), "room again");
}

}  // namespace
}  // namespace zerohop

int main(int argc, char** argv) {
    if (argc == 4 && std::string(argv[1]) == zerohop::kCrashWriterFlag) {
        return zerohop::RunCrashWriter(argv[2], std::atoi(argv[3]));
    }
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

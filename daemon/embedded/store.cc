// The embedded store's engine: opening, ids, commits, and resolving paths to entries.
// The operations are namespace.cc, objects.cc, items.cc and streams.cc.

#include "embedded/internal/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "expr/expression.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "wire/codec.h"
#include "zerohop/status.h"

namespace zerohop {

using embedded::ErrnoStatus;
using embedded::EncodeEntry;
using embedded::ToSlice;
using embedded::ToView;
using embedded::EntryKey;
using embedded::EntryPrefix;
using embedded::FileKey;

namespace {

constexpr uint64_t kIdReserveBlock = 4096;

}  // namespace

namespace embedded {

absl::Status ErrnoStatus(int err, std::string_view what) {
    if (err == ENOSPC || err == EDQUOT) {
        return absl::ResourceExhaustedError(
            absl::StrFormat("%s: disk full (%s); free space and retry, nothing was changed", what, strerror(err)));
    }
    if (err == ENOENT) {
        return absl::NotFoundError(absl::StrFormat("%s: %s", what, strerror(err)));
    }
    return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(err)));
}

}  // namespace embedded

// ---- opening ------------------------------------------------------------------------

EmbeddedBackend::Store::Store(EmbeddedOptions options)
    : options_(std::move(options)), entries_(options_.entry_cache_bytes) {}

EmbeddedBackend::Store::~Store() {
    {
        absl::MutexLock lock(&stop_mu_);
        stop_ = true;
    }
    if (maintenance_.joinable()) {
        maintenance_.join();
    }
    if (db_) {
        for (rocksdb::ColumnFamilyHandle* h : handles_) {
            db_->DestroyColumnFamilyHandle(h);
        }
        db_->Close();
    }
}

absl::StatusOr<std::unique_ptr<EmbeddedBackend::Store>> EmbeddedBackend::Store::Open(EmbeddedOptions options,
                                                                                  bool read_only) {
    if (options.dir.empty()) {
        return absl::InvalidArgumentError("embedded store: `dir` is empty; give the directory to keep data in");
    }
    for (const std::string& c : options.containers) {
        if (absl::Status s = Path::ValidateComponent(c); !s.ok()) {
            return absl::InvalidArgumentError(absl::StrFormat("embedded store: container \"%s\": %s", c, s.message()));
        }
    }
    std::unique_ptr<Store> store(new Store(std::move(options)));
    store->read_only_ = read_only;
    for (const std::string& d : {store->options_.dir, store->options_.dir + "/objects"}) {
        if (::mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) {
            return ErrnoStatus(errno, absl::StrFormat("embedded store: cannot create %s", d));
        }
    }
    store->calls_ = store->options_.object_file_calls ? store->options_.object_file_calls.get() : SystemFileCalls();
    store->objects_dir_.reset(::open((store->options_.dir + "/objects").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!store->objects_dir_.valid()) {
        return ErrnoStatus(errno, absl::StrFormat("embedded store: open %s/objects", store->options_.dir));
    }
    ZH_RETURN_IF_ERROR(store->OpenDb());
    if (!read_only) {
        ZH_RETURN_IF_ERROR(store->CountSubdirsOnce());
    }
    ZH_RETURN_IF_ERROR(store->CreateContainers());
    if (read_only) {
        return store;
    }
    ZH_RETURN_IF_ERROR(store->CollectOrphanFiles());
    if (store->options_.maintenance_interval > absl::ZeroDuration()) {
        store->maintenance_ = std::thread([s = store.get()] { s->MaintenanceLoop(); });
    }
    return store;
}

absl::Status EmbeddedBackend::Store::OpenDb() {
    rocksdb::Options opts;
    opts.create_if_missing = true;
    opts.create_missing_column_families = true;
    opts.max_background_jobs = 2;
    opts.bytes_per_sync = 1 << 20;
    opts.max_open_files = 512;
    opts.keep_log_file_num = 4;
    if (options_.file_system) {
        env_ = rocksdb::NewCompositeEnv(options_.file_system);
        opts.env = env_.get();
    }
    if (options_.row_cache_bytes > 0) {
        opts.row_cache = rocksdb::NewLRUCache(options_.row_cache_bytes);
    }

    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.cache_index_and_filter_blocks = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    // Point lookups dominate: a hash index inside each data block saves the binary search.
    table.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
    rocksdb::ColumnFamilyOptions cf(opts);
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    rocksdb::ColumnFamilyOptions meta_cf = cf;
    meta_cf.merge_operator = embedded::NewDirStatsMerge();
    // A directory's "T" record takes an operand per entry added or removed: folded at write
    // time once a few are pending, so that a stat never merges thousands of them.
    meta_cf.max_successive_merges = 8;

    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, meta_cf}, {"data", cf}, {"records", cf}};
    rocksdb::DB* raw = nullptr;
    rocksdb::DBOptions dbopts(opts);
    rocksdb::Status s = read_only_ ? rocksdb::DB::OpenForReadOnly(dbopts, options_.dir + "/db", cfs, &handles_, &raw)
                                   : rocksdb::DB::Open(dbopts, options_.dir + "/db", cfs, &handles_, &raw);
    if (!s.ok()) {
        return FromRocks(s, absl::StrFormat("open %s/db", options_.dir));
    }
    db_.reset(raw);
    meta_ = handles_[0];
    data_ = handles_[1];
    records_ = handles_[2];
    write_options_.sync = options_.sync_writes;
    read_options_ = rocksdb::ReadOptions();

    std::string next;
    s = db_->Get(rocksdb::ReadOptions(), meta_, embedded::kNextIdKey, &next);
    absl::MutexLock lock(&id_mu_);
    if (s.ok()) {
        if (next.size() != 8) {
            return absl::DataLossError("embedded store: corrupt id counter");
        }
        std::memcpy(&next_id_, next.data(), 8);
    } else if (s.IsNotFound()) {
        next_id_ = 1;
    } else {
        return FromRocks(s, "read id counter");
    }
    reserved_id_ = next_id_;  // the next NewId() reserves a fresh block
    return absl::OkStatus();
}

absl::StatusOr<uint64_t> EmbeddedBackend::Store::NewIds(uint64_t count) {
    absl::MutexLock lock(&id_mu_);
    if (next_id_ + count > reserved_id_) {
        ZH_RETURN_IF_ERROR(CheckTakesWrites());
        uint64_t reserve = next_id_ + count + kIdReserveBlock;
        std::string v(8, '\0');
        std::memcpy(v.data(), &reserve, 8);
        rocksdb::WriteOptions wo;
        wo.sync = options_.sync_writes;
        rocksdb::Status s = db_->Put(wo, meta_, embedded::kNextIdKey, v);
        if (!s.ok()) {
            return FromRocks(s, "reserve ids");
        }
        reserved_id_ = reserve;
    }
    uint64_t first = next_id_;
    next_id_ += count;
    return first;
}

absl::Status EmbeddedBackend::Store::CreateContainers() {
    for (const std::string& c : options_.containers) {
        ZH_ASSIGN_OR_RETURN(auto existing, GetEntry(0, c));
        if (existing) {
            container_roots_[c] = existing->info.id;
            continue;
        }
        if (read_only_) {
            continue;  // made by the next open that may write
        }
        ZH_ASSIGN_OR_RETURN(auto id, NewId());
        Entry e = embedded::NewEntry(ObjectType::kDirectory, id, 0755, 0, 0, Now());
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(0, c), EncodeEntry(e));
        ZH_RETURN_IF_ERROR(Commit(&batch));
        container_roots_[c] = id;
    }
    // Containers created by an earlier configuration stay reachable.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    std::string prefix = EntryPrefix(0);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        ZH_ASSIGN_OR_RETURN(auto e, embedded::DecodeEntry(ToView(it->value())));
        container_roots_.emplace(std::string(ToView(it->key()).substr(prefix.size())), e.info.id);
    }
    return FromRocks(it->status(), "list containers");
}

absl::Status EmbeddedBackend::Store::CollectOrphanFiles() {
    std::string dir = options_.dir + "/objects";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return ErrnoStatus(errno, absl::StrFormat("embedded store: open %s", dir));
    }
    std::vector<uint64_t> orphans;
    while (struct dirent* de = ::readdir(d)) {
        char* end = nullptr;
        uint64_t id = std::strtoull(de->d_name, &end, 16);
        if (de->d_name[0] == '.' || end == de->d_name || *end != '\0') {
            continue;
        }
        std::string unused;
        rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, FileKey(id), &unused);
        if (s.IsNotFound()) {
            orphans.push_back(id);
        }
    }
    ::closedir(d);
    for (uint64_t id : orphans) {
        RemoveFile(id);  // written by a put that never committed, or replaced before a crash
    }
    return absl::OkStatus();
}

void EmbeddedBackend::Store::MaintenanceLoop() {
    absl::MutexLock lock(&stop_mu_);
    while (!stop_) {
        stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.maintenance_interval);
        if (stop_) {
            break;
        }
        stop_mu_.Unlock();
        (void)Maintain();  // failures are retried at the next interval
        stop_mu_.Lock();
    }
}

// ---- commits --------------------------------------------------------------------------

absl::Status EmbeddedBackend::Store::FromRocks(const rocksdb::Status& s, std::string_view what) {
    if (s.ok()) {
        return absl::OkStatus();
    }
    if (s.IsNoSpace()) {
        needs_resume_ = true;
        return absl::ResourceExhaustedError(absl::StrFormat(
            "embedded store %s: %s: disk full; free space and retry, nothing was changed", options_.dir, what));
    }
    if (s.IsIOError()) {
        // RocksDB refuses writes after a failed log or table write until resumed.
        needs_resume_ = true;
    }
    if (s.IsCorruption()) {
        return absl::DataLossError(absl::StrFormat("embedded store %s: %s: %s", options_.dir, what, s.ToString()));
    }
    if (s.IsNotFound()) {
        return absl::NotFoundError(absl::StrFormat("embedded store: %s: %s", what, s.ToString()));
    }
    if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) {
        return absl::UnavailableError(absl::StrFormat("embedded store: %s: %s; retry", what, s.ToString()));
    }
    return absl::InternalError(absl::StrFormat("embedded store %s: %s: %s", options_.dir, what, s.ToString()));
}

absl::Status EmbeddedBackend::Store::CheckTakesWrites() const {
    if (read_only_) {
        return absl::UnavailableError(absl::StrFormat(
            "embedded store %s: serving reads only after an I/O error it could not recover from; it reopens for "
            "writes by itself once the disk takes them again",
            options_.dir));
    }
    return absl::OkStatus();
}

absl::Status EmbeddedBackend::Store::Commit(rocksdb::WriteBatch* batch) {
    ZH_RETURN_IF_ERROR(CheckTakesWrites());
    if (needs_resume_.load(std::memory_order_relaxed)) {
        // After a full disk or a failed write RocksDB refuses writes until resumed; the fault
        // may have cleared. After a failed log write it cannot resume: what reached the log
        // is unknown, and only recovery from the log at the next open is safe (the same
        // choice as PostgreSQL's after a failed fsync): EmbeddedBackend reopens the store.
        rocksdb::Status r = db_->Resume();
        if (r.ok()) {
            needs_resume_ = false;
        } else if (r.severity() > rocksdb::Status::Severity::kHardError) {
            stopped_ = true;  // EmbeddedBackend reopens the store
            return absl::UnavailableError(absl::StrFormat(
                "embedded store %s: stopped taking writes after an I/O error it cannot resume from (%s); it reopens "
                "from its log, with every acknowledged write, once the disk takes writes again; retry",
                options_.dir, r.ToString()));
        }
    }
    // Entries this batch touches are kept out of the cache from before the write until after
    // it, whatever its outcome.
    struct CacheBracket : rocksdb::WriteBatch::Handler {
        CacheBracket(embedded::EntryCache* c, bool begin) : cache(c), begin(begin) {}
        rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice&) override {
            return Mark(cf, key);
        }
        rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override { return Mark(cf, key); }
        rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
            return rocksdb::Status::OK();  // only stream records are range-deleted
        }
        rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
            return rocksdb::Status::OK();  // only directory stats are merged (not cached)
        }
        rocksdb::Status Mark(uint32_t cf, const rocksdb::Slice& key) {
            if (cf == 0 && !key.empty() && key[0] == 'D') {
                begin ? cache->BeginWrite(ToView(key)) : cache->EndWrite(ToView(key));
            }
            return rocksdb::Status::OK();
        }
        embedded::EntryCache* cache;
        bool begin;
    };
    if (entries_.enabled()) {
        CacheBracket begin(&entries_, true);
        (void)batch->Iterate(&begin);
    }
    absl::Status s = FromRocks(db_->Write(write_options_, batch), "write");
    if (entries_.enabled()) {
        CacheBracket end(&entries_, false);
        (void)batch->Iterate(&end);
    }
    return s;
}

absl::StatusOr<bool> EmbeddedBackend::Store::ReadEntry(std::string_view key, std::string* value) {
    if (entries_.enabled() && entries_.Find(key, value)) {
        return true;
    }
    uint64_t generation = entries_.enabled() ? entries_.Generation(key) : 0;
    rocksdb::Status s = db_->Get(read_options_, meta_, ToSlice(key), value);
    if (s.IsNotFound()) {
        return false;
    }
    if (!s.ok()) {
        return FromRocks(s, "read entry");
    }
    if (entries_.enabled()) {
        entries_.Insert(key, *value, generation);
    }
    return true;
}

absl::Status EmbeddedBackend::Store::Sync() {
    ZH_RETURN_IF_ERROR(CheckTakesWrites());
    rocksdb::Status s = db_->FlushWAL(/*sync=*/true);
    if (!s.ok()) {
        return FromRocks(s, "sync WAL");
    }
    // Object files are fdatasync'ed when written with sync_writes; otherwise syncfs covers them.
    if (calls_->Syncfs(objects_dir_.get()) != 0) {
        return ErrnoStatus(errno, "sync object files");
    }
    return absl::OkStatus();
}

absl::Status EmbeddedBackend::Store::Flush() {
    ZH_RETURN_IF_ERROR(CheckTakesWrites());
    rocksdb::FlushOptions fo;
    fo.wait = true;
    return FromRocks(db_->Flush(fo, handles_), "flush");
}

// ---- resolution -----------------------------------------------------------------------

absl::StatusOr<std::optional<embedded::Entry>> EmbeddedBackend::Store::GetEntry(uint64_t parent,
                                                                                 std::string_view name) {
    std::string value;
    embedded::EntryKeyBuffer key(parent, name);
    ZH_ASSIGN_OR_RETURN(auto found, ReadEntry(key.view(), &value));
    if (!found) {
        return std::optional<Entry>();
    }
    ZH_ASSIGN_OR_RETURN(auto e, embedded::DecodeEntry(value));
    ZH_RETURN_IF_ERROR(SizeByFile(&e));
    return std::optional<Entry>(std::move(e));
}

absl::Status EmbeddedBackend::Store::SizeByFile(Entry* e) {
    if (!e->sized_by_file) {
        return absl::OkStatus();
    }
    struct stat st;
    if (::fstatat(objects_dir_.get(), FileName(e->data_id).c_str(), &st, 0) != 0) {
        if (errno == ENOENT) {
            return absl::DataLossError(
                absl::StrFormat("embedded store: object file %s is missing", FilePath(e->data_id)));
        }
        return ErrnoStatus(errno, absl::StrFormat("stat object file %s", FilePath(e->data_id)));
    }
    e->info.size = static_cast<uint64_t>(st.st_size);
    e->info.mtime = Timestamp{st.st_mtim.tv_sec, static_cast<int32_t>(st.st_mtim.tv_nsec)};
    e->info.ctime = std::max(e->info.ctime, Timestamp{st.st_ctim.tv_sec, static_cast<int32_t>(st.st_ctim.tv_nsec)});
    return absl::OkStatus();
}

absl::Status EmbeddedBackend::Store::StampFile(int fd, Timestamp mtime, const Path& path) {
    struct timespec times[2] = {{0, UTIME_OMIT}, {mtime.secs, mtime.nsecs}};
    if (::futimens(fd, times) != 0) {
        return ErrnoStatus(errno, absl::StrFormat("set the times of %s's file", path.str()));
    }
    return absl::OkStatus();
}

absl::Status EmbeddedBackend::Store::StampFile(uint64_t data_id, Timestamp mtime, const Path& path) {
    ZH_ASSIGN_OR_RETURN(auto f, OpenFile(data_id, O_RDONLY));
    return StampFile(f.get(), mtime, path);
}

absl::StatusOr<EmbeddedBackend::Store::Location> EmbeddedBackend::Store::Locate(const Path& path) {
    Location loc;
    if (path.is_root()) {
        return absl::InvalidArgumentError("the root \"/\" holds only containers");
    }
    if (path.depth() == 1) {
        return loc;  // a container root: an entry of parent 0
    }
    size_t parent_depth = path.depth() - 1;
    loc.parent_name = path.component(parent_depth - 1);
    if (parent_depth > 1) {
        if (auto hit = dirs_.Find(path.Prefix(parent_depth))) {
            loc.grandparent = hit->grandparent;
            loc.parent = hit->id;
            loc.parent_type = hit->type;
            return loc;
        }
    }
    uint64_t epoch = dirs_.epoch();
    auto root = container_roots_.find(absl::string_view(path.container().data(), path.container().size()));
    if (root == container_roots_.end()) {
        return absl::NotFoundError(absl::StrFormat("%s: container \"%s\" does not exist in this store", path.str(),
                                                   path.container()));
    }
    loc.grandparent = 0;
    loc.parent = root->second;
    for (size_t i = 1; i < parent_depth; ++i) {
        std::string_view name = path.component(i);
        ZH_ASSIGN_OR_RETURN(auto e, GetEntry(loc.parent, name));
        if (!e) {
            return ParentNotFoundError(path.str());
        }
        if (!e->is_dir_like()) {
            return AncestorNotDirectoryError(path, i + 1);
        }
        loc.grandparent = loc.parent;
        loc.parent = e->info.id;
        loc.parent_type = e->info.type;
        dirs_.Insert(path.Prefix(i + 1), {loc.grandparent, loc.parent, loc.parent_type}, epoch);
    }
    return loc;
}

absl::StatusOr<bool> EmbeddedBackend::Store::IsAncestor(uint64_t id, const Path& path) {
    auto root = container_roots_.find(absl::string_view(path.container().data(), path.container().size()));
    if (root == container_roots_.end()) {
        return false;
    }
    uint64_t at = root->second;
    for (size_t i = 1;; ++i) {
        if (at == id) {
            return true;
        }
        if (i + 1 >= path.depth()) {
            return false;
        }
        ZH_ASSIGN_OR_RETURN(auto e, GetEntry(at, path.component(i)));
        if (!e) {
            return false;
        }
        at = e->info.id;
    }
}

absl::Status EmbeddedBackend::Store::GetEntryView(const Path& path, uint64_t parent, std::string* value, Entry* e,
                                                  std::string_view* attributes) {
    embedded::EntryKeyBuffer key(parent, path.name());
    ZH_ASSIGN_OR_RETURN(auto found, ReadEntry(key.view(), value));
    if (!found) {
        return PathNotFoundError(path.str());
    }
    ZH_RETURN_IF_ERROR(embedded::DecodeEntryHeader(*value, e, attributes));
    return SizeByFile(e);
}

absl::StatusOr<embedded::Entry> EmbeddedBackend::Store::GetExisting(const Path& path, const Location& loc) {
    ZH_ASSIGN_OR_RETURN(auto e, GetEntry(loc.parent, path.name()));
    if (!e) {
        return PathNotFoundError(path.str());
    }
    return std::move(*e);
}

absl::StatusOr<bool> EmbeddedBackend::Store::StillThere(const Location& loc) {
    if (loc.grandparent == 0) {
        return true;  // container roots are never removed or moved
    }
    ZH_ASSIGN_OR_RETURN(auto e, GetEntry(loc.grandparent, loc.parent_name));
    return e && e->info.id == loc.parent;  // else moved or removed since it was located
}

absl::StatusOr<uint64_t> EmbeddedBackend::Store::PrepareCreate(const Path& path, const Location& loc, uint64_t ids) {
    ZH_RETURN_IF_ERROR(CheckWritableParent(path, loc));
    ZH_ASSIGN_OR_RETURN(auto existing, GetEntry(loc.parent, path.name()));
    if (existing) {
        return EntryExistsError(path);
    }
    return NewIds(ids);
}

absl::Status EmbeddedBackend::Store::CheckWritableParent(const Path& path, const Location& loc) {
    return zerohop::CheckWritableParent(path, loc.parent_type);
}

void EmbeddedBackend::Store::TouchDir(rocksdb::WriteBatch* batch, uint64_t dir, Timestamp now, int subdirs) {
    if (dir != 0) {  // (the namespace's root has no entry: its containers are fixed)
        int64_t ns = now.ToNanos();
        batch->Merge(meta_, embedded::DirStatsKey(dir), embedded::EncodeDirStats({ns, ns, subdirs}));
    }
}

absl::Status EmbeddedBackend::Store::CountSubdirsOnce() {
    std::string marker;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, embedded::kSubdirsCountedKey, &marker);
    if (s.ok()) {
        return absl::OkStatus();
    }
    if (!s.IsNotFound()) {
        return FromRocks(s, "read the subdirectory count marker");
    }
    absl::flat_hash_map<uint64_t, int64_t> counts;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->Seek("D"); it->Valid() && it->key().starts_with("D"); it->Next()) {
        Entry e;
        std::string_view attributes;
        ZH_RETURN_IF_ERROR(embedded::DecodeEntryHeader(ToView(it->value()), &e, &attributes));
        uint64_t parent = 0;
        if (e.is_dir_like() && ByteReader(ToView(it->key()).substr(1)).GetBigEndian64(&parent)) {
            ++counts[parent];
        }
    }
    if (!it->status().ok()) {
        return FromRocks(it->status(), "count subdirectories");
    }
    rocksdb::WriteBatch batch;
    for (const auto& [dir, n] : counts) {
        if (dir != 0) {
            batch.Merge(meta_, embedded::DirStatsKey(dir), embedded::EncodeDirStats({.subdirs = n}));
        }
    }
    batch.Put(meta_, embedded::kSubdirsCountedKey, "");
    return Commit(&batch);
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::InfoOf(const Entry& e) {
    ObjectInfo info = e.info;
    if (info.type == ObjectType::kDirectory) {
        std::string value;
        rocksdb::Status s = db_->Get(read_options_, meta_, embedded::DirStatsKey(info.id), &value);
        if (s.ok()) {
            ZH_ASSIGN_OR_RETURN(auto stats, embedded::DecodeDirStats(value));
            if (stats.mtime_ns != embedded::DirStats::kNoTime) {
                info.mtime = Timestamp::FromNanos(stats.mtime_ns);
            }
            if (stats.ctime_ns != embedded::DirStats::kNoTime) {
                // (the entry's own is later after a rename of the directory)
                info.ctime = std::max(info.ctime, Timestamp::FromNanos(stats.ctime_ns));
            }
            info.subdirs = static_cast<uint64_t>(std::max<int64_t>(stats.subdirs, 0));
        } else if (!s.IsNotFound()) {
            return FromRocks(s, "read directory stats");
        }
    }
    if (info.type == ObjectType::kShard) {
        ShardSlot* slot = Slot(info.id);
        absl::MutexLock lock(&slot->mu);
        ZH_RETURN_IF_ERROR(LoadSlot(info.id, slot));
        info.last_sequence = slot->state.last_sequence;
        info.size = slot->state.last_sequence >= slot->state.first_sequence
                        ? slot->state.last_sequence - slot->state.first_sequence + 1
                        : 0;
        if (slot->state.last_arrival_ns != 0) {
            info.mtime = Timestamp::FromNanos(slot->state.last_arrival_ns);
        }
    }
    return info;
}

absl::Status EmbeddedBackend::Store::CheckCondition(const Path& path, const std::string& condition,
                                                    const std::optional<Entry>& e) {
    return zerohop::CheckCondition(path, condition, e ? std::string_view(e->attributes) : std::string_view(),
                                   e ? &e->info : nullptr);
}

}  // namespace zerohop

// The embedded store: opening, resolution, commits, namespace and object operations.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "embedded/internal/store.h"
#include "backend/rules.h"
#include "expr/expression.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "zerohop/status.h"

namespace zerohop {

using embedded::DataKey;
using embedded::EncodeEntry;
using embedded::ToSlice;
using embedded::ToView;
using embedded::EntryKey;
using embedded::EntryPrefix;
using embedded::FileKey;
using embedded::LockMode;
using embedded::LockSet;

namespace {

constexpr uint64_t kIdReserveBlock = 4096;
constexpr size_t kFileChunk = 1 << 20;


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

absl::Status NotDirectory(const Path& p) {
    return absl::FailedPreconditionError(absl::StrFormat("%s is not a directory", p.str()));
}

}  // namespace

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

absl::StatusOr<std::unique_ptr<EmbeddedBackend::Store>> EmbeddedBackend::Store::Open(EmbeddedOptions options) {
    if (options.dir.empty()) {
        return absl::InvalidArgumentError("embedded store: `dir` is empty; give the directory to keep data in");
    }
    for (const std::string& c : options.containers) {
        if (absl::Status s = Path::ValidateComponent(c); !s.ok()) {
            return absl::InvalidArgumentError(absl::StrFormat("embedded store: container \"%s\": %s", c, s.message()));
        }
    }
    std::unique_ptr<Store> store(new Store(std::move(options)));
    for (const std::string& d : {store->options_.dir, store->options_.dir + "/objects"}) {
        if (::mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) {
            return ErrnoStatus(errno, absl::StrFormat("embedded store: cannot create %s", d));
        }
    }
    if (absl::Status s = store->OpenDb(); !s.ok()) {
        return s;
    }
    if (absl::Status s = store->CreateContainers(); !s.ok()) {
        return s;
    }
    if (absl::Status s = store->CollectOrphanFiles(); !s.ok()) {
        return s;
    }
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

    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, cf}, {"data", cf}, {"records", cf}};
    rocksdb::DB* raw = nullptr;
    rocksdb::DBOptions dbopts(opts);
    rocksdb::Status s = rocksdb::DB::Open(dbopts, options_.dir + "/db", cfs, &handles_, &raw);
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
        auto existing = GetEntry(0, c);
        if (!existing.ok()) {
            return existing.status();
        }
        if (*existing) {
            container_roots_[c] = (*existing)->info.id;
            continue;
        }
        auto id = NewId();
        if (!id.ok()) {
            return id.status();
        }
        Entry e = embedded::NewEntry(ObjectType::kDirectory, *id, 0755, 0, 0, Now());
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(0, c), EncodeEntry(e));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        container_roots_[c] = *id;
    }
    // Containers created by an earlier configuration stay reachable.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    std::string prefix = EntryPrefix(0);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        auto e = embedded::DecodeEntry(ToView(it->value()));
        if (!e.ok()) {
            return e.status();
        }
        container_roots_.emplace(std::string(ToView(it->key()).substr(prefix.size())), e->info.id);
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

absl::Status EmbeddedBackend::Store::Commit(rocksdb::WriteBatch* batch) {
    if (needs_resume_.load(std::memory_order_relaxed)) {
        // After a full disk RocksDB refuses writes until resumed; space may be back now.
        if (db_->Resume().ok()) {
            needs_resume_ = false;
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
    rocksdb::Status s = db_->FlushWAL(/*sync=*/true);
    if (!s.ok()) {
        return FromRocks(s, "sync WAL");
    }
    // Object files are fdatasync'ed when written with sync_writes; otherwise syncfs covers them.
    shmring::UniqueFd dir(::open((options_.dir + "/objects").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.valid() && ::syncfs(dir.get()) != 0) {
        return ErrnoStatus(errno, "sync object files");
    }
    return absl::OkStatus();
}

absl::Status EmbeddedBackend::Store::Flush() {
    rocksdb::FlushOptions fo;
    fo.wait = true;
    return FromRocks(db_->Flush(fo, handles_), "flush");
}

// ---- resolution -----------------------------------------------------------------------

absl::StatusOr<std::optional<embedded::Entry>> EmbeddedBackend::Store::GetEntry(uint64_t parent,
                                                                                 std::string_view name) {
    std::string value;
    embedded::EntryKeyBuffer key(parent, name);
    auto found = ReadEntry(key.view(), &value);
    if (!found.ok()) {
        return found.status();
    }
    if (!*found) {
        return std::optional<Entry>();
    }
    auto e = embedded::DecodeEntry(value);
    if (!e.ok()) {
        return e.status();
    }
    return std::optional<Entry>(std::move(*e));
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
        auto e = GetEntry(loc.parent, name);
        if (!e.ok()) {
            return e.status();
        }
        if (!*e) {
            return ParentNotFoundError(path.str());
        }
        if (!(*e)->is_dir_like()) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s: %s is not a directory", path.str(), path.Prefix(i + 1)));
        }
        loc.grandparent = loc.parent;
        loc.parent = (*e)->info.id;
        loc.parent_type = (*e)->info.type;
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
        auto e = GetEntry(at, path.component(i));
        if (!e.ok()) {
            return e.status();
        }
        if (!*e) {
            return false;
        }
        at = (*e)->info.id;
    }
}

absl::Status EmbeddedBackend::Store::GetEntryView(const Path& path, uint64_t parent, std::string* value, Entry* e,
                                                  std::string_view* attributes) {
    embedded::EntryKeyBuffer key(parent, path.name());
    auto found = ReadEntry(key.view(), value);
    if (!found.ok()) {
        return found.status();
    }
    if (!*found) {
        return PathNotFoundError(path.str());
    }
    return embedded::DecodeEntryHeader(*value, e, attributes);
}

absl::StatusOr<embedded::Entry> EmbeddedBackend::Store::GetExisting(const Path& path, const Location& loc) {
    auto e = GetEntry(loc.parent, path.name());
    if (!e.ok()) {
        return e.status();
    }
    if (!*e) {
        return PathNotFoundError(path.str());
    }
    return std::move(**e);
}

absl::StatusOr<bool> EmbeddedBackend::Store::StillThere(const Location& loc) {
    if (loc.grandparent == 0) {
        return true;  // container roots are never removed or moved
    }
    auto e = GetEntry(loc.grandparent, loc.parent_name);
    if (!e.ok()) {
        return e.status();
    }
    return *e && (*e)->info.id == loc.parent;  // else moved or removed since it was located
}

absl::StatusOr<uint64_t> EmbeddedBackend::Store::PrepareCreate(const Path& path, const Location& loc, uint64_t ids) {
    if (absl::Status s = CheckWritableParent(path, loc); !s.ok()) {
        return s;
    }
    auto existing = GetEntry(loc.parent, path.name());
    if (!existing.ok()) {
        return existing.status();
    }
    if (*existing) {
        return absl::AlreadyExistsError(absl::StrFormat("%s already exists", path.str()));
    }
    return NewIds(ids);
}

absl::Status EmbeddedBackend::Store::CheckWritableParent(const Path& path, const Location& loc) {
    if (loc.parent_type != ObjectType::kDirectory) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%s: %s is a stream; its shards are fixed at creation", path.str(), path.Parent().str()));
    }
    return absl::OkStatus();
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::InfoOf(const Entry& e) {
    ObjectInfo info = e.info;
    if (info.type == ObjectType::kShard) {
        ShardSlot* slot = Slot(info.id);
        absl::MutexLock lock(&slot->mu);
        if (absl::Status s = LoadSlot(info.id, slot); !s.ok()) {
            return s;
        }
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

// ---- namespace ------------------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> EmbeddedBackend::Store::ListContainers() {
    std::vector<std::string> out;
    out.reserve(container_roots_.size());
    for (const auto& [name, id] : container_roots_) {
        out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Stat(const Path& path) {
    if (path.is_root()) {
        ObjectInfo info;
        info.type = ObjectType::kDirectory;
        info.mode = 0755;
        return info;
    }
    auto loc = Locate(path);
    if (!loc.ok()) {
        return loc.status();
    }
    auto e = GetExisting(path, *loc);
    if (!e.ok()) {
        return e.status();
    }
    return InfoOf(*e);
}

absl::StatusOr<ListResult> EmbeddedBackend::Store::List(const ListRequest& req) {
    ListResult out;
    uint32_t limit = std::clamp<uint32_t>(req.limit, 1, kMaxListLimit);
    if (req.path.is_root()) {
        auto names = ListContainers();
        for (const std::string& n : *names) {
            if (n.compare(0, req.prefix.size(), req.prefix) != 0 || (!req.marker.empty() && n <= req.marker)) {
                continue;
            }
            if (out.entries.size() == limit) {
                out.truncated = true;
                break;
            }
            auto info = Stat(*Path().Child(n));
            if (!info.ok()) {
                return info.status();
            }
            out.entries.push_back(DirEntry{n, *info, {}});
            out.next_marker = n;
        }
        return out;
    }
    auto loc = Locate(req.path);
    if (!loc.ok()) {
        return loc.status();
    }
    auto dir = GetExisting(req.path, *loc);
    if (!dir.ok()) {
        return dir.status();
    }
    if (!dir->is_dir_like()) {
        return NotDirectory(req.path);
    }
    std::string prefix = EntryPrefix(dir->info.id, req.prefix);
    size_t name_at = EntryPrefix(dir->info.id).size();
    std::string start = prefix;
    if (!req.marker.empty()) {
        std::string after = EntryKey(dir->info.id, req.marker);
        after.push_back('\0');
        start = std::max(start, after);
    }
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->Seek(start); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        if (out.entries.size() == limit) {
            out.truncated = true;
            break;
        }
        auto e = embedded::DecodeEntry(ToView(it->value()));
        if (!e.ok()) {
            return e.status();
        }
        DirEntry de;
        de.name = std::string(ToView(it->key()).substr(name_at));
        auto info = InfoOf(*e);
        if (!info.ok()) {
            return info.status();
        }
        de.info = *info;
        if (req.with_attributes) {
            auto attrs = DecodeAttributes(e->attributes);
            if (!attrs.ok()) {
                return attrs.status();
            }
            de.attributes = std::move(*attrs);
        }
        out.next_marker = de.name;
        out.entries.push_back(std::move(de));
    }
    if (!it->status().ok()) {
        return FromRocks(it->status(), "list");
    }
    return out;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Mkdir(const MkdirRequest& req) {
    if (req.path.depth() == 1) {
        if (container_roots_.contains(absl::string_view(req.path.container().data(), req.path.container().size()))) {
            return absl::AlreadyExistsError(absl::StrFormat("%s: container exists", req.path.str()));
        }
    }
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        auto id = PrepareCreate(req.path, loc, 1);
        if (!id.ok()) {
            return id.status();
        }
        Entry e = embedded::NewEntry(ObjectType::kDirectory, *id, req.mode, req.caller.uid, req.caller.gid, Now());
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        return e.info;
    });
}

absl::Status EmbeddedBackend::Store::Rmdir(const Path& path) {
    return WithEntryLocked(path, [&](const Location& loc) -> absl::Status {
        auto e = GetExisting(path, loc);
        if (!e.ok()) {
            return e.status();
        }
        if (e->info.type == ObjectType::kStream) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s is a stream; remove it with delete_stream", path.str()));
        }
        if (e->info.type != ObjectType::kDirectory) {
            return NotDirectory(path);
        }
        // Creates inside this directory hold its entry shared, so it stays empty while we hold it.
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
        std::string prefix = EntryPrefix(e->info.id);
        it->Seek(prefix);
        if (it->Valid() && it->key().starts_with(prefix)) {
            return absl::FailedPreconditionError(absl::StrFormat("%s: directory not empty", path.str()));
        }
        if (!it->status().ok()) {
            return FromRocks(it->status(), "rmdir");
        }
        rocksdb::WriteBatch batch;
        batch.Delete(meta_, EntryKey(loc.parent, path.name()));
        absl::Status committed = Commit(&batch);
        if (committed.ok()) {
            dirs_.Invalidate();
        }
        return committed;
    });
}

absl::Status EmbeddedBackend::Store::Rename(const RenameRequest& req) {
    const Path& from = req.from;
    const Path& to = req.to;
    if (from.depth() < 2 || to.depth() < 2) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "rename %s -> %s: containers are configured in the daemon, not renamed", from.str(), to.str()));
    }
    if (from.Contains(to) && from != to) {
        return absl::InvalidArgumentError(
            absl::StrFormat("rename %s -> %s: cannot move a directory inside itself", from.str(), to.str()));
    }
    absl::MutexLock rename_lock(&rename_mu_);
    for (int attempt = 0; attempt < kMaxLocateRetries; ++attempt) {
        auto src_loc = Locate(from);
        if (!src_loc.ok()) {
            return src_loc.status();
        }
        auto dst_loc = Locate(to);
        if (!dst_loc.ok()) {
            return dst_loc.status();
        }
        LockSet locks(&locks_, {{src_loc->parent, from.name(), LockMode::kExclusive},
                                {dst_loc->parent, to.name(), LockMode::kExclusive},
                                {src_loc->grandparent, src_loc->parent_name, LockMode::kShared},
                                {dst_loc->grandparent, dst_loc->parent_name, LockMode::kShared}});
        auto src_there = StillThere(*src_loc);
        auto dst_there = StillThere(*dst_loc);
        if (!src_there.ok()) {
            return src_there.status();
        }
        if (!dst_there.ok()) {
            return dst_there.status();
        }
        if (!*src_there || !*dst_there) {
            continue;
        }
        if (absl::Status s = CheckWritableParent(to, *dst_loc); !s.ok()) {
            return s;
        }
        auto src = GetExisting(from, *src_loc);
        if (!src.ok()) {
            return src.status();
        }
        if (src->info.type == ObjectType::kShard) {
            return absl::FailedPreconditionError(absl::StrFormat("%s is a stream shard; shards cannot move", from.str()));
        }
        if (from == to) {
            return absl::OkStatus();
        }
        // A directory may not move below itself (checked by id: paths may alias through renames).
        if (src->is_dir_like()) {
            auto inside = IsAncestor(src->info.id, to);
            if (!inside.ok()) {
                return inside.status();
            }
            if (*inside) {
                return absl::InvalidArgumentError(
                    absl::StrFormat("rename %s -> %s: cannot move a directory inside itself", from.str(), to.str()));
            }
        }
        auto dst = GetEntry(dst_loc->parent, to.name());
        if (!dst.ok()) {
            return dst.status();
        }
        rocksdb::WriteBatch batch;
        uint64_t replaced_file = 0;
        if (*dst) {
            const Entry& d = **dst;
            if (req.no_replace) {
                return absl::AlreadyExistsError(absl::StrFormat("rename %s -> %s: destination exists", from.str(), to.str()));
            }
            if (d.info.id == src->info.id) {
                return absl::OkStatus();
            }
            // Files replace files; an (empty) directory only a directory; streams nothing.
            bool replaceable = d.is_dir_like()
                                   ? d.info.type == ObjectType::kDirectory && src->info.type == ObjectType::kDirectory
                                   : !src->is_dir_like();
            if (!replaceable) {
                return absl::FailedPreconditionError(absl::StrFormat("rename %s -> %s: cannot replace a %s with a %s",
                                                                     from.str(), to.str(), ObjectTypeName(d.info.type),
                                                                     ObjectTypeName(src->info.type)));
            }
            if (d.info.type == ObjectType::kDirectory) {
                std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
                std::string prefix = EntryPrefix(d.info.id);
                it->Seek(prefix);
                if (it->Valid() && it->key().starts_with(prefix)) {
                    return absl::FailedPreconditionError(
                        absl::StrFormat("rename %s -> %s: destination directory not empty", from.str(), to.str()));
                }
            }
            if (d.info.type == ObjectType::kObject) {
                if (d.data_id != 0) {
                    batch.Delete(meta_, FileKey(d.data_id));
                    replaced_file = d.data_id;
                } else {
                    batch.Delete(data_, DataKey(d.info.id));
                }
            }
        }
        Entry moved = *src;
        moved.info.ctime = Now();
        batch.Delete(meta_, EntryKey(src_loc->parent, from.name()));
        batch.Put(meta_, EntryKey(dst_loc->parent, to.name()), EncodeEntry(moved));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        if (src->is_dir_like() || (*dst && (*dst)->is_dir_like())) {
            dirs_.Invalidate();
        }
        if (replaced_file != 0) {
            RemoveFile(replaced_file);
        }
        return absl::OkStatus();
    }
    return absl::UnavailableError(
        absl::StrFormat("rename %s -> %s: parents kept moving under concurrent renames; retry", from.str(), to.str()));
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Symlink(const SymlinkRequest& req) {
    if (req.target.empty() || req.target.size() > kMaxSymlinkTargetBytes ||
        req.target.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: symlink target must be 1..%d bytes without NUL", req.path.str(), kMaxSymlinkTargetBytes));
    }
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        auto id = PrepareCreate(req.path, loc, 1);
        if (!id.ok()) {
            return id.status();
        }
        Entry e = embedded::NewEntry(ObjectType::kSymlink, *id, 0777, req.caller.uid, req.caller.gid, Now());
        e.info.size = req.target.size();
        e.info.symlink_target = req.target;
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        return e.info;
    });
}

absl::StatusOr<std::string> EmbeddedBackend::Store::Readlink(const Path& path) {
    auto info = Stat(path);
    if (!info.ok()) {
        return info.status();
    }
    if (info->type != ObjectType::kSymlink) {
        return absl::InvalidArgumentError(absl::StrFormat("%s is not a symlink", path.str()));
    }
    return info->symlink_target;
}

absl::Status EmbeddedBackend::Store::Delete(const DeleteRequest& req) {
    uint64_t removed_file = 0;
    absl::Status s = WithEntryLocked(req.path, [&](const Location& loc) -> absl::Status {
        auto e = GetExisting(req.path, loc);
        if (!e.ok()) {
            return e.status();
        }
        switch (e->info.type) {
            case ObjectType::kDirectory:
                return absl::FailedPreconditionError(absl::StrFormat("%s is a directory; use rmdir", req.path.str()));
            case ObjectType::kStream:
                return absl::FailedPreconditionError(
                    absl::StrFormat("%s is a stream; use delete_stream", req.path.str()));
            case ObjectType::kShard:
                return absl::FailedPreconditionError(
                    absl::StrFormat("%s is a stream shard; delete the whole stream", req.path.str()));
            default: break;
        }
        if (absl::Status c = CheckCondition(req.path, req.condition, *e); !c.ok()) {
            return c;
        }
        rocksdb::WriteBatch batch;
        batch.Delete(meta_, EntryKey(loc.parent, req.path.name()));
        if (e->info.type == ObjectType::kObject) {
            if (e->data_id != 0) {
                batch.Delete(meta_, FileKey(e->data_id));
                removed_file = e->data_id;
            } else {
                batch.Delete(data_, DataKey(e->info.id));
            }
        }
        return Commit(&batch);
    });
    if (s.ok() && removed_file != 0) {
        RemoveFile(removed_file);
    }
    return s;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::SetMetadata(const SetMetadataRequest& req) {
    if (absl::Status s = ValidateMetadata(req); !s.ok()) {
        return s;
    }
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        auto e = GetExisting(req.path, loc);
        if (!e.ok()) {
            return e.status();
        }
        ApplyMetadata(req, Now(), &e->info);
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(*e));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        return InfoOf(*e);
    });
}

// ---- object files -------------------------------------------------------------------

std::string EmbeddedBackend::Store::FilePath(uint64_t data_id) const {
    return absl::StrFormat("%s/objects/%016x", options_.dir, data_id);
}

absl::StatusOr<shmring::UniqueFd> EmbeddedBackend::Store::CreateFile(uint64_t* data_id_out) {
    auto id = NewId();
    if (!id.ok()) {
        return id.status();
    }
    uint64_t data_id = *data_id_out = *id;
    shmring::UniqueFd fd(::open(FilePath(data_id).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0640));
    if (!fd.valid()) {
        return ErrnoStatus(errno, absl::StrFormat("create object file %s", FilePath(data_id)));
    }
    return fd;
}

absl::StatusOr<shmring::UniqueFd> EmbeddedBackend::Store::OpenFile(uint64_t data_id, int flags) {
    shmring::UniqueFd fd(::open(FilePath(data_id).c_str(), flags | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOENT) {
            return absl::DataLossError(absl::StrFormat("embedded store: object file %s is missing", FilePath(data_id)));
        }
        return ErrnoStatus(errno, absl::StrFormat("open object file %s", FilePath(data_id)));
    }
    return fd;
}

absl::Status EmbeddedBackend::Store::WriteFully(int fd, const char* data, size_t n, uint64_t offset,
                                                uint64_t data_id) {
    while (n > 0) {
        ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ErrnoStatus(errno, absl::StrFormat("write object file %s", FilePath(data_id)));
        }
        data += w;
        n -= static_cast<size_t>(w);
        offset += static_cast<uint64_t>(w);
    }
    return absl::OkStatus();
}

void EmbeddedBackend::Store::RemoveFile(uint64_t data_id) {
    if (reaper_) {
        reaper_([path = FilePath(data_id)] { ::unlink(path.c_str()); });
    } else {
        ::unlink(FilePath(data_id).c_str());
    }
}

absl::StatusOr<std::string> EmbeddedBackend::Store::ReadInline(uint64_t object_id) {
    std::string bytes;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), data_, ToSlice(DataKey(object_id)), &bytes);
    if (s.IsNotFound()) {
        return std::string();
    }
    if (!s.ok()) {
        return FromRocks(s, "read object bytes");
    }
    return bytes;
}

// ---- objects --------------------------------------------------------------------------

absl::StatusOr<EmbeddedBackend::Store::ObjectRead> EmbeddedBackend::Store::OpenObject(const GetObjectRequest& req) {
    auto loc = Locate(req.path);
    if (!loc.ok()) {
        return loc.status();
    }
    ObjectRead out;
    out.path = req.path;
    {
        // Shared: the entry and its bytes are read as one version.
        LockSet locks(&locks_, {{loc->parent, req.path.name(), LockMode::kShared}});
        auto e = GetExisting(req.path, *loc);
        if (!e.ok()) {
            return e.status();
        }
        if (e->info.type == ObjectType::kSymlink) {
            return absl::FailedPreconditionError(absl::StrFormat(
                "%s is a symlink to %s; read it with readlink", req.path.str(), e->info.symlink_target));
        }
        if (e->info.type != ObjectType::kObject) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s is a %s, not an object", req.path.str(), ObjectTypeName(e->info.type)));
        }
        out.info = e->info;
        if (e->data_id == 0) {
            auto bytes = ReadInline(e->info.id);
            if (!bytes.ok()) {
                return bytes.status();
            }
            out.inline_bytes = std::move(*bytes);
        } else {
            // An open fd keeps this version readable even if a put replaces it meanwhile.
            auto f = OpenFile(e->data_id, O_RDONLY);
            if (!f.ok()) {
                return f.status();
            }
            out.fd = std::move(*f);
        }
    }
    uint64_t size = out.info.size;
    out.begin = std::min(req.offset, size);
    out.end = out.begin + std::min(req.length, size - out.begin);
    return out;
}

absl::StatusOr<GetObjectResult> EmbeddedBackend::Store::ReadObject(const ObjectRead& read, DataSink* sink) {
    GetObjectResult out;
    out.info = read.info;
    out.bytes = read.end - read.begin;
    if (!read.fd.valid()) {
        std::string_view all(read.inline_bytes);
        std::string_view part = read.begin < all.size() ? all.substr(read.begin, read.end - read.begin)
                                                        : std::string_view();
        if (absl::Status s = sink->Write(part); !s.ok()) {
            return s;
        }
        out.bytes = part.size();
        return out;
    }
    // Straight into the sink's memory when it has some (the daemon's shared region).
    char* placed = sink->Placement();
    std::string buf;
    if (placed == nullptr) {
        buf.resize(static_cast<size_t>(std::min<uint64_t>(kFileChunk, std::max<uint64_t>(read.end - read.begin, 1))));
    }
    uint64_t pos = read.begin;
    while (pos < read.end) {
        char* into = placed != nullptr ? placed + (pos - read.begin) : buf.data();
        size_t want = static_cast<size_t>(placed != nullptr ? read.end - pos : std::min<uint64_t>(buf.size(), read.end - pos));
        ssize_t r = ::pread(read.fd.get(), into, want, static_cast<off_t>(pos));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ErrnoStatus(errno, absl::StrFormat("read %s", read.path.str()));
        }
        if (r == 0) {
            // A short file (after a failed write or truncate) reads as zeros up to the size.
            std::memset(into, 0, want);
            r = static_cast<ssize_t>(want);
        }
        if (placed == nullptr) {
            if (absl::Status s = sink->Write(std::string_view(into, static_cast<size_t>(r))); !s.ok()) {
                return s;
            }
        }
        pos += static_cast<uint64_t>(r);
    }
    return out;
}

absl::StatusOr<GetObjectResult> EmbeddedBackend::Store::GetObject(const GetObjectRequest& req, DataSink* sink) {
    if (sink == nullptr) {
        return absl::InvalidArgumentError("get: no sink for the bytes");
    }
    auto read = OpenObject(req);
    if (!read.ok()) {
        return read.status();
    }
    if (absl::Status s = sink->Expect(read->end - read->begin); !s.ok()) {
        return s;
    }
    return ReadObject(*read, sink);
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::PutObject(const PutObjectRequest& req, DataSource* data) {
    if (absl::Status s = ValidateAttributeNames(req.path, req.attributes); !s.ok()) {
        return s;
    }
    auto attributes = EncodeItemAttributes(req.path, req.attributes);
    if (!attributes.ok()) {
        return attributes.status();
    }
    std::string encoded = std::move(*attributes);
    if (req.path.depth() < 2) {
        return absl::FailedPreconditionError(absl::StrFormat("%s: not an object path", req.path.str()));
    }
    // Stream the bytes in before taking any lock: small ones into memory, large ones into a
    // new file that becomes visible only when the entry pointing at it commits.
    std::string head;
    uint64_t size = 0;
    uint64_t data_id = 0;
    shmring::UniqueFd fd;
    auto discard = [&] {
        if (data_id != 0) {
            RemoveFile(data_id);
        }
    };
    if (data != nullptr) {
        std::string chunk(kFileChunk, '\0');
        while (true) {
            size_t cap = fd.valid() ? chunk.size() : options_.inline_max_bytes + 1 - head.size();
            char* dst = fd.valid() ? chunk.data() : nullptr;
            if (!fd.valid()) {
                size_t old = head.size();
                head.resize(old + cap);
                dst = head.data() + old;
            }
            auto n = data->Read(dst, cap);
            if (!fd.valid()) {
                head.resize(head.size() - cap + (n.ok() ? *n : 0));
            }
            if (!n.ok()) {
                discard();
                return n.status();
            }
            if (*n == 0) {
                break;
            }
            if (fd.valid()) {
                if (absl::Status s = WriteFully(fd.get(), chunk.data(), *n, size, data_id); !s.ok()) {
                    discard();
                    return s;
                }
            }
            size += *n;
            if (size > kMaxObjectBytes) {
                discard();
                return absl::InvalidArgumentError(
                    absl::StrFormat("%s: object larger than the limit of %d bytes", req.path.str(), kMaxObjectBytes));
            }
            if (!fd.valid() && head.size() > options_.inline_max_bytes) {
                auto f = CreateFile(&data_id);
                if (!f.ok()) {
                    return f.status();
                }
                fd = std::move(*f);
                if (absl::Status s = WriteFully(fd.get(), head.data(), head.size(), 0, data_id); !s.ok()) {
                    discard();
                    return s;
                }
                head.clear();
                head.shrink_to_fit();
            }
        }
        if (fd.valid() && options_.sync_writes && ::fdatasync(fd.get()) != 0) {
            discard();
            return ErrnoStatus(errno, absl::StrFormat("sync %s", req.path.str()));
        }
    }
    uint64_t replaced_file = 0;
    auto result = WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        if (absl::Status s = CheckWritableParent(req.path, loc); !s.ok()) {
            return s;
        }
        auto old = GetEntry(loc.parent, req.path.name());
        if (!old.ok()) {
            return old.status();
        }
        if (*old && (*old)->info.type != ObjectType::kObject) {
            return absl::FailedPreconditionError(absl::StrFormat("%s is a %s; an object cannot replace it",
                                                                 req.path.str(), ObjectTypeName((*old)->info.type)));
        }
        if (absl::Status s = CheckCondition(req.path, req.condition, *old); !s.ok()) {
            return s;
        }
        Entry e;
        Timestamp now = Now();
        if (*old) {
            e.info = (*old)->info;
        } else {
            auto id = NewId();
            if (!id.ok()) {
                return id.status();
            }
            e = embedded::NewEntry(ObjectType::kObject, *id, 0644, req.caller.uid, req.caller.gid, now);
        }
        if (req.mode) {
            e.info.mode = *req.mode & 07777;
        }
        e.info.type = ObjectType::kObject;
        e.info.size = size;
        e.info.mtime = e.info.ctime = now;
        e.data_id = data_id;
        e.attributes = encoded;
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        if (data_id == 0) {
            batch.Put(data_, DataKey(e.info.id), head);
        } else {
            batch.Delete(data_, DataKey(e.info.id));
            batch.Put(meta_, FileKey(data_id), "");
        }
        if (*old && (*old)->data_id != 0) {
            batch.Delete(meta_, FileKey((*old)->data_id));
            replaced_file = (*old)->data_id;
        }
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        return e.info;
    });
    if (!result.ok()) {
        discard();
        return result;
    }
    if (replaced_file != 0) {
        RemoveFile(replaced_file);
    }
    return result;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::WriteAt(const Path& path, std::optional<uint64_t> offset,
                                                           std::string_view data) {
    uint64_t new_file = 0;
    auto result = WithEntryLocked(path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        auto e = GetExisting(path, loc);
        if (!e.ok()) {
            return e.status();
        }
        if (e->info.type != ObjectType::kObject) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s is a %s, not an object", path.str(), ObjectTypeName(e->info.type)));
        }
        uint64_t off = offset.value_or(e->info.size);
        if (off > kMaxObjectBytes || data.size() > kMaxObjectBytes - off) {
            return absl::InvalidArgumentError(
                absl::StrFormat("%s: write past the object size limit of %d bytes", path.str(), kMaxObjectBytes));
        }
        uint64_t end = off + data.size();
        uint64_t new_size = std::max(e->info.size, end);
        rocksdb::WriteBatch batch;
        if (e->data_id == 0 && new_size <= options_.inline_max_bytes) {
            auto bytes = ReadInline(e->info.id);
            if (!bytes.ok()) {
                return bytes.status();
            }
            bytes->resize(static_cast<size_t>(new_size), '\0');
            if (!data.empty()) {
                std::memcpy(bytes->data() + off, data.data(), data.size());
            }
            batch.Put(data_, DataKey(e->info.id), *bytes);
        } else if (e->data_id == 0) {
            // Outgrows inline storage: move to a file.
            auto bytes = ReadInline(e->info.id);
            if (!bytes.ok()) {
                return bytes.status();
            }
            auto fd = CreateFile(&new_file);
            if (!fd.ok()) {
                return fd.status();
            }
            bytes->resize(static_cast<size_t>(e->info.size), '\0');
            if (absl::Status s = WriteFully(fd->get(), bytes->data(), bytes->size(), 0, new_file); !s.ok()) {
                return s;
            }
            if (absl::Status s = WriteFully(fd->get(), data.data(), data.size(), off, new_file); !s.ok()) {
                return s;
            }
            if (::ftruncate(fd->get(), static_cast<off_t>(new_size)) != 0) {
                return ErrnoStatus(errno, absl::StrFormat("extend %s", path.str()));
            }
            if (options_.sync_writes && ::fdatasync(fd->get()) != 0) {
                return ErrnoStatus(errno, absl::StrFormat("sync %s", path.str()));
            }
            batch.Delete(data_, DataKey(e->info.id));
            batch.Put(meta_, FileKey(new_file), "");
            e->data_id = new_file;
        } else {
            auto fd = OpenFile(e->data_id, O_WRONLY);
            if (!fd.ok()) {
                return fd.status();
            }
            if (absl::Status s = WriteFully(fd->get(), data.data(), data.size(), off, e->data_id); !s.ok()) {
                return s;
            }
            if (options_.sync_writes && ::fdatasync(fd->get()) != 0) {
                return ErrnoStatus(errno, absl::StrFormat("sync %s", path.str()));
            }
        }
        e->info.size = new_size;
        e->info.mtime = e->info.ctime = Now();
        batch.Put(meta_, EntryKey(loc.parent, path.name()), EncodeEntry(*e));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        new_file = 0;  // committed: keep it
        return e->info;
    });
    if (new_file != 0) {
        RemoveFile(new_file);
    }
    return result;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Truncate(const TruncateRequest& req) {
    if (req.size > kMaxObjectBytes) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: size beyond the object size limit of %d bytes", req.path.str(), kMaxObjectBytes));
    }
    uint64_t new_file = 0;
    auto result = WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        auto e = GetExisting(req.path, loc);
        if (!e.ok()) {
            return e.status();
        }
        if (e->info.type != ObjectType::kObject) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s is a %s, not an object", req.path.str(), ObjectTypeName(e->info.type)));
        }
        rocksdb::WriteBatch batch;
        if (e->data_id == 0 && req.size <= options_.inline_max_bytes) {
            auto bytes = ReadInline(e->info.id);
            if (!bytes.ok()) {
                return bytes.status();
            }
            bytes->resize(static_cast<size_t>(req.size), '\0');
            batch.Put(data_, DataKey(e->info.id), *bytes);
        } else {
            uint64_t data_id = e->data_id;
            shmring::UniqueFd fd;
            if (data_id == 0) {
                auto bytes = ReadInline(e->info.id);
                if (!bytes.ok()) {
                    return bytes.status();
                }
                auto f = CreateFile(&data_id);
                if (!f.ok()) {
                    return f.status();
                }
                new_file = data_id;
                fd = std::move(*f);
                if (absl::Status s = WriteFully(fd.get(), bytes->data(), bytes->size(), 0, data_id); !s.ok()) {
                    return s;
                }
                batch.Delete(data_, DataKey(e->info.id));
                batch.Put(meta_, FileKey(data_id), "");
                e->data_id = data_id;
            } else {
                auto f = OpenFile(data_id, O_WRONLY);
                if (!f.ok()) {
                    return f.status();
                }
                fd = std::move(*f);
            }
            if (::ftruncate(fd.get(), static_cast<off_t>(req.size)) != 0) {
                return ErrnoStatus(errno, absl::StrFormat("truncate %s", req.path.str()));
            }
        }
        e->info.size = req.size;
        e->info.mtime = e->info.ctime = Now();
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(*e));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        new_file = 0;
        return e->info;
    });
    if (new_file != 0) {
        RemoveFile(new_file);
    }
    return result;
}

}  // namespace zerohop

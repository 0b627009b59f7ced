#pragma once
// The synchronous engine behind EmbeddedBackend. Its parts: store.cc (opening, ids,
// commits, resolving paths), namespace.cc, objects.cc, items.cc, streams.cc.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "embedded/embedded_backend.h"
#include "embedded/internal/dir_cache.h"
#include "embedded/internal/entry_cache.h"
#include "embedded/internal/lock_table.h"
#include "embedded/internal/records.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "shmring/unique_fd.h"

namespace zerohop {

namespace embedded {
inline rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
inline std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }
// An errno of a file operation as a status: ResourceExhausted for a full disk, NotFound...
absl::Status ErrnoStatus(int err, std::string_view what);
}  // namespace embedded

class EmbeddedBackend::Store {
public:
    // `read_only`: reads only (RocksDB's read-only open: nothing is written, not even the
    // log's recovery), for serving while the disk refuses writes.
    static absl::StatusOr<std::unique_ptr<Store>> Open(EmbeddedOptions options, bool read_only = false);
    // Whether it takes no more writes (read-only, or after an error RocksDB cannot resume
    // from): EmbeddedBackend then reopens it.
    bool stopped() const { return read_only_ || stopped_.load(std::memory_order_relaxed); }
    ~Store();

    // Every operation, synchronously (ZH_SYNC_DECLARATION: backend/backend.h). Defined in
    // namespace.cc, objects.cc, items.cc, streams.cc; ListContainers and Sync in store.cc.
    ZH_BACKEND_OPERATIONS(ZH_SYNC_DECLARATION)
    // open_object_file: the entry's info and, for an object in a file, a read-only
    // descriptor of it (objects.cc).
    absl::StatusOr<ObjectFile> OpenObjectFile(const Path& path);

    // A get in two steps: OpenObject pins the version and the range (quick), ReadObject
    // copies its bytes into a sink that has Expect()ed them (long for large objects).
    struct ObjectRead {
        Path path;
        ObjectInfo info;
        std::string inline_bytes;  // inline objects
        shmring::UniqueFd fd;      // file-backed ones
        uint64_t begin = 0, end = 0;
    };
    absl::StatusOr<ObjectRead> OpenObject(const GetObjectRequest& req);
    absl::StatusOr<GetObjectResult> ReadObject(const ObjectRead& read, DataSink* sink);
    // Where unlinks of unreferenced object files go (see RemoveFile); set once, before use.
    void SetFileReaper(std::function<void(absl::AnyInvocable<void() &&>)> reaper) { reaper_ = std::move(reaper); }
    // Writes at `offset`, or at the end when `offset` is empty (append).
    absl::StatusOr<ObjectInfo> WriteAt(const Path& path, std::optional<uint64_t> offset, std::string_view data);

    // Reclaims the space of expired stream records.
    absl::Status Maintain();
    absl::Status Flush();

private:
    using Entry = embedded::Entry;
    using ShardState = embedded::ShardState;

    // Where a path's last component lives: the directory `parent`, an entry named
    // `parent_name` (a view into the located path) in `grandparent`.
    struct Location {
        uint64_t grandparent = 0;
        std::string_view parent_name;
        uint64_t parent = 0;
        ObjectType parent_type = ObjectType::kDirectory;
    };

    // A stream shard's state in memory; `mu` orders appends to the shard.
    struct ShardSlot {
        absl::Mutex mu;
        bool loaded = false;
        ShardState state;
    };

    explicit Store(EmbeddedOptions options);
    absl::Status OpenDb();
    absl::Status CreateContainers();
    absl::Status CollectOrphanFiles();
    void MaintenanceLoop();

    Timestamp Now() const { return options_.clock ? options_.clock() : Timestamp::Now(); }
    // `count` consecutive fresh ids; returns the first.
    absl::StatusOr<uint64_t> NewIds(uint64_t count);
    absl::StatusOr<uint64_t> NewId() { return NewIds(1); }

    // Resolution and entries.
    absl::StatusOr<Location> Locate(const Path& path);
    absl::StatusOr<std::optional<Entry>> GetEntry(uint64_t parent, std::string_view name);
    // Reads an entry without copying its attributes: they stay in `value`. NotFound if absent.
    absl::Status GetEntryView(const Path& path, uint64_t parent, std::string* value, Entry* e,
                              std::string_view* attributes);
    // Whether the directory `id` is `path`'s parent or one of its ancestors.
    absl::StatusOr<bool> IsAncestor(uint64_t id, const Path& path);
    absl::StatusOr<Entry> GetExisting(const Path& path, const Location& loc);
    // An object sized by its file (Entry::sized_by_file): its size and times from the file.
    // GetEntry applies it; so must anything that decodes entries itself.
    absl::Status SizeByFile(Entry* e);
    // Sets an object file's mtime (an object sized by its file takes its times from it).
    absl::Status StampFile(int fd, Timestamp mtime, const Path& path);
    absl::Status StampFile(uint64_t data_id, Timestamp mtime, const Path& path);
    // Whether `loc.parent` is still the entry it was when located (after taking locks).
    absl::StatusOr<bool> StillThere(const Location& loc);
    absl::StatusOr<ObjectInfo> InfoOf(const Entry& e);
    absl::Status CheckCondition(const Path& path, const std::string& condition, const std::optional<Entry>& e);
    absl::Status CheckWritableParent(const Path& path, const Location& loc);
    // An entry was added to or removed from the directory `dir` at `now`, `subdirs` the
    // change of its count of directories and streams: a merge operand on its "T" record, in
    // the change's batch (InfoOf reads the record over the entry).
    void TouchDir(rocksdb::WriteBatch* batch, uint64_t dir, Timestamp now, int subdirs = 0);
    // Stores made before directories counted their subdirectories: counted once, at open.
    absl::Status CountSubdirsOnce();
    // For a create: the parent takes new entries and `path` is free; then `ids` fresh ids.
    absl::StatusOr<uint64_t> PrepareCreate(const Path& path, const Location& loc, uint64_t ids);

    // Runs `body(loc)` with the entry of `path` locked for change and its parent held, retrying
    // when a concurrent rename moves the parent between lookup and lock.
    template <typename Body>
    auto WithEntryLocked(const Path& path, Body&& body) -> decltype(body(std::declval<const Location&>()));

    absl::Status CheckTakesWrites() const;
    absl::Status Commit(rocksdb::WriteBatch* batch);
    // Reads the entry key into `value` through the entry cache; false if absent.
    absl::StatusOr<bool> ReadEntry(std::string_view key, std::string* value);
    absl::Status FromRocks(const rocksdb::Status& s, std::string_view what);

    // Object files.
    std::string FilePath(uint64_t data_id) const;
    static std::string FileName(uint64_t data_id);  // in objects/
    // A new object file under a fresh data id (stored in *data_id, also on failure to create).
    absl::StatusOr<shmring::UniqueFd> CreateFile(uint64_t* data_id);
    absl::StatusOr<shmring::UniqueFd> OpenFile(uint64_t data_id, int flags);
    absl::Status WriteFully(int fd, const char* data, size_t n, uint64_t offset, uint64_t data_id);
    // Unlinks an object file that nothing refers to any more: through the reaper when one
    // is set (the unlink of a large file is slow, and the change is already committed),
    // else here. A crash before it runs leaves an orphan that Open() removes.
    void RemoveFile(uint64_t data_id);
    // With sync_writes: makes an object file's bytes durable and, for a file `created` by
    // this write, its name too, before the entry that points at it commits.
    absl::Status SyncFile(int fd, bool created, const Path& path);
    // Before an object file grows with a gap past the entry's `size`, cuts whatever lies
    // there (the tail of a shrink whose cut was lost), so that the gap reads as zeros.
    absl::Status OpenGap(int fd, uint64_t size, const Path& path);
    static ObjectFileCalls* SystemFileCalls();
    std::function<void(absl::AnyInvocable<void() &&>)> reaper_;
    ObjectFileCalls* calls_ = nullptr;  // options_.object_file_calls, else the system's
    shmring::UniqueFd objects_dir_;
    absl::StatusOr<std::string> ReadInline(uint64_t object_id);

    // Items.
    absl::StatusOr<ObjectInfo> WriteItem(const Path& path, const Caller& caller,
                                         const std::function<absl::Status(const std::optional<Entry>& old,
                                                                          AttributeMap* attrs)>& change);

    // Streams.
    absl::StatusOr<Entry> GetStream(const Path& path);
    ShardSlot* Slot(uint64_t shard_id);
    absl::Status LoadSlot(uint64_t shard_id, ShardSlot* slot);
    absl::StatusOr<uint64_t> FirstRetained(uint64_t shard_id, const ShardState& st);
    absl::StatusOr<uint64_t> ShardIdOf(const Entry& stream, uint32_t shard);
    // A shard of the stream at `path`, with a copy of its state and its first retained record.
    struct OpenedShard {
        uint64_t id = 0;
        ShardState state;
        uint64_t first_retained = 0;
    };
    absl::StatusOr<OpenedShard> OpenShard(const Path& path, uint32_t shard);
    absl::Status ReclaimShard(uint64_t shard_id);

    EmbeddedOptions options_;
    std::unique_ptr<rocksdb::Env> env_;  // over options_.file_system, when given; outlives db_
    std::unique_ptr<rocksdb::DB> db_;
    rocksdb::ColumnFamilyHandle* meta_ = nullptr;
    rocksdb::ColumnFamilyHandle* data_ = nullptr;
    rocksdb::ColumnFamilyHandle* records_ = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles_;
    rocksdb::WriteOptions write_options_;
    rocksdb::ReadOptions read_options_;

    embedded::LockTable locks_;
    embedded::DirCache dirs_;
    embedded::EntryCache entries_;
    absl::Mutex rename_mu_;  // renames run one at a time, so cycle checks see a still tree

    absl::Mutex id_mu_;
    uint64_t next_id_ ABSL_GUARDED_BY(id_mu_) = 0;
    uint64_t reserved_id_ ABSL_GUARDED_BY(id_mu_) = 0;

    absl::flat_hash_map<std::string, uint64_t> container_roots_;  // fixed after Open

    absl::Mutex shards_mu_;
    absl::flat_hash_map<uint64_t, std::unique_ptr<ShardSlot>> shards_ ABSL_GUARDED_BY(shards_mu_);
    std::atomic<uint64_t> round_robin_{0};

    std::atomic<bool> needs_resume_{false};
    std::atomic<bool> stopped_{false};
    bool read_only_ = false;

    absl::Mutex stop_mu_;
    bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
    std::thread maintenance_;
};

inline constexpr int kMaxLocateRetries = 16;

template <typename Body>
auto EmbeddedBackend::Store::WithEntryLocked(const Path& path, Body&& body)
    -> decltype(body(std::declval<const Location&>())) {
    ZH_RETURN_IF_ERROR(CheckBelowContainer(path));
    for (int attempt = 0; attempt < kMaxLocateRetries; ++attempt) {
        ZH_ASSIGN_OR_RETURN(auto loc, Locate(path));
        embedded::LockSet locks(&locks_, {{loc.parent, path.name(), embedded::LockMode::kExclusive},
                                          {loc.grandparent, loc.parent_name, embedded::LockMode::kShared}});
        ZH_ASSIGN_OR_RETURN(auto there, StillThere(loc));
        if (there) {
            return body(loc);
        }
    }
    return absl::UnavailableError(
        absl::StrFormat("%s: the parent directory kept moving under concurrent renames; retry", path.str()));
}

}  // namespace zerohop

#pragma once
// The redis backend's engine. Each operation of RedisBackend runs here: the multi-step ones
// synchronously on the backend's threads, the point reads and item writes as asynchronous
// resolves and commits on the daemon workers' lanes (redis_backend.cc decides which).
//
// Where its parts are:
//   layout.cc     the connection, ids, keys and entries, resolving paths (one script for
//                 many), committing transactions, retrying a lost race
//   namespace.cc  containers, stat, listing, mkdir, rmdir, rename, symlinks, delete, metadata
//   objects.cc    object bytes: inline or in chunks; get, put, write, append, truncate
//   items.cc      get_item, scans, put_item (one script when unconditional), update_item
//   streams.cc    streams, shards, records, seek
//   scripts.cc    the Lua scripts

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "backend/backend.h"
#include "redis/internal/layout.h"
#include "redis/internal/scripts.h"
#include "redis/options.h"
#include "redis/redis_client.h"

namespace zerohop::redis {

class Store {
public:
    explicit Store(RedisBackendOptions o) : options_(std::move(o)) {}

    // Connects, creates the containers' roots if missing, loads the scripts.
    absl::Status Open();
    RedisClient& client() { return *redis_; }

    // Every operation, synchronously (ZH_SYNC_DECLARATION: backend/backend.h), defined in
    // namespace.cc, objects.cc, items.cc and streams.cc (Sync in layout.cc). The asynchronous
    // face (redis_backend.cc) runs them on the backend's threads, or takes the workers'
    // lanes with the asynchronous resolves and commits below.
    ZH_BACKEND_OPERATIONS(ZH_SYNC_DECLARATION)

    // ---- plumbing (layout.cc) ----

    Timestamp Now() const { return options_.clock ? options_.clock() : Timestamp::Now(); }
    std::string Tag(std::string_view container) const;
    static std::string EntryKey(const std::string& tag, uint64_t parent, std::string_view name);
    // The index bucket that holds `name` in directory `dir`, and the prefix of all of them.
    static uint32_t IndexBucket(std::string_view name) { return ShardForPartitionKey(name, kIndexBuckets); }
    static std::string IndexKey(const std::string& tag, uint64_t dir, std::string_view name);
    static std::string IndexPrefix(const std::string& tag, uint64_t dir) { return absl::StrCat(tag, "d:", dir, ":"); }
    static std::string ChunkKey(const std::string& tag, uint64_t data, uint64_t n);

    // A write (not safe to repeat) waits for the replicas the options ask for.
    CommandOptions Options(std::string_view route, bool safe) const;
    static absl::Status Prefixed(const absl::Status& s);

    absl::StatusOr<Reply> Call(std::vector<std::string> argv, const std::string& route, bool safe);

    // A script by its digest; loaded again where a node does not know it (a new primary).
    absl::StatusOr<Reply> Script(const char* source, const std::string& sha, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args, bool safe);

    // `count` consecutive ids, unique in the backend across every daemon: taken from ranges
    // reserved on the server a thousand at a time, so that a create costs no round trip of
    // its own (ids left in a range when the daemon stops are never used).
    absl::StatusOr<uint64_t> NewIds(uint64_t count);

    // The same without a round trip, if the range reserved has them.
    std::optional<uint64_t> TakeIds(uint64_t count);

    // An id taken for an item that turned out to exist: the next new one gets it.
    void GiveBackId(uint64_t id);

    // Where a path is: its container's tag, its parent's id, the directories walked, and
    // the entry if there is one.
    struct Resolved {
        std::string tag;
        uint64_t parent = 0;
        ObjectType parent_type = ObjectType::kDirectory;
        std::vector<std::pair<std::string, std::string>> chain;  // (key, version) of each directory
        std::vector<uint64_t> chain_ids;
        std::optional<Entry> entry;
        std::string key;  // the entry's key (whether or not it exists)

        std::string version() const { return entry ? entry->version : std::string(); }
        // The hash of the parent directory (a container's root, or the last directory walked).
        std::string ParentKey() const { return chain.empty() ? tag + "root" : chain.back().first; }
        void CheckChain(Txn& t) const {
            for (const auto& [k, v] : chain) {
                t.CheckVersion(k, v);
            }
        }
    };

    // The script's arguments for `path`, with the parts of `out` known before asking.
    absl::Status ResolveArgs(const Path& path, Resolved* out, std::vector<std::string>* args);

    absl::StatusOr<Resolved> ParseResolved(const Path& path, Resolved out, const Reply& reply);

    absl::StatusOr<Resolved> Resolve(const Path& path);

    // A script by its digest, without a thread waiting: `done` runs on the thread that runs
    // the calling thread's lane (or on the client's own thread), with error replies turned
    // into statuses. `args` is what follows the digest (numkeys, keys, arguments), kept for a
    // node that does not know the script (NOSCRIPT) and gets it whole.
    using ReplyDone = absl::AnyInvocable<void(absl::StatusOr<Reply>) &&>;
    using ScriptArgs = std::shared_ptr<const std::vector<std::string>>;
    void ScriptAsync(const char* source, const std::string& sha, std::string_view route, bool safe, ScriptArgs args,
                     ReplyDone done, bool by_digest = true);

    // Resolves asked for on one thread between two flushes (a daemon worker's turn): sent as
    // one script per container, so that Redis runs one script for many requests.
    struct ResolveBatch {
        struct Ask {
            Path path;
            Resolved out;
            absl::AnyInvocable<void(absl::StatusOr<Resolved>) &&> done;
        };
        struct Container {
            std::vector<std::string> args;  // the script's: numkeys, the version key, the prefix, paths
            std::vector<Ask> asks;
        };
        std::map<std::string, Container> by_tag;
    };

    // Resolve without a thread waiting (see ScriptAsync for where `done` runs). On a thread
    // with a batch (a worker's, see RedisBackend::JoinLoop) it waits in the batch for the
    // end of the turn.
    void ResolveAsync(const Path& path, absl::AnyInvocable<void(absl::StatusOr<Resolved>) &&> done);

    void FlushResolves(ResolveBatch& batch);

    // This thread's batch for this store, if it has one.
    ResolveBatch* BatchHere();
    static thread_local std::vector<std::pair<const Store*, ResolveBatch*>> tls_batches_;

    // The entry resolved at `path`, in place (no copy), or null when there is none.
    static Entry* Existing(Resolved& r) { return r.entry ? &*r.entry : nullptr; }

    // Commits `t`: true if it applied, false on a conflict (read again and retry).
    absl::StatusOr<bool> Commit(const Txn& t, int* failed_check = nullptr);
    static absl::StatusOr<bool> CommitAnswer(const Reply& r, int* failed_check);

    // Commit without a thread waiting (see ScriptAsync for where `done` runs).
    void CommitAsync(const Txn& t, absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done);

    // An attempt that lost a race (a commit whose reads changed, bytes replaced while read)
    // says so with Retry(); Retrying runs it again, backing off, up to kMaxAttempts times.
    static absl::Status Retry() { return absl::AbortedError(kRetry); }
    static bool IsRetry(const absl::Status& s) { return absl::IsAborted(s) && s.message() == kRetry; }
    static bool IsConflicted(const absl::Status& s) { return absl::IsAborted(s) && s.message() != kRetry; }
    template <typename T>
    static bool IsConflicted(const absl::StatusOr<T>& s) {
        return IsConflicted(s.status());
    }

    template <typename Attempt>
    static auto Retrying(const Path& path, Attempt&& attempt) -> decltype(attempt()) {
        for (int i = 0; i < kMaxAttempts; ++i) {
            auto r = attempt();
            if (!IsRetry(StatusOf(r))) {
                return r;
            }
            if (i > 8) {
                std::this_thread::sleep_for(std::chrono::microseconds(50 * std::min(i, 40)));
            }
        }
        return absl::AbortedError(
            absl::StrFormat("%s: changed by others %d times in a row; try again", path.str(), kMaxAttempts));
    }
    static const absl::Status& StatusOf(const absl::Status& s) { return s; }
    template <typename T>
    static absl::Status StatusOf(const absl::StatusOr<T>& s) {
        return s.status();
    }

    absl::Status CheckWritableParent(const Path& path, const Resolved& r);

    absl::Status CheckCondition(const Path& path, const std::string& condition, const Entry* e);

    // A shard's info carries its records' count and last sequence number.
    absl::StatusOr<ObjectInfo> InfoOf(const Entry& e);

    std::map<std::string, std::string> NewFields(ObjectType type, uint64_t id, const ObjectInfo& info);

    ObjectInfo NewInfo(ObjectType type, uint64_t id, uint32_t mode, const Caller& caller);

    // Creates a fresh entry (mkdir, symlink): fails if anything is there.
    absl::StatusOr<ObjectInfo> Create(const Path& path, ObjectType type, uint32_t mode, const Caller& caller,
                                      const std::function<void(ObjectInfo*, std::map<std::string, std::string>*)>& fill);

    // ---- namespace (namespace.cc) ----

    absl::StatusOr<ObjectInfo> ContainerInfo(std::string_view container);

    // The entries of `names` in directory `dir`, fetched together; absent ones (removed
    // since) are nullopt.
    absl::StatusOr<std::vector<std::optional<Entry>>> FetchEntries(const std::string& tag, uint64_t dir,
                                                                    const std::vector<std::string>& names);

    // Names of a directory in order after `after` (exclusive; "" = from the start), at most
    // `count`, and whether more may follow. One script reads a little more than its share
    // from every index bucket; the merge keeps only names below the first bucket that may
    // have more (so a page can be shorter than `count` with more to come).
    struct NamesPage {
        std::vector<std::string> names;
        bool more = false;
    };
    absl::StatusOr<NamesPage> Names(const std::string& tag, uint64_t dir, const std::string& after,
                                    const std::string& prefix, size_t count);

    // The id of the directory at `path` (a container root or a directory; a stream too
    // unless `table`, which asks for a directory of items).
    absl::StatusOr<uint64_t> DirectoryId(const Path& path, bool table);

    // ---- objects (objects.cc) ----

    // "data-id count" of a chunked object, or nothing.
    static std::optional<std::pair<uint64_t, uint64_t>> Chunks(const std::string& manifest);

    void DropChunks(const std::string& tag, const std::string& manifest);

    // Stores `bytes` for a new version: inline ({"b": bytes}) or in chunks under a new data
    // id ({"c": manifest}), written before the entry that points at them commits.
    absl::StatusOr<std::map<std::string, std::string>> StoreBytes(const std::string& tag, std::string_view bytes);

    // The bytes [begin, end) of an entry's version; Aborted if a chunk is gone (replaced
    // meanwhile: read again).
    absl::StatusOr<std::string> ReadBytes(const std::string& tag, const Entry& e, uint64_t begin, uint64_t end);

    // Writes at `offset` (append when nullopt), or truncates to `truncate`: the bytes of the
    // new version are the old ones changed, stored anew.
    absl::StatusOr<ObjectInfo> Modify(const Path& path, std::optional<uint64_t> offset, std::string_view data,
                                      std::optional<uint64_t> truncate);

    // ---- items (items.cc) ----

    using ItemChange = std::function<absl::Status(const std::optional<Entry>& old, AttributeMap* attrs)>;

    // What writing the item at `path` commits, given what resolving it found: the
    // transaction, and the item's info after it. `new_id` gives the id of a new item.
    absl::StatusOr<std::pair<Txn, ObjectInfo>> PlanItemWrite(const Path& path, const Caller& caller,
                                                             const Resolved& r, const ItemChange& change,
                                                             const std::function<absl::StatusOr<uint64_t>()>& new_id);

    absl::StatusOr<ObjectInfo> WriteItem(const Path& path, const Caller& caller, const ItemChange& change);

    // What a put_item or an update_item does to the item (their requests kept by the change).
    absl::StatusOr<ItemChange> PutChange(std::shared_ptr<const PutItemRequest> req);
    static absl::StatusOr<ItemChange> UpdateChange(std::shared_ptr<const UpdateItemRequest> req);

    // A put_item without a condition in one round trip (kPutItemScript); `done` runs where
    // ScriptAsync says. False, with `done` untouched and nothing sent, when no id is reserved
    // for a new item (the caller then takes the general path, which reserves).
    bool PutItemAsync(std::shared_ptr<const PutItemRequest> req, Done<ObjectInfo>& done);

    absl::StatusOr<ObjectInfo> PutItemAnswer(const Path& path, const Reply& r);

    // ---- streams (streams.cc) ----

    absl::StatusOr<std::pair<Resolved, Entry>> GetStream(const Path& path);

    struct OpenedShard {
        std::string tag;
        std::string records_key;
        uint64_t last = 0;
        uint64_t first_retained = 1;
    };

    absl::StatusOr<OpenedShard> OpenShard(const Path& path, uint32_t shard);

    absl::StatusOr<uint64_t> FirstAtOrAfter(const std::string& key, int64_t t_us, uint64_t lo, uint64_t hi);

private:
    RedisBackendOptions options_;
    std::unique_ptr<RedisClient> redis_;
    std::map<std::string, uint64_t> roots_;  // container -> its root directory's id
    std::string resolve_sha_, commit_sha_, put_item_sha_, names_sha_, records_sha_, seek_sha_;
    std::atomic<uint64_t> round_robin_{0};
    static constexpr uint64_t kIdRange = 1000;
    absl::Mutex ids_mu_;
    uint64_t ids_next_ ABSL_GUARDED_BY(ids_mu_) = 0;
    uint64_t ids_end_ ABSL_GUARDED_BY(ids_mu_) = 0;
    std::vector<uint64_t> given_back_ ABSL_GUARDED_BY(ids_mu_);
};

}  // namespace zerohop::redis

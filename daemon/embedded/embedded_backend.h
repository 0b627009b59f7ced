#pragma once
// The embedded backend: the default store of a node, in one directory on local disk.
//
// RocksDB holds the namespace (directory entries with their attributes), small objects'
// bytes (inline up to `inline_max_bytes`) and stream records; larger objects live in files
// under <dir>/objects/, one per object version, so that a file range can serve them later
// (FUSE passthrough) and a multi-GiB object is never held in memory.
//
// Quick operations (point reads and writes of items and small objects, stat, mkdir, ...)
// run on the caller's thread and complete before the call returns; slow ones (listings and
// scans, reads of large objects, large writes, sync, and with `sync_writes` every write)
// run on the backend's own I/O threads and complete there, so that a caller serving many
// clients is never held up. Thread-safe. Acknowledged writes survive a crash of the process (the RocksDB WAL and
// object files are written before the acknowledgement); with `sync_writes` they also
// survive power loss, and Sync() makes everything acknowledged so far power-loss durable.
//
//   EmbeddedOptions opts;
//   opts.dir = "/var/lib/zerohop";
//   opts.containers = {"users", "logs"};
//   auto backend = EmbeddedBackend::Open(opts);
//   if (!backend.ok()) return backend.status();

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backend/backend.h"
#include "backend/task_pool.h"

namespace zerohop {

struct EmbeddedOptions {
    std::string dir;                      // created if missing
    std::vector<std::string> containers;  // created if missing; others already there are kept
    size_t inline_max_bytes = 64 * 1024;  // objects up to this size live inside RocksDB
    bool sync_writes = false;             // fsync before acknowledging (power-loss durable)
    size_t block_cache_bytes = 256 << 20;
    // Caches point lookups of settled (flushed) entries: a hot get_item skips the SST search.
    size_t row_cache_bytes = 64 << 20;
    // Caches recently read entries in front of RocksDB (hot items skip it); 0 disables.
    size_t entry_cache_bytes = 64 << 20;
    // How often expired stream records are reclaimed in the background; zero: never (call
    // Maintain() yourself).
    absl::Duration maintenance_interval = absl::Seconds(30);
    // Threads for slow operations; zero runs everything on the caller's thread.
    size_t io_threads = 4;
    // Reads of file-backed objects longer than this go to the I/O threads.
    size_t inline_read_max_bytes = 256 * 1024;
    // The time source for mtimes and record arrival; tests replace it.
    std::function<Timestamp()> clock;
};

class EmbeddedBackend : public Backend {
public:
    static absl::StatusOr<std::unique_ptr<EmbeddedBackend>> Open(EmbeddedOptions options);
    ~EmbeddedBackend() override;

    // Reclaims the space of expired stream records now.
    absl::Status Maintain();
    // Writes what is in memory tables to table files now (RocksDB does this on its own as
    // they fill); for a settled store in benchmarks and before copying the directory.
    absl::Status Flush();

    std::string_view kind() const override { return "embedded"; }

    void ListContainers(Done<std::vector<std::string>> done) override;
    void Stat(Path path, Done<ObjectInfo> done) override;
    void List(ListRequest req, Done<ListResult> done) override;
    void Mkdir(MkdirRequest req, Done<ObjectInfo> done) override;
    void Rmdir(Path path, DoneStatus done) override;
    void Rename(RenameRequest req, DoneStatus done) override;
    void Symlink(SymlinkRequest req, Done<ObjectInfo> done) override;
    void Readlink(Path path, Done<std::string> done) override;
    void Delete(DeleteRequest req, DoneStatus done) override;
    void SetMetadata(SetMetadataRequest req, Done<ObjectInfo> done) override;

    void GetObject(GetObjectRequest req, DataSink* sink, Done<GetObjectResult> done) override;
    void PutObject(PutObjectRequest req, DataSource* data, Done<ObjectInfo> done) override;
    void WriteObject(WriteObjectRequest req, Done<ObjectInfo> done) override;
    void Append(AppendRequest req, Done<ObjectInfo> done) override;
    void Truncate(TruncateRequest req, Done<ObjectInfo> done) override;

    void GetItem(GetItemRequest req, Done<Item> done) override;
    void GetItems(GetItemsRequest req, Done<GetItemsResult> done) override;
    void PutItem(PutItemRequest req, Done<ObjectInfo> done) override;
    void PutItems(std::vector<PutItemRequest> reqs, Done<std::vector<absl::Status>> done) override;
    void UpdateItem(UpdateItemRequest req, Done<ObjectInfo> done) override;

    void CreateStream(CreateStreamRequest req, Done<ObjectInfo> done) override;
    void DescribeStream(Path path, Done<StreamDescription> done) override;
    void DeleteStream(Path path, DoneStatus done) override;
    void PutRecords(PutRecordsRequest req, Done<std::vector<RecordResult>> done) override;
    void Seek(SeekRequest req, Done<StreamLocation> done) override;
    void GetRecords(GetRecordsRequest req, Done<GetRecordsResult> done) override;

    void Sync(DoneStatus done) override;

    class Store;

private:
    explicit EmbeddedBackend(std::unique_ptr<Store> store, const EmbeddedOptions& options);
    // Runs `fn` on an I/O thread when `slow`, else right here.
    void Maybe(bool slow, absl::AnyInvocable<void() &&> fn);

    std::unique_ptr<Store> store_;
    bool sync_writes_;
    size_t inline_max_bytes_;
    size_t inline_read_max_bytes_;
    std::unique_ptr<TaskPool> io_;  // declared last: drained and joined before the store goes
};

}  // namespace zerohop

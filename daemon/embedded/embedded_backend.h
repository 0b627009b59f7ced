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
#include "embedded/options.h"

namespace zerohop {

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

    ZH_BACKEND_OPERATIONS(ZH_BACKEND_OVERRIDE)

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

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

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
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
    static constexpr absl::Duration kFirstReopenBackoff = absl::Milliseconds(100);
    static constexpr absl::Duration kMaxReopenBackoff = absl::Seconds(30);

    EmbeddedBackend(std::unique_ptr<Store> store, EmbeddedOptions options);
    // Runs `fn` on an I/O thread when `slow`, else right here.
    void Maybe(bool slow, absl::AnyInvocable<void() &&> fn);
    // Runs `fn(store)` with the store held open; Unavailable while it cannot be opened.
    template <typename Fn>
    auto WithStore(Fn&& fn) -> decltype(fn(std::declval<Store&>()));
    // A store stopped by an I/O error RocksDB cannot resume from is closed and opened
    // again (its log replayed): at once, then with a growing backoff while the disk still
    // refuses, serving reads from a read-only open meanwhile.
    void Reopen();
    void SetReaper(Store& store);

    const EmbeddedOptions options_;  // also what a reopen opens with

    // Every call holds it shared; a reopen holds it alone.
    absl::Mutex store_mu_;
    std::unique_ptr<Store> store_ ABSL_GUARDED_BY(store_mu_);
    std::atomic<bool> needs_reopen_{false};
    absl::Mutex reopen_mu_ ABSL_ACQUIRED_BEFORE(store_mu_);
    absl::Time next_reopen_ ABSL_GUARDED_BY(reopen_mu_) = absl::InfinitePast();
    absl::Duration reopen_backoff_ ABSL_GUARDED_BY(reopen_mu_) = kFirstReopenBackoff;
    absl::Status reopen_error_;  // written under both locks, read under store_mu_

    std::unique_ptr<TaskPool> io_;  // drained and joined (destructor) before the store goes
};

}  // namespace zerohop

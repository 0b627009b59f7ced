#pragma once
// What the embedded store is configured with. A light header: config/ produces these from
// zerohopd's configuration without linking the store.
//
//   EmbeddedOptions opts;
//   opts.dir = "/var/lib/zerohop";
//   opts.containers = {"users", "logs"};

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "zerohop/value.h"

namespace zerohop {

struct EmbeddedOptions {
    static constexpr std::string_view kKind = "embedded";

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

}  // namespace zerohop

#pragma once
// What the embedded store is configured with. A light header: config/ produces these from
// zerohopd's configuration without linking the store.
//
//   EmbeddedOptions opts;
//   opts.dir = "/var/lib/zerohop";
//   opts.containers = {"users", "logs"};

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "zerohop/value.h"

namespace rocksdb {
class FileSystem;
}

namespace zerohop {

// The system calls by which the embedded store writes and removes its object files, as a
// seam for fault injection (tests give one that fails on demand or loses what a power cut
// would). Each behaves as the system call of its name: -1 with errno set on failure.
class ObjectFileCalls {
public:
    virtual ~ObjectFileCalls() = default;
    virtual int Open(const char* path, int flags, mode_t mode) = 0;
    virtual ssize_t Pwrite(int fd, const void* data, size_t n, off_t offset) = 0;
    virtual int Ftruncate(int fd, off_t size) = 0;
    virtual int Fdatasync(int fd) = 0;
    virtual int Fsync(int fd) = 0;  // the store syncs its objects directory with it
    virtual int Syncfs(int fd) = 0;
    virtual int Unlink(const char* path) = 0;
};

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
    // Seams for fault injection (tests): the file system RocksDB runs on and the calls that
    // write object files. Empty: the real ones.
    std::shared_ptr<rocksdb::FileSystem> file_system;
    std::shared_ptr<ObjectFileCalls> object_file_calls;
};

}  // namespace zerohop

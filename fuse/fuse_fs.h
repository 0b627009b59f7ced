#pragma once
// zerohop-fuse: the unified namespace as a POSIX file system, over libfuse3's low-level API.
//
// A client of zerohopd like any pod. FUSE threads only decode a request and submit it
// through libzerohop; the answer goes back to the kernel from the request's completion
// (on the completion thread), so no FUSE thread waits on the daemon and many requests are
// in flight at once.
//
//   FuseOptions o;
//   o.mountpoint = "/mnt/zerohop";
//   auto fs = FuseFs::Mount(o);          // the mount is there when this returns
//   if (!fs.ok()) return fs.status();
//   (*fs)->Run();                         // until unmounted (fusermount3 -u) or Stop()
//
// What a file system call becomes is documented in docs/FUSE.md.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "zerohop/client.h"

namespace zerohop::fuse {

struct FuseOptions {
    std::string mountpoint;
    std::string root = "/";       // the namespace path the mount shows: "/" or "/<container>[/...]"
    ClientOptions client;         // the daemon's socket and the access key
    double attr_timeout = 1.0;    // seconds the kernel may cache attributes
    double entry_timeout = 1.0;   // seconds the kernel may cache names
    unsigned max_threads = 16;    // FUSE threads reading requests
    // How long a FUSE thread polls for the answer to what it submitted before leaving it to
    // the completion thread, when that is the only request in progress: saves a wake-up per
    // request for a single caller; with more in progress nobody spins.
    unsigned assist_us = 20;
    bool allow_other = false;     // let other users in (needs user_allow_other or root)
    bool read_only = false;       // mounted ro: writes fail with EROFS in the kernel
    // The kernel keeps written pages and sends them in large writes at close, fsync or
    // under memory pressure, instead of one request per write(2). Faster small writes; a
    // write's errors then show at close or fsync, and other pods see it from then on.
    bool writeback_cache = false;
    // Kernel passthrough (Linux 6.9+, root): a large object of the embedded store opened
    // for reading is read by the kernel straight from its file (docs/FUSE.md).
    // Off with writeback_cache (the kernel allows only one of the two).
    bool passthrough = true;
    // Where the kernel does not read an object's file itself (passthrough off, not root,
    // an older kernel, an inode with cached opens), an open for reading only of such an
    // object still takes its file from zerohopd, and zerohop-fuse reads it there: one
    // request to the mount, none to zerohopd. Off: every read goes through zerohopd.
    bool object_files = true;
    bool debug = false;           // libfuse's request trace on stderr
    // Where the holder of the mount's /dev/fuse descriptor listens (see holder.h); empty:
    // no holder, and a killed zerohop-fuse leaves a dead mount. A zerohop-fuse started
    // while a holder keeps the mount serves it instead of mounting.
    std::string holder_socket;
    std::string self_exe;         // this binary, re-executed as the holder
    // How long the holder waits for a successor after zerohop-fuse died; then the mount
    // fails its callers (ECONNABORTED, ENOTCONN) instead of leaving them waiting.
    int takeover_secs = 60;
    // Tests and fuzzers: serve this descriptor (one end of a SOCK_SEQPACKET socketpair: a
    // message per request and per answer) as the /dev/fuse connection instead of mounting.
    int device_fd = -1;
};

class FuseFs {
public:
    static absl::StatusOr<std::unique_ptr<FuseFs>> Mount(FuseOptions options);
    ~FuseFs();

    // Serves requests until the file system is unmounted or Stop() is called; unmounts.
    absl::Status Run();
    // From any thread (a signal handler, say): makes Run() return.
    void Stop();

    class Impl;

private:
    explicit FuseFs(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace zerohop::fuse

#include "passthrough.h"

#include <errno.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

namespace zerohop::fuse {

namespace {

// The kernel's passthrough ABI (UAPI 7.40, Linux 6.9), newer than Debian 12's headers.
constexpr uint32_t kInitExt = 1u << 30;              // FUSE_INIT_EXT: flags2 is there
constexpr uint32_t kPassthroughFlags2 = 1u << 5;     // FUSE_PASSTHROUGH (bit 37) in flags2
constexpr uint32_t kOpenPassthrough = 1u << 7;       // FOPEN_PASSTHROUGH
constexpr uint32_t kOpenDirectIo = 1u << 0;          // FOPEN_DIRECT_IO
// What may come with FOPEN_PASSTHROUGH (the kernel refuses the rest, keep_cache among them).
constexpr uint32_t kOpenPassthroughMask = kOpenPassthrough | kOpenDirectIo | (1u << 6) /* PARALLEL_DIRECT_WRITES */ |
                                          (1u << 5) /* NOFLUSH */;
struct BackingMap {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(229, 2, uint32_t);

// fuse_init_in: major, minor, max_readahead, flags, flags2 (7.36).
constexpr size_t kInitInFlags = 12, kInitInFlags2 = 16;
// fuse_init_out: ... flags at 12, flags2 at 32, max_stack_depth at 36 (7.40).
constexpr size_t kInitOutFlags = 12, kInitOutFlags2 = 32, kInitOutStackDepth = 36;
// The object files are on a plain file system (depth 0): one level above them is enough,
// and leaves room for an overlay on top of the mount.
constexpr uint32_t kMaxStackDepth = 1;

uint32_t Load32(const void* base, size_t at) {
    uint32_t v;
    std::memcpy(&v, static_cast<const char*>(base) + at, sizeof v);
    return v;
}
void Store32(void* base, size_t at, uint32_t v) { std::memcpy(static_cast<char*>(base) + at, &v, sizeof v); }

}  // namespace

thread_local Passthrough::Choice Passthrough::answer_;

void Passthrough::Offered(const void* init_in, size_t size) {
    if (size < kInitInFlags2 + 4) {
        return;
    }
    offered_.store((Load32(init_in, kInitInFlags) & kInitExt) != 0 && (Load32(init_in, kInitInFlags2) & kPassthroughFlags2) != 0,
                   std::memory_order_relaxed);
}

void Passthrough::Accept(struct iovec* iov, int count) {
    // libfuse's answer: the header, then fuse_init_out (64 bytes since 7.23).
    if (!wanted_ || !offered_.load(std::memory_order_relaxed) || count != 2 ||
        iov[1].iov_len < kInitOutStackDepth + 4) {
        return;
    }
    void* out = iov[1].iov_base;
    // The kernel ignores passthrough on a connection with writeback caching.
    if (Load32(out, kInitOutFlags) & FUSE_WRITEBACK_CACHE) {
        return;
    }
    Store32(out, kInitOutFlags, Load32(out, kInitOutFlags) | kInitExt);
    Store32(out, kInitOutFlags2, Load32(out, kInitOutFlags2) | kPassthroughFlags2);
    Store32(out, kInitOutStackDepth, kMaxStackDepth);
    active_.store(true, std::memory_order_relaxed);
}

void Passthrough::Bind(int fuse_fd, bool resumed) {
    fuse_fd_ = fuse_fd;
    if (!wanted_ || !resumed) {
        return;
    }
    active_.store(true, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    for (const auto& [ino, b] : nodes_->InheritedBackings()) {
        inodes_[ino] = Inode{.backing = b, .inherited = true};
    }
}

void Passthrough::Refused(std::string_view why) {
    if (active_.exchange(false, std::memory_order_relaxed)) {
        fprintf(stderr, "zerohop-fuse: kernel passthrough is off: zerohopd hands out no files (%.*s)\n",
                static_cast<int>(why.size()), why.data());
    }
}

int32_t Passthrough::Register(int file) {
    BackingMap map = {.fd = file, .flags = 0, .padding = 0};
    int id = ::ioctl(fuse_fd_, kBackingOpen, &map);
    if (id > 0) {
        return id;
    }
    // EPERM: the connection does not pass through (or we lack CAP_SYS_ADMIN); anything else
    // (ELOOP: a file stacked too deep, say) is this file's. Either way this open is cached.
    if (errno == EPERM || errno == ENOTTY || errno == EINVAL) {
        if (active_.exchange(false, std::memory_order_relaxed)) {
            fprintf(stderr, "zerohop-fuse: kernel passthrough is off: %s\n", strerror(errno));
        }
    }
    return 0;
}

void Passthrough::Unregister(Ino ino, Inode& n) {
    if (n.backing.id != 0 && !n.inherited) {
        uint32_t id = static_cast<uint32_t>(n.backing.id);
        (void)::ioctl(fuse_fd_, kBackingClose, &id);
        n.backing = {};
        nodes_->RecordBacking(ino, n.backing);
    }
}

Passthrough::Choice Passthrough::Open(Ino ino, int file) {
    if (!wanted_) {
        return {};
    }
    bool inherited = nodes_->Inherited(ino);
    struct stat st = {};
    bool have_file = file >= 0 && ::fstat(file, &st) == 0 && S_ISREG(st.st_mode);
    absl::MutexLock lock(&mu_);
    auto [it, fresh] = inodes_.try_emplace(ino);
    Inode& n = it->second;
    if (fresh) {
        n.inherited = inherited;
    }
    if (n.backing.id != 0) {
        // Passing through (or it may be, for a predecessor's): every open must, with this
        // backing file. Straight to it only for the same version.
        bool same = have_file && static_cast<uint64_t>(st.st_dev) == n.backing.file_dev &&
                    static_cast<uint64_t>(st.st_ino) == n.backing.file_ino;
        ++n.passthrough;
        return {.backing_id = n.backing.id, .direct = !same};
    }
    // A predecessor's inode may have cached opens we cannot see; a cached open of ours
    // keeps the inode cached. (Turned off meanwhile, passthrough still answers for the
    // inodes that pass through: the kernel fails any other open of them.)
    if (!active() || n.inherited || n.cached > 0 || !have_file) {
        ++n.cached;
        return {};
    }
    int32_t id = Register(file);
    if (id == 0) {
        ++n.cached;
        return {};
    }
    n.backing = {.id = id, .file_dev = static_cast<uint64_t>(st.st_dev), .file_ino = static_cast<uint64_t>(st.st_ino)};
    n.passthrough = 1;
    // Journaled before the answer can reach the kernel: a successor knows every backing id
    // the kernel may hold for an inode.
    nodes_->RecordBacking(ino, n.backing);
    return {.backing_id = id};
}

void Passthrough::Closed(Ino ino, bool passed_through) {
    absl::MutexLock lock(&mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) {
        return;
    }
    Inode& n = it->second;
    uint32_t& count = passed_through ? n.passthrough : n.cached;
    if (count > 0) {
        --count;
    }
    if (n.passthrough == 0 && n.cached == 0 && !n.inherited) {
        Unregister(ino, n);
        inodes_.erase(it);
    }
}

void Passthrough::Forgot(Ino ino) {
    absl::MutexLock lock(&mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) {
        return;
    }
    it->second.inherited = false;  // forgotten by the kernel: nothing of it is open
    Unregister(ino, it->second);
    inodes_.erase(it);
}

void Passthrough::PatchOpen(struct iovec* iov, int count) {
    Choice c = answer_;
    answer_ = {};
    if (c.backing_id == 0) {
        return;
    }
    const auto* h = static_cast<const fuse_out_header*>(iov[0].iov_base);
    // fuse_open_out: fh, open_flags, backing_id (7.40); alone, or after a create's entry.
    size_t at = count == 2 && iov[1].iov_len == sizeof(fuse_open_out)                              ? 0
                : count == 2 && iov[1].iov_len == sizeof(fuse_entry_out) + sizeof(fuse_open_out) ? sizeof(fuse_entry_out)
                                                                                                  : SIZE_MAX;
    if (h->error != 0 || at == SIZE_MAX) {
        return;
    }
    char* out = static_cast<char*>(iov[1].iov_base) + at;
    uint32_t flags = Load32(out, 8);
    flags = (flags & kOpenPassthroughMask) | kOpenPassthrough | (c.direct ? kOpenDirectIo : 0);
    Store32(out, 8, flags);
    Store32(out, 12, static_cast<uint32_t>(c.backing_id));
}

}  // namespace zerohop::fuse

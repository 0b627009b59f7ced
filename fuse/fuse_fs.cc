// zerohop-fuse's operations: what each file system call becomes (docs/FUSE.md), answered
// from the request's completion so that no FUSE thread waits on the daemon.

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "internal/fs.h"
#include "xattr_codec.h"
#include "zerohop/status.h"

namespace zerohop::fuse {

int Errno(const absl::Status& s) {
    int e = StatusToErrno(s);
    return e == ENOSYS ? EOPNOTSUPP : e == EAGAIN ? EIO : e;
}

mode_t TypeBits(const ObjectInfo& info) {
    switch (info.type) {
        case ObjectType::kDirectory:
        case ObjectType::kStream:
            return S_IFDIR;
        case ObjectType::kSymlink:
            return S_IFLNK;
        case ObjectType::kObject:
        case ObjectType::kShard:
            return S_IFREG;
        case ObjectType::kSpecial:
            return info.special & S_IFMT;  // FIFO, device or socket
    }
    return S_IFREG;
}

struct stat ToStat(const ObjectInfo& info, Ino ino) {
    struct stat st = {};
    st.st_ino = ino;
    st.st_mode = TypeBits(info) | (info.mode & 07777);
    st.st_rdev = static_cast<dev_t>(info.rdev);
    // A directory's "." and its name in its parent, and each subdirectory's "..".
    st.st_nlink = (st.st_mode & S_IFMT) == S_IFDIR ? 2 + info.subdirs : 1;
    st.st_uid = info.uid;
    st.st_gid = info.gid;
    st.st_size = static_cast<off_t>(info.type == ObjectType::kSymlink ? info.symlink_target.size() : info.size);
    st.st_blksize = 4096;
    st.st_blocks = (st.st_size + 511) / 512;
    st.st_mtim = {info.mtime.secs, info.mtime.nsecs};
    st.st_ctim = {info.ctime.secs, info.ctime.nsecs};
    st.st_atim = {info.atime.secs, info.atime.nsecs};
    return st;
}

std::optional<Path> FuseFs::Impl::PathOf(Ino ino) {
    auto p = nodes_.PathOf(ino);
    if (!p) {
        return std::nullopt;
    }
    auto path = Path::Parse(*p);
    return path.ok() ? std::optional<Path>(*path) : std::nullopt;
}

std::optional<Path> FuseFs::Impl::ChildPath(fuse_req_t req, Ino parent, const char* name) {
    auto p = nodes_.ChildPath(parent, name);
    if (!p) {
        fuse_reply_err(req, ESTALE);
        return std::nullopt;
    }
    auto path = Path::Parse(*p);
    if (!path.ok()) {
        fuse_reply_err(req, Errno(path.status()));
        return std::nullopt;
    }
    return *path;
}

std::optional<Path> FuseFs::Impl::PathOrReply(fuse_req_t req, Ino ino) {
    auto p = PathOf(ino);
    if (!p) {
        fuse_reply_err(req, ESTALE);
    }
    return p;
}

fuse_entry_param FuseFs::Impl::Entry(Ino parent, const std::string& name, const ObjectInfo& info, uint64_t lookups) {
    fuse_entry_param e = {};
    e.ino = nodes_.Lookup(parent, name, lookups, info.type == ObjectType::kShard);
    e.generation = 1;
    e.attr = ToStat(info, e.ino);
    e.attr_timeout = options_.attr_timeout;
    e.entry_timeout = options_.entry_timeout;
    return e;
}

bool FuseFs::Impl::BackendAppends(int open_flags) const {
    return (open_flags & O_APPEND) != 0 && !options_.writeback_cache;
}

uint64_t FuseFs::Impl::AddFile(Ino ino, bool append, bool shard, bool passthrough, shmring::UniqueFd file) {
    auto h = std::make_shared<FileHandle>();
    h->append = append;
    h->passthrough = passthrough;
    h->file = std::move(file);
    if (shard && !InitShard(ino, h.get())) {
        return 0;
    }
    std::lock_guard<std::mutex> lock(handles_mu_);
    uint64_t fh =
        NewHandle((append ? kFhAppend : 0) | (shard ? kFhShard : 0) | (passthrough ? kFhPassthrough : 0));
    files_[fh] = std::move(h);
    return fh;
}

uint64_t FuseFs::Impl::NewHandle(uint64_t flags) {
    return (handle_generation_ << kFhGenerationShift) | (next_handle_++ << 3) | flags;
}

bool FuseFs::Impl::Predecessors(uint64_t fh) const {
    uint64_t generation = fh >> kFhGenerationShift;
    return generation != 0 && generation < handle_generation_;
}

std::shared_ptr<FileHandle> FuseFs::Impl::File(Ino ino, uint64_t fh) {
    std::lock_guard<std::mutex> lock(handles_mu_);
    auto it = files_.find(fh);
    if (it != files_.end()) {
        return it->second;
    }
    auto h = std::make_shared<FileHandle>();
    h->append = (fh & kFhAppend) != 0;
    if ((fh & kFhShard) && !InitShard(ino, h.get())) {
        return nullptr;
    }
    if (Predecessors(fh)) {
        files_[fh] = h;
    }
    return h;
}

bool FuseFs::Impl::DropFile(uint64_t fh) {
    std::lock_guard<std::mutex> lock(handles_mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) {
        return (fh & kFhPassthrough) != 0;  // a predecessor's
    }
    bool passthrough = it->second->passthrough;
    files_.erase(it);
    return passthrough;
}

bool FuseFs::Impl::NoFilesFrom(std::string_view container, bool refused) {
    std::lock_guard<std::mutex> lock(handles_mu_);
    if (refused) {
        no_files_.emplace(container);
        return true;
    }
    return no_files_.contains(std::string(container));
}

void FuseFs::Impl::AnswerCreate(fuse_req_t req, const Created& c) {
    // Created, or an existing file opened: writing, cached unless the inode passes through.
    Passthrough::Choice choice = passthrough_.Open(c.entry.ino, -1);
    if (choice.backing_id != 0) {
        std::lock_guard<std::mutex> lock(handles_mu_);
        if (auto it = files_.find(c.file.fh); it != files_.end()) {
            it->second->passthrough = true;
        }
    }
    SendOpened(c.entry.ino, c.file.fh, choice, [&] { return fuse_reply_create(req, &c.entry, &c.file); });
}

bool FuseFs::Impl::WantsFile(int open_flags) const {
    return !files_refused_.load(std::memory_order_relaxed) && (passthrough_.active() || ReadsFile(open_flags));
}

bool FuseFs::Impl::ReadsFile(int open_flags) const {
    return options_.object_files && (open_flags & O_ACCMODE) == O_RDONLY;
}

void FuseFs::Impl::AnswerOpen(fuse_req_t req, Ino ino, fuse_file_info out, Passthrough::Choice choice,
                              shmring::UniqueFd file) {
    out.fh = AddFile(ino, BackendAppends(out.flags), false, choice.backing_id != 0, std::move(file));
    if (choice.backing_id != 0) {
        out.keep_cache = 0;  // the kernel's pages are the backing file's
    }
    SendOpened(ino, out.fh, choice, [&] { return fuse_reply_open(req, &out); });
}

template <typename Send>
void FuseFs::Impl::SendOpened(Ino ino, uint64_t fh, const Passthrough::Choice& choice, Send send) {
    Passthrough::AnswerWith(choice);
    int sent = send();
    Passthrough::AnswerWith({});  // (taken by the hook, unless libfuse failed before it)
    if (sent != 0) {
        // Interrupted meanwhile: the kernel will not release what it never got.
        DropFile(fh);
        passthrough_.Closed(ino, choice.backing_id != 0);
        nodes_.Closed(ino);
    }
}

uint64_t FuseFs::Impl::AddDir() {
    std::lock_guard<std::mutex> lock(handles_mu_);
    uint64_t fh = NewHandle(0);
    dirs_[fh] = std::make_shared<DirHandle>();
    return fh;
}

std::shared_ptr<DirHandle> FuseFs::Impl::Dir(uint64_t fh) {
    std::lock_guard<std::mutex> lock(handles_mu_);
    if (auto it = dirs_.find(fh); it != dirs_.end()) {
        return it->second;
    }
    auto d = std::make_shared<DirHandle>();  // a fresh listing
    if (Predecessors(fh)) {
        dirs_[fh] = d;
    }
    return d;
}

void FuseFs::Impl::DropDir(uint64_t fh) {
    std::lock_guard<std::mutex> lock(handles_mu_);
    dirs_.erase(fh);
}

Callback<ObjectInfo> FuseFs::Impl::NewEntry(fuse_req_t req, Ino parent, const char* name, Path path, Once once,
                                            std::function<void(Once)> again) {
    return [this, req, parent, n = std::string(name), path = std::move(path), once,
            again = std::move(again)](absl::StatusOr<ObjectInfo> r) mutable {
        if (MadeUnknown(&once, r.status())) {
            return again(once);
        }
        auto reply = [this, req, parent, n, once](const ObjectInfo& info) {
            fuse_entry_param e = Entry(parent, n, info);
            AppliedOnce(once, &e, sizeof e);
            fuse_reply_entry(req, &e);
        };
        if (once.unknown && absl::IsAlreadyExists(r.status())) {
            // Made by this very request before the restart: answered as made.
            return client_->StatAsync(path, [req, reply](absl::StatusOr<ObjectInfo> st) {
                if (!st.ok()) {
                    return (void)fuse_reply_err(req, Errno(st.status()));
                }
                reply(*st);
            });
        }
        if (!r.ok()) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        OwnThenReply(req, path, *r, reply);
    };
}

StatusCallback FuseFs::Impl::Removed(fuse_req_t req, Ino parent, const char* name, Once once,
                                     std::function<void(Once)> again) {
    return [this, req, parent, n = std::string(name), once, again = std::move(again)](absl::Status s) mutable {
        if (MadeUnknown(&once, s)) {
            return again(once);
        }
        s = GoneBefore(once, s);
        if (s.ok()) {
            nodes_.Unlink(parent, n);
            AppliedOnce(once);
        }
        fuse_reply_err(req, Errno(s));
    };
}

void FuseFs::Impl::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->ChildPath(req, parent, name);
    if (!path) {
        return;
    }
    fs->client_->StatAsync(*path, [fs, req, parent, n = std::string(name)](absl::StatusOr<ObjectInfo> r) {
        if (!r.ok()) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        fuse_entry_param e = fs->Entry(parent, n, *r);
        fuse_reply_entry(req, &e);
    });
}

void FuseFs::Impl::Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    Self(req)->ForgetNode(ino, nlookup);
    fuse_reply_none(req);
}

void FuseFs::Impl::ForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
    for (size_t i = 0; i < count; ++i) {
        Self(req)->ForgetNode(forgets[i].ino, forgets[i].nlookup);
    }
    fuse_reply_none(req);
}

void FuseFs::Impl::ForgetNode(Ino ino, uint64_t nlookup) {
    if (nodes_.Forget(ino, nlookup)) {
        passthrough_.Forgot(ino);
    }
}

void FuseFs::Impl::GetAttr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    fs->client_->StatAsync(*path, [fs, req, ino](absl::StatusOr<ObjectInfo> r) {
        if (!r.ok()) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        struct stat st = ToStat(*r, ino);
        fuse_reply_attr(req, &st, fs->options_.attr_timeout);
    });
}

void FuseFs::Impl::SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info*) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    SetMetadataRequest meta{.path = *path};
    if (to_set & FUSE_SET_ATTR_MODE) {
        meta.mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        meta.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        meta.gid = attr->st_gid;
    }
    // (UTIME_NOW for both is one now; UTIME_OMIT sends neither flag.)
    Timestamp now = Timestamp::Now();
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        meta.mtime = now;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
        meta.mtime = Timestamp{attr->st_mtim.tv_sec, static_cast<int32_t>(attr->st_mtim.tv_nsec)};
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
        meta.atime = now;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
        meta.atime = Timestamp{attr->st_atim.tv_sec, static_cast<int32_t>(attr->st_atim.tv_nsec)};
    }
    bool has_meta = meta.mode || meta.uid || meta.gid || meta.mtime || meta.atime;
    // Metadata after the size (a truncate sets the mtime; an explicit one wins).
    auto finish = [fs, req, ino, meta, has_meta](absl::StatusOr<ObjectInfo> r) mutable {
        if (!r.ok()) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        if (!has_meta) {
            struct stat st = ToStat(*r, ino);
            return (void)fuse_reply_attr(req, &st, fs->options_.attr_timeout);
        }
        fs->client_->SetMetadataAsync(meta, [fs, req, ino](absl::StatusOr<ObjectInfo> r) {
            if (!r.ok()) {
                return (void)fuse_reply_err(req, Errno(r.status()));
            }
            struct stat st = ToStat(*r, ino);
            fuse_reply_attr(req, &st, fs->options_.attr_timeout);
        });
    };
    if ((to_set & FUSE_SET_ATTR_SIZE) && fs->nodes_.IsShard(ino)) {
        to_set &= ~FUSE_SET_ATTR_SIZE;  // a shard's records are not truncated (`>` on it appends)
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        fs->client_->TruncateAsync({.path = *path, .size = static_cast<uint64_t>(attr->st_size)}, std::move(finish));
    } else if (has_meta) {
        finish(ObjectInfo{});  // straight to the metadata
    } else {
        fs->client_->StatAsync(*path, std::move(finish));  // nothing to change
    }
}

void FuseFs::Impl::Readlink(fuse_req_t req, fuse_ino_t ino) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    fs->client_->ReadlinkAsync(*path, [req](absl::StatusOr<std::string> r) {
        if (!r.ok()) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        fuse_reply_readlink(req, r->c_str());
    });
}

std::optional<std::pair<Path, FuseFs::Impl::Once>> FuseFs::Impl::BeginEntry(fuse_req_t req, Ino parent,
                                                                             const char* name) {
    auto path = ChildPath(req, parent, name);
    if (!path) {
        return std::nullopt;
    }
    Once once = BeginOnce();
    if (ReplayEntry(req, once)) {
        return std::nullopt;
    }
    return std::make_pair(std::move(*path), std::move(once));
}

void FuseFs::Impl::Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    Impl* fs = Self(req);
    Assist assist{fs};
    if (auto begun = fs->BeginEntry(req, parent, name)) {
        auto& [path, once] = *begun;
        fs->MkdirNow(req, parent, name, path, static_cast<uint32_t>(mode & 07777 & ~fuse_req_ctx(req)->umask), once);
    }
}

void FuseFs::Impl::MkdirNow(fuse_req_t req, Ino parent, std::string name, Path path, uint32_t mode, Once once) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    client_->MkdirAsync({.path = path, .mode = mode, .caller = {ctx->uid, ctx->gid}},
                        NewEntry(req, parent, name.c_str(), path, once, [this, req, parent, name, path, mode](Once o) {
                            MkdirNow(req, parent, name, path, mode, o);
                        }));
}

void FuseFs::Impl::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Self(req)->BeginRemoval(req, parent, name, &Impl::UnlinkNow);
}

void FuseFs::Impl::BeginRemoval(fuse_req_t req, Ino parent, const char* name, RemovalNow now) {
    Assist assist{this};
    auto path = ChildPath(req, parent, name);
    if (!path) {
        return;
    }
    Once once = BeginOnce();
    if (once.applied) {
        nodes_.Unlink(parent, name);
        return (void)fuse_reply_err(req, 0);
    }
    (this->*now)(req, parent, name, *path, once);
}

void FuseFs::Impl::UnlinkNow(fuse_req_t req, Ino parent, std::string name, Path path, Once once) {
    auto again = [this, req, parent, name, path](Once o) { UnlinkNow(req, parent, name, path, o); };
    if (auto open = nodes_.OpenAt(parent, name)) {
        // Open here: hide it, so that its descriptors keep working; gone at the last close.
        return Hide(parent, path, *open, [this, req, once, again](absl::Status s) mutable {
            if (MadeUnknown(&once, s)) {
                return again(once);
            }
            s = GoneBefore(once, s);
            if (s.ok()) {
                AppliedOnce(once);
            }
            fuse_reply_err(req, Errno(s));
        });
    }
    client_->DeleteAsync({.path = path}, Removed(req, parent, name.c_str(), once, again));
}

void FuseFs::Impl::Hide(Ino parent, const Path& path, Ino ino, std::function<void(absl::Status)> then) {
    std::string hidden = NodeTable::HiddenName(ino);
    auto to = nodes_.ChildPath(parent, hidden);
    auto target = to ? Path::Parse(*to) : absl::StatusOr<Path>(absl::NotFoundError("the directory is gone"));
    if (!target.ok()) {
        return then(target.status());
    }
    Path hidden_path = *target;
    client_->RenameAsync({.from = path, .to = hidden_path},
                         [this, ino, hidden, hidden_path, then](absl::Status s) {
                             if (s.ok() && !nodes_.Hide(ino, hidden)) {
                                 // Closed meanwhile: nobody will remove it at a close.
                                 client_->DeleteAsync({.path = hidden_path}, [](absl::Status) {});
                             }
                             then(s);
                         });
}

void FuseFs::Impl::Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    Self(req)->BeginRemoval(req, parent, name, &Impl::RmdirNow);
}

void FuseFs::Impl::RmdirNow(fuse_req_t req, Ino parent, std::string name, Path path, Once once) {
    client_->RmdirAsync(path, Removed(req, parent, name.c_str(), once, [this, req, parent, name, path](Once o) {
                            RmdirNow(req, parent, name, path, o);
                        }));
}

void FuseFs::Impl::Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
    Impl* fs = Self(req);
    Assist assist{fs};
    if (auto begun = fs->BeginEntry(req, parent, name)) {
        auto& [path, once] = *begun;
        fs->SymlinkNow(req, parent, name, path, link, once);
    }
}

void FuseFs::Impl::SymlinkNow(fuse_req_t req, Ino parent, std::string name, Path path, std::string target, Once once) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    client_->SymlinkAsync({.path = path, .target = target, .caller = {ctx->uid, ctx->gid}},
                          NewEntry(req, parent, name.c_str(), path, once, [this, req, parent, name, path, target](Once o) {
                              SymlinkNow(req, parent, name, path, target, o);
                          }));
}

// mknod(2). FIFOs, devices and unix sockets are entries of their own kind with no bytes:
// the kernel gives them their meaning on this mount (a FIFO is a pipe between its openers,
// a socket is reached by connect(2) while its binder's inode lives), and devices do not
// open on a FUSE mount (nodev). A regular file is an empty object, as a create without
// the open.
void FuseFs::Impl::Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    Impl* fs = Self(req);
    Assist assist{fs};
    if (auto begun = fs->BeginEntry(req, parent, name)) {
        auto& [path, once] = *begun;
        uint32_t perms = mode & 07777 & ~fuse_req_ctx(req)->umask;
        fs->MknodNow(req, parent, name, path, mode & S_IFMT, perms, S_ISCHR(mode) || S_ISBLK(mode) ? rdev : 0, once);
    }
}

void FuseFs::Impl::MknodNow(fuse_req_t req, Ino parent, std::string name, Path path, uint32_t kind, uint32_t perms,
                            uint64_t rdev, Once once) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    Callback<ObjectInfo> made =
        NewEntry(req, parent, name.c_str(), path, once, [this, req, parent, name, path, kind, perms, rdev](Once o) {
            MknodNow(req, parent, name, path, kind, perms, rdev, o);
        });
    if (kind != S_IFREG && kind != 0) {
        return client_->MknodAsync(
            {.path = path, .special = kind, .mode = perms, .rdev = rdev, .caller = {ctx->uid, ctx->gid}},
            std::move(made));
    }
    client_->PutObjectAsync(
        {.path = path, .condition = std::string(kCreateCondition), .mode = perms, .caller = {ctx->uid, ctx->gid}}, "",
        [path, made = std::move(made)](absl::StatusOr<ObjectInfo> r) mutable {
            if (!r.ok() && IsConditionFailed(r.status())) {
                r = absl::AlreadyExistsError(absl::StrFormat("%s exists", path.str()));  // EEXIST
            }
            std::move(made)(std::move(r));
        });
}

void FuseFs::Impl::Link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
    fuse_reply_err(req, EPERM);  // no hard links: link(2)'s answer for such file systems
}

void FuseFs::Impl::Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
                   unsigned int flags) {
    Impl* fs = Self(req);
    Assist assist{fs};
    if (flags & ~RENAME_NOREPLACE) {
        return (void)fuse_reply_err(req, EINVAL);  // RENAME_EXCHANGE, RENAME_WHITEOUT
    }
    auto from = fs->ChildPath(req, parent, name);
    if (!from) {
        return;
    }
    auto to = fs->ChildPath(req, newparent, newname);
    if (!to) {
        return;
    }
    Once once = fs->BeginOnce();
    if (once.applied) {
        fs->nodes_.Move(parent, name, newparent, newname);
        return (void)fuse_reply_err(req, 0);
    }
    fs->RenameNow(req,
                  RenameArgs{.parent = parent,
                             .newparent = newparent,
                             .name = name,
                             .newname = newname,
                             .from = *from,
                             .to = *to,
                             .no_replace = (flags & RENAME_NOREPLACE) != 0},
                  once);
}

void FuseFs::Impl::RenameNow(fuse_req_t req, RenameArgs a, Once once) {
    auto rename = [this, req, a, once](absl::Status hidden) mutable {
        if (MadeUnknown(&once, hidden)) {
            return RenameNow(req, a, once);
        }
        if (absl::Status s = GoneBefore(once, hidden); !s.ok()) {
            return (void)fuse_reply_err(req, Errno(s));
        }
        client_->RenameAsync({.from = a.from, .to = a.to, .no_replace = a.no_replace},
                             [this, req, a, once](absl::Status s) mutable {
                                 if (MadeUnknown(&once, s)) {
                                     return RenameNow(req, a, once);
                                 }
                                 s = GoneBefore(once, s);
                                 if (s.ok()) {
                                     nodes_.Move(a.parent, a.name, a.newparent, a.newname);
                                     AppliedOnce(once);
                                 }
                                 fuse_reply_err(req, Errno(s));
                             });
    };
    // A file open here that the rename would replace is hidden first, so that its
    // descriptors keep the old bytes.
    auto open = a.no_replace ? std::nullopt : nodes_.OpenAt(a.newparent, a.newname);
    if (open && *open != nodes_.OpenAt(a.parent, a.name).value_or(0)) {
        return Hide(a.newparent, a.to, *open, rename);
    }
    rename(absl::OkStatus());
}

void FuseFs::Impl::Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    if (fs->nodes_.IsShard(ino)) {
        uint64_t fh = fs->AddFile(ino, fs->BackendAppends(fi->flags), true);
        if (fh == 0) {
            return (void)fuse_reply_err(req, EINVAL);  // a shard file not named by its number
        }
        fi->fh = fh;
        // Records, not bytes: read from the start, to the end, whatever st_size says.
        fi->direct_io = 1;  // (not nonseekable: stream files get offset 0 on every read)
        fi->noflush = 1;
        fs->nodes_.Opened(ino);
        return (void)fuse_reply_open(req, fi);
    }
    fuse_file_info out = *fi;
    out.noflush = 1;  // see Flush
    fs->nodes_.Opened(ino);
    if (fi->flags & O_TRUNC) {
        fs->client_->TruncateAsync({.path = *path, .size = 0}, [fs, req, ino, out](absl::StatusOr<ObjectInfo> r) {
            if (!r.ok()) {
                fs->nodes_.Closed(ino);
                return (void)fuse_reply_err(req, Errno(r.status()));
            }
            fs->nodes_.SameVersion(ino, r->size, r->mtime.secs, r->mtime.nsecs);
            fs->AnswerOpen(req, ino, out, fs->passthrough_.Open(ino, -1));
        });
        return;
    }
    // The kernel keeps its cached pages when the object is the version it cached them
    // from (same size and mtime as at the previous open).
    auto answer = [fs, req, ino, out](absl::StatusOr<ObjectInfo> r, shmring::UniqueFd file) mutable {
        if (!r.ok()) {
            fs->nodes_.Closed(ino);
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        out.keep_cache = fs->nodes_.SameVersion(ino, r->size, r->mtime.secs, r->mtime.nsecs) ? 1 : 0;
        Passthrough::Choice choice = fs->passthrough_.Open(ino, file.get());
        // Reads the kernel sends us (not passed through, or FOPEN_DIRECT_IO): from the file.
        bool reads_file = fs->ReadsFile(out.flags) && (choice.backing_id == 0 || choice.direct);
        fs->AnswerOpen(req, ino, out, choice, reads_file ? std::move(file) : shmring::UniqueFd());
    };
    auto stat = [fs, path = *path, answer]() mutable {
        fs->client_->StatAsync(
            path, [answer](absl::StatusOr<ObjectInfo> r) mutable { answer(std::move(r), shmring::UniqueFd()); });
    };
    if (!fs->WantsFile(fi->flags) || fs->NoFilesFrom(path->container())) {
        return stat();
    }
    // The object's file, if it is one, for the kernel (or us) to read and write straight.
    fs->client_->OpenObjectFileAsync(*path, [fs, answer, stat, container = std::string(path->container())](
                                                absl::StatusOr<ObjectFile> r) mutable {
        if (!r.ok() && absl::IsPermissionDenied(r.status())) {
            // The key may only read this container: its objects take the daemon's way.
            fs->NoFilesFrom(container, true);
            return stat();
        }
        if (!r.ok() && absl::IsUnimplemented(r.status())) {
            fs->files_refused_.store(true, std::memory_order_relaxed);  // an older zerohopd
            fs->passthrough_.Refused(std::string(r.status().message()));
            return stat();
        }
        if (!r.ok()) {
            return answer(r.status(), shmring::UniqueFd());
        }
        // (The kernel takes its own reference to a backing file.)
        shmring::UniqueFd file(r->release());
        answer(std::move(r->info), std::move(file));
    });
}

void FuseFs::Impl::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->ChildPath(req, parent, name);
    if (!path) {
        return;
    }
    Once once = fs->BeginOnce();
    if (once.applied) {
        Created c = {};
        if (once.applied->size() != sizeof c) {
            return (void)fuse_reply_err(req, EIO);
        }
        memcpy(&c, once.applied->data(), sizeof c);
        fs->nodes_.Opened(c.entry.ino);
        return fs->AnswerCreate(req, c);
    }
    fi->fh = fs->AddFile(0, fs->BackendAppends(fi->flags), false);
    fi->noflush = 1;  // see Flush
    fs->CreateNow(req, parent, name, *path, static_cast<uint32_t>(mode & 07777 & ~fuse_req_ctx(req)->umask), *fi,
                  once);
}

void FuseFs::Impl::CreateNow(fuse_req_t req, Ino parent, std::string name, Path p, uint32_t mode, fuse_file_info out,
                             Once once) {
    uint64_t fh = out.fh;
    // Made by this very request before a restart: the file there is ours (O_EXCL or not).
    bool excl = (out.flags & O_EXCL) != 0 && !once.unknown;
    bool trunc = (out.flags & O_TRUNC) != 0;
    auto reply = [this, req, parent, out, name, once](const ObjectInfo& info) {
        Created c = {.entry = Entry(parent, name, info), .file = out};
        nodes_.Opened(c.entry.ino);
        AppliedOnce(once, &c, sizeof c);
        AnswerCreate(req, c);
    };
    // Only if nothing is there: an existing file is opened as it is (O_EXCL: EEXIST).
    client_->PutObjectAsync(
        {.path = p,
         .condition = std::string(kCreateCondition),
         .mode = mode,
         .caller = {fuse_req_ctx(req)->uid, fuse_req_ctx(req)->gid}},
        "",
        [this, req, parent, name, p, mode, out, once, fh, excl, trunc, reply](absl::StatusOr<ObjectInfo> r) mutable {
            if (r.ok()) {
                return OwnThenReply(req, p, *r, reply);
            }
            if (MadeUnknown(&once, r.status())) {
                return CreateNow(req, parent, name, p, mode, out, once);
            }
            bool exists = IsConditionFailed(r.status());
            if (!exists || excl) {
                DropFile(fh);
                return (void)fuse_reply_err(req, exists ? EEXIST : Errno(r.status()));
            }
            auto opened = [this, req, fh, reply](absl::StatusOr<ObjectInfo> r) {
                if (!r.ok()) {
                    DropFile(fh);
                    return (void)fuse_reply_err(req, Errno(r.status()));
                }
                reply(*r);
            };
            if (trunc) {
                client_->TruncateAsync({.path = p, .size = 0}, opened);
            } else {
                client_->StatAsync(p, opened);
            }
        });
}

void FuseFs::Impl::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
    Impl* fs = Self(req);
    size = std::min(size, kMaxAnswer);
    std::shared_ptr<FileHandle> h = fs->File(ino, fi->fh);
    if (h != nullptr && h->file.valid()) {
        return ReadFile(req, h->file.get(), size, off);  // (h keeps the file open meanwhile)
    }
    Assist assist{fs};
    if (h != nullptr && h->shard) {
        return fs->ReadShard(req, std::move(h), size, off);
    }
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    fs->client_->GetObjectAsync(
        {.path = *path, .offset = static_cast<uint64_t>(off), .length = size}, [req](absl::StatusOr<ObjectView> r) {
            if (!r.ok()) {
                return (void)fuse_reply_err(req, Errno(r.status()));
            }
            // Straight from the shared region into the kernel; the view goes back after.
            fuse_reply_buf(req, r->data().data(), r->data().size());
        });
}

void FuseFs::Impl::ReadFile(fuse_req_t req, int file, size_t size, off_t off) {
    // One buffer per FUSE thread, of the largest answer: no allocation per read.
    thread_local std::unique_ptr<char[]> buf(new char[kMaxAnswer]);
    size_t got = 0;
    while (got < size) {
        ssize_t n = ::pread(file, buf.get() + got, size - got, off + static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return (void)fuse_reply_err(req, errno);
        }
        if (n == 0) {
            break;  // the end of the file: the object's end (its size is the file's)
        }
        got += static_cast<size_t>(n);
    }
    fuse_reply_buf(req, buf.get(), got);
}

void FuseFs::Impl::Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                  struct fuse_file_info* fi) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    std::shared_ptr<FileHandle> h = fs->File(ino, fi->fh);
    bool append = h != nullptr && h->append;
    Once once = h != nullptr && (h->shard || h->append) ? fs->BeginOnce() : Once{};
    if (once.applied) {
        return (void)fuse_reply_write(req, size);
    }
    if (h != nullptr && h->shard) {
        // One write, one record, on this shard. (One whose outcome is unknown is put again:
        // a record has no place to be written at twice the same.)
        return fs->client_->PutRecordsAsync(
            {.path = h->stream, .records = {{.data = std::string(buf, size), .shard = h->shard_no}}},
            [fs, req, size, once](absl::StatusOr<std::vector<RecordResult>> r) {
                absl::Status s = !r.ok() ? r.status() : r->empty() ? absl::InternalError("no result") : (*r)[0].status;
                if (!s.ok()) {
                    return (void)fuse_reply_err(req, Errno(s));
                }
                fs->AppliedOnce(once);
                fuse_reply_write(req, size);
            });
    }
    fs->WriteNow(req, *path, std::string_view(buf, size), off, append, once);
}

void FuseFs::Impl::WriteNow(fuse_req_t req, const Path& path, std::string_view data, off_t off, bool append,
                            Once once) {
    // The bytes are copied into the request before these return; kept for a second try.
    auto retry = once.unknown ? nullptr : std::make_shared<std::string>(data);
    auto done = [this, req, path, off, append, once, retry,
                 size = data.size()](absl::StatusOr<ObjectInfo> r) mutable {
        if (MadeUnknown(&once, r.status())) {
            return WriteNow(req, path, *retry, off, append, once);
        }
        if (!r.ok()) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        AppliedOnce(once);
        fuse_reply_write(req, size);
    };
    // A positional write is its own repetition: the same bytes at the same place. An
    // append (O_APPEND, no writeback cache) is the backend's atomic append; one whose
    // outcome is unknown (a predecessor began it, zerohopd restarted while it was in
    // flight) is written at the offset the kernel gave instead (for O_APPEND, the size the
    // kernel knows: where a single appender's bytes belong), once or twice the same.
    if (append && !once.unknown) {
        client_->AppendAsync({.path = path, .data = data}, done);
    } else {
        client_->WriteObjectAsync({.path = path, .offset = static_cast<uint64_t>(off), .data = data}, done);
    }
}

void FuseFs::Impl::Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                      struct fuse_file_info*) {
    Impl* fs = Self(req);
    Assist assist{fs};
    if (mode & ~FALLOC_FL_KEEP_SIZE) {
        return (void)fuse_reply_err(req, EOPNOTSUPP);
    }
    if (offset < 0 || length <= 0) {
        return (void)fuse_reply_err(req, EINVAL);
    }
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    if (mode & FALLOC_FL_KEEP_SIZE) {
        return (void)fuse_reply_err(req, 0);
    }
    uint64_t end = static_cast<uint64_t>(offset) + static_cast<uint64_t>(length);
    fs->client_->StatAsync(*path, [fs, req, p = *path, end](absl::StatusOr<ObjectInfo> r) {
        if (!r.ok()) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        if (r->size >= end) {
            return (void)fuse_reply_err(req, 0);
        }
        fs->client_->TruncateAsync({.path = p, .size = end}, [req](absl::StatusOr<ObjectInfo> t) {
            fuse_reply_err(req, Errno(t.status()));
        });
    });
}

// Every write is already in the backend, so opens say FOPEN_NOFLUSH and a close(2) sends
// nothing (the kernel still flushes with writeback caching, its pages first). Nothing to
// wait for at close matters beyond speed: a process that forks or execs while this server
// restarts would otherwise wait in close(2) for the successor, and a zerohop-fuse started
// by such a process would wait for itself.
void FuseFs::Impl::Flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) {
    fuse_reply_err(req, 0);
}

void FuseFs::Impl::Release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    Impl* fs = Self(req);
    Assist assist{fs};
    fs->passthrough_.Closed(ino, fs->DropFile(fi->fh));
    if (auto hidden = fs->nodes_.Closed(ino)) {
        // The last close of a file unlinked while open: now it goes.
        if (auto p = Path::Parse(*hidden); p.ok()) {
            fs->client_->DeleteAsync({.path = *p}, [](absl::Status) {});
        }
    }
    fuse_reply_err(req, 0);
}

void FuseFs::Impl::Fsync(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info*) {
    // Durable in the backend: everything acknowledged so far survives power loss.
    Self(req)->client_->SyncAsync([req](absl::Status s) { fuse_reply_err(req, Errno(s)); });
}

void FuseFs::Impl::OpenDir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    if (!Self(req)->PathOf(ino)) {
        return (void)fuse_reply_err(req, ESTALE);
    }
    fi->fh = Self(req)->AddDir();
    fuse_reply_open(req, fi);
}

void FuseFs::Impl::ReleaseDir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
    Self(req)->DropDir(fi->fh);
    fuse_reply_err(req, 0);
}

void FuseFs::Impl::LoadDir(fuse_req_t req, Path path, std::shared_ptr<DirHandle> d, std::string marker,
                           std::function<void()> then) {
    client_->ListAsync({.path = path, .marker = marker, .limit = kMaxListLimit},
                       [this, req, path, d, marker, then](absl::StatusOr<ListResult> r) mutable {
                           if (!r.ok()) {
                               return (void)fuse_reply_err(req, Errno(r.status()));
                           }
                           for (auto& e : r->entries) {
                               if (!NodeTable::IsHidden(e.name)) {
                                   d->entries.push_back(std::move(e));
                               }
                           }
                           if (r->truncated && !r->next_marker.empty()) {
                               // Pages go forward (names after the marker): one that does
                               // not would list forever. Said, and refused.
                               if (r->next_marker <= marker) {
                                   Log(LogLevel::kError, "a directory listing does not go forward", "path",
                                       path.str(), "marker", absl::CHexEscape(marker.substr(0, 64)), "next",
                                       absl::CHexEscape(r->next_marker.substr(0, 64)), "entries", d->entries.size());
                                   return (void)fuse_reply_err(req, EIO);
                               }
                               return LoadDir(req, path, d, r->next_marker, std::move(then));
                           }
                           d->loaded = true;
                           then();
                       });
}

void FuseFs::Impl::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
    ReadDirCommon(req, ino, size, off, fi, false);
}

void FuseFs::Impl::ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
    ReadDirCommon(req, ino, size, off, fi, true);
}

void FuseFs::Impl::ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi,
                          bool plus) {
    Impl* fs = Self(req);
    Assist assist{fs};
    std::shared_ptr<DirHandle> d = fs->Dir(fi->fh);
    auto serve = [fs, req, ino, size, off, d, plus] { fs->ServeDir(req, ino, size, off, *d, plus); };
    if (d->loaded && off != 0) {
        return serve();
    }
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    d->entries.clear();  // a rewind reads the directory again
    d->loaded = false;
    fs->LoadDir(req, *path, d, "", serve);
}

void FuseFs::Impl::ServeDir(fuse_req_t req, Ino ino, size_t size, off_t off, const DirHandle& d, bool plus) {
    size = std::min(size, kMaxAnswer);
    std::string buf(size, '\0');
    size_t used = 0;
    auto add = [&](const std::string& name, const struct stat& st, off_t next, const ObjectInfo* info) {
        char* at = buf.data() + used;
        size_t room = size - used;
        size_t need;
        if (plus) {
            need = fuse_add_direntry_plus(req, nullptr, 0, name.c_str(), nullptr, 0);
            if (need > room) {
                return false;
            }
            fuse_entry_param e = {};
            if (info != nullptr) {
                e = Entry(ino, name, *info);  // counts a lookup, as readdirplus must
            } else {
                e.attr = st;  // "." and "..": no lookup counted
            }
            fuse_add_direntry_plus(req, at, room, name.c_str(), &e, next);
        } else {
            need = fuse_add_direntry(req, at, room, name.c_str(), &st, next);
            if (need > room) {
                return false;
            }
        }
        used += need;
        return true;
    };
    struct stat dir = {};
    dir.st_mode = S_IFDIR;
    for (off_t i = off; i < 2 + static_cast<off_t>(d.entries.size()); ++i) {
        bool fit;
        if (i < 2) {
            dir.st_ino = i == 0 ? ino : kRootIno;  // ".." needs some inode, or ls hides it
            fit = add(i == 0 ? "." : "..", dir, i + 1, nullptr);
        } else {
            const DirEntry& e = d.entries[static_cast<size_t>(i - 2)];
            // A plain readdir counts no lookup, so it names no node of ours; d_ino must
            // not be 0 (readdir(3) callers skip those): the backend's id stands in.
            struct stat st = ToStat(e.info, e.info.id != 0 ? e.info.id : kRootIno);
            fit = add(e.name, st, i + 1, &e.info);
        }
        if (!fit) {
            break;
        }
    }
    fuse_reply_buf(req, buf.data(), used);
}

void FuseFs::Impl::StatFs(fuse_req_t req, fuse_ino_t) {
    // The backends do not report capacity: a large, mostly free file system.
    struct statvfs st = {};
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    st.f_blocks = 1ull << 40;
    st.f_bfree = st.f_blocks / 2;
    st.f_bavail = st.f_bfree;
    st.f_files = 1ull << 32;
    st.f_ffree = st.f_files / 2;
    st.f_favail = st.f_ffree;
    st.f_namemax = kMaxAttributeNameBytes;
    fuse_reply_statfs(req, &st);
}

std::optional<std::string> FuseFs::Impl::AttrName(const char* xattr) {
    std::string_view n(xattr);
    if (!n.starts_with(kXattrPrefix) || n.size() == kXattrPrefix.size()) {
        return std::nullopt;
    }
    return std::string(n.substr(kXattrPrefix.size()));
}

void FuseFs::Impl::ReplyXattr(fuse_req_t req, const std::string& value, size_t size) {
    if (size == 0) {
        fuse_reply_xattr(req, value.size());
    } else if (value.size() > size) {
        fuse_reply_err(req, ERANGE);
    } else {
        fuse_reply_buf(req, value.data(), value.size());
    }
}

void FuseFs::Impl::GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto attr = AttrName(name);
    if (!attr) {
        return (void)fuse_reply_err(req, ENODATA);  // security.*, system.*: none here
    }
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    fs->client_->GetItemAsync({.path = *path, .attributes = {*attr}}, [req, size, a = *attr](absl::StatusOr<Item> r) {
        if (!r.ok()) {
            int e = Errno(r.status());
            return (void)fuse_reply_err(req, e == EPERM || e == EISDIR ? ENODATA : e);
        }
        auto it = r->attributes.find(a);
        if (it == r->attributes.end()) {
            return (void)fuse_reply_err(req, ENODATA);
        }
        ReplyXattr(req, ValueToXattr(it->second), size);
    });
}

void FuseFs::Impl::ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    fs->client_->GetItemAsync({.path = *path}, [req, size](absl::StatusOr<Item> r) {
        std::string names;
        if (r.ok()) {
            std::vector<std::string> sorted;
            for (const auto& [n, v] : r->attributes) {
                sorted.push_back(n);
            }
            std::sort(sorted.begin(), sorted.end());
            for (const auto& n : sorted) {
                names.append(kXattrPrefix).append(n).push_back('\0');
            }
        } else if (Errno(r.status()) != EPERM && Errno(r.status()) != EISDIR) {
            return (void)fuse_reply_err(req, Errno(r.status()));
        }
        ReplyXattr(req, names, size);
    });
}

void FuseFs::Impl::ChangeAttributes(fuse_req_t req, Path path, std::function<int(AttributeMap*)> change, int attempts,
                                    Once once, int already) {
    client_->GetItemAsync(
        {.path = path, .attributes = {"*", "__mtime_secs", "__mtime_nsecs"}},
        [this, req, path, change, attempts, once, already](absl::StatusOr<Item> r) {
            if (!r.ok()) {
                return (void)fuse_reply_err(req, Errno(r.status()));
            }
            AttributeMap attrs;
            int64_t secs = 0, nsecs = 0;
            for (auto& [n, v] : r->attributes) {
                if (n == "__mtime_secs") {
                    secs = v.as_int64();
                } else if (n == "__mtime_nsecs") {
                    nsecs = v.as_int64();
                } else {
                    attrs.emplace(n, v);
                }
            }
            if (int e = change(&attrs); e != 0) {
                if (once.unknown && e == already) {
                    AppliedOnce(once);  // made by this very request before the restart
                    e = 0;
                }
                return (void)fuse_reply_err(req, e);
            }
            client_->PutItemAsync(
                {.path = path,
                 .attributes = std::move(attrs),
                 .condition = absl::StrFormat("__mtime_secs == %d AND __mtime_nsecs == %d", secs, nsecs)},
                [this, req, path, change, attempts, once, already](absl::StatusOr<ObjectInfo> w) mutable {
                    if (w.ok()) {
                        AppliedOnce(once);
                        return (void)fuse_reply_err(req, 0);
                    }
                    if (MadeUnknown(&once, w.status())) {
                        return ChangeAttributes(req, path, change, attempts, once, already);
                    }
                    if (absl::IsFailedPrecondition(w.status()) && attempts > 1) {
                        return ChangeAttributes(req, path, change, attempts - 1, once, already);
                    }
                    fuse_reply_err(req, absl::IsFailedPrecondition(w.status()) ? EAGAIN : Errno(w.status()));
                });
        });
}

void FuseFs::Impl::SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto attr = AttrName(name);
    if (!attr) {
        return (void)fuse_reply_err(req, EOPNOTSUPP);
    }
    if (absl::Status s = ValidateAttributeName(*attr); !s.ok()) {
        return (void)fuse_reply_err(req, EINVAL);
    }
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    Once once = fs->BeginOnce();
    if (once.applied) {
        return (void)fuse_reply_err(req, 0);
    }
    std::string text(value, size);
    fs->ChangeAttributes(
        req, *path,
        [a = *attr, text, flags](AttributeMap* attrs) {
            auto it = attrs->find(a);
            if ((flags & XATTR_CREATE) && it != attrs->end()) {
                return EEXIST;
            }
            if ((flags & XATTR_REPLACE) && it == attrs->end()) {
                return ENODATA;
            }
            std::optional<ValueType> current;
            if (it != attrs->end()) {
                current = it->second.type();
            }
            attrs->insert_or_assign(a, XattrToValue(text, current));
            return 0;
        },
        8, once, EEXIST);
}

void FuseFs::Impl::RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    Impl* fs = Self(req);
    Assist assist{fs};
    auto attr = AttrName(name);
    if (!attr) {
        return (void)fuse_reply_err(req, ENODATA);
    }
    auto path = fs->PathOrReply(req, ino);
    if (!path) {
        return;
    }
    Once once = fs->BeginOnce();
    if (once.applied) {
        return (void)fuse_reply_err(req, 0);
    }
    fs->ChangeAttributes(
        req, *path, [a = *attr](AttributeMap* attrs) { return attrs->erase(a) == 1 ? 0 : ENODATA; }, 8, once, ENODATA);
}

struct fuse_lowlevel_ops FuseFs::Impl::Ops() {
    struct fuse_lowlevel_ops ops = {};
    ops.init = Init;
    ops.lookup = Lookup;
    ops.forget = Forget;
    ops.forget_multi = ForgetMulti;
    ops.getattr = GetAttr;
    ops.setattr = SetAttr;
    ops.readlink = Readlink;
    ops.mkdir = Mkdir;
    ops.unlink = Unlink;
    ops.rmdir = Rmdir;
    ops.symlink = Symlink;
    ops.mknod = Mknod;
    ops.link = Link;
    ops.rename = Rename;
    ops.open = Open;
    ops.create = Create;
    ops.read = Read;
    ops.write = Write;
    ops.flush = Flush;
    ops.fallocate = Fallocate;
    ops.release = Release;
    ops.fsync = Fsync;
    ops.opendir = OpenDir;
    ops.readdir = ReadDir;
    ops.readdirplus = ReadDirPlus;
    ops.releasedir = ReleaseDir;
    ops.fsyncdir = Fsync;
    ops.statfs = StatFs;
    ops.setxattr = SetXattr;
    ops.getxattr = GetXattr;
    ops.listxattr = ListXattr;
    ops.removexattr = RemoveXattr;
    return ops;
}

absl::StatusOr<std::unique_ptr<FuseFs>> FuseFs::Mount(FuseOptions options) {
    auto impl = std::make_unique<Impl>(std::move(options));
    ZH_RETURN_IF_ERROR(impl->Start());
    return std::unique_ptr<FuseFs>(new FuseFs(std::move(impl)));
}

FuseFs::FuseFs(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FuseFs::~FuseFs() = default;
absl::Status FuseFs::Run() { return impl_->Run(); }
void FuseFs::Stop() { impl_->Stop(); }

}  // namespace zerohop::fuse

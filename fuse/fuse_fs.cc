#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include "fuse_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <fuse3/fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <tuple>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "holder.h"
#include "node_table.h"
#include "xattr_codec.h"
#include "zerohop/status.h"

namespace zerohop::fuse {

namespace {

// What a backend error means to the kernel: StatusToErrno, except that ENOSYS from a
// handler would tell the kernel never to call that operation again, and EAGAIN (the daemon
// is gone and did not come back) would have callers retry forever.
int Errno(const absl::Status& s) {
    int e = StatusToErrno(s);
    return e == ENOSYS ? EOPNOTSUPP : e == EAGAIN ? EIO : e;
}

mode_t TypeBits(ObjectType t) {
    switch (t) {
        case ObjectType::kDirectory:
        case ObjectType::kStream:
            return S_IFDIR;
        case ObjectType::kSymlink:
            return S_IFLNK;
        case ObjectType::kObject:
        case ObjectType::kShard:
            return S_IFREG;
    }
    return S_IFREG;
}

struct stat ToStat(const ObjectInfo& info, Ino ino) {
    struct stat st = {};
    st.st_ino = ino;
    st.st_mode = TypeBits(info.type) | (info.mode & 07777);
    st.st_nlink = (st.st_mode & S_IFMT) == S_IFDIR ? 2 : 1;
    st.st_uid = info.uid;
    st.st_gid = info.gid;
    st.st_size = static_cast<off_t>(info.type == ObjectType::kSymlink ? info.symlink_target.size() : info.size);
    st.st_blksize = 4096;
    st.st_blocks = (st.st_size + 511) / 512;
    st.st_mtim = {info.mtime.secs, info.mtime.nsecs};
    st.st_ctim = {info.ctime.secs, info.ctime.nsecs};
    st.st_atim = st.st_mtim;
    return st;
}

// An open directory: the listing taken at the first readdir, so that offsets stay
// stable (entries added later are not seen through this handle, none is seen twice).
struct DirHandle {
    std::vector<DirEntry> entries;
    bool loaded = false;
};

// An open file.
struct FileHandle {
    bool append = false;
    // A stream shard: reads yield its records framed (see AppendFrame), each write appends one.
    bool shard = false;
    Path stream;
    uint32_t shard_no = 0;
    uint64_t next_sequence = 0;  // the next record to fetch; 0: not positioned yet
    uint64_t offset = 0;         // where `pending` starts in the framed bytes
    std::string pending;         // framed bytes fetched and not dropped yet
    bool at_end = false;         // the last fetch found no more records
    // One read at a time per handle (the kernel may send a large read as several requests
    // at once); the others wait here, in arrival order.
    std::mutex mu;
    bool busy = false;
    std::deque<std::tuple<fuse_req_t, size_t, off_t>> waiting;
};

// A record as a shard file shows it: a header line, the data, a newline.
//   <sequence> <arrival secs>.<9-digit nanos> <data length>\n<data>\n
void AppendFrame(const StreamRecord& r, std::string* out) {
    absl::StrAppendFormat(out, "%d %d.%09d %d\n", r.sequence, r.arrival.secs, r.arrival.nsecs, r.data.size());
    out->append(r.data);
    out->push_back('\n');
}

constexpr std::string_view kCreateCondition = "NOT exists(__name)";

}  // namespace

class FuseFs::Impl {
public:
    explicit Impl(FuseOptions o) : options_(std::move(o)), nodes_(options_.root) {}

    absl::Status Start() {
        auto c = Client::Connect(options_.client);
        if (!c.ok()) {
            return c.status();
        }
        client_ = std::move(*c);
        // The root must be a directory we can see.
        auto root = Path::Parse(options_.root);
        if (!root.ok()) {
            return absl::InvalidArgumentError(absl::StrFormat("root %s: %s", options_.root, root.status().message()));
        }
        auto info = client_->Stat(*root);
        if (!info.ok()) {
            return absl::Status(info.status().code(),
                                absl::StrFormat("root %s: %s", options_.root, info.status().message()));
        }
        if (TypeBits(info->type) != S_IFDIR) {
            return absl::FailedPreconditionError(absl::StrFormat("root %s is not a directory", options_.root));
        }

        std::vector<std::string> argv = {"zerohop-fuse", "-o", "fsname=zerohop,subtype=zerohop,default_permissions"};
        if (options_.allow_other) {
            argv.push_back("-o");
            argv.push_back("allow_other");
        }
        if (options_.debug) {
            argv.push_back("-d");
        }
        std::vector<char*> cargv;
        for (auto& a : argv) {
            cargv.push_back(a.data());
        }
        struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());
        struct fuse_lowlevel_ops ops = Ops();
        session_ = fuse_session_new(&args, &ops, sizeof ops, this);
        fuse_opt_free_args(&args);
        if (session_ == nullptr) {
            return absl::InternalError("fuse_session_new failed (see the message above)");
        }
        // A predecessor's mount, kept alive by the holder: serve it instead of mounting.
        std::optional<HeldMount> held;
        if (!options_.holder_socket.empty()) {
            auto h = FetchFromHolder(options_.holder_socket);
            if (h.ok()) {
                held = std::move(*h);
            } else if (!absl::IsNotFound(h.status())) {
                return h.status();
            }
        }
        if (held) {
            if (absl::Status s = nodes_.Replay(held->journal.get()); !s.ok()) {
                return s;
            }
            journal_ = std::move(held->journal);
            lease_ = std::move(held->lease);
            nodes_.SetJournal(journal_.get());
            int fd = held->fuse.release();  // the session owns it from here
            if (fuse_session_mount(session_, absl::StrCat("/dev/fd/", fd).c_str()) != 0) {
                return absl::InternalError("cannot serve the held /dev/fuse descriptor");
            }
            resumed_ = true;
            Resume();
        } else {
            if (!options_.holder_socket.empty()) {
                journal_.reset(::memfd_create("zerohop-fuse-inodes", MFD_CLOEXEC));
                if (!journal_.valid()) {
                    return absl::InternalError(absl::StrFormat("memfd_create: %s", strerror(errno)));
                }
                nodes_.SetJournal(journal_.get());
            }
            if (fuse_session_mount(session_, options_.mountpoint.c_str()) != 0) {
                fuse_session_destroy(session_);
                session_ = nullptr;
                return absl::FailedPreconditionError(absl::StrFormat(
                    "cannot mount on %s (does it exist? is /dev/fuse there? root or fusermount3 needed)",
                    options_.mountpoint));
            }
            if (!options_.holder_socket.empty()) {
                auto lease = SpawnHolder(options_.self_exe, options_.holder_socket, fuse_session_fd(session_),
                                         journal_.get(), options_.mountpoint, options_.takeover_secs);
                if (!lease.ok()) {
                    fuse_session_unmount(session_);
                    fuse_session_destroy(session_);
                    session_ = nullptr;
                    return lease.status();
                }
                lease_ = std::move(*lease);
            }
        }
        mounted_ = true;
        completions_ = std::thread([this] {
            while (!stopping_.load(std::memory_order_acquire)) {
                client_->WaitAndPoll(absl::Milliseconds(100));
            }
        });
        return absl::OkStatus();
    }

    // Takes over a connection the kernel already initialized with a predecessor: libfuse
    // is given an INIT of its own (its answer goes nowhere: the kernel knows no such
    // request), and the kernel is asked to send again every request the predecessor had
    // read and not answered (FUSE_NOTIFY_RESEND, Linux 6.9).
    void Resume() {
        struct {
            fuse_in_header h;
            fuse_init_in init;
        } msg = {};
        msg.h.len = sizeof msg;
        msg.h.opcode = FUSE_INIT;
        msg.h.unique = ~uint64_t{0};
        msg.init.major = FUSE_KERNEL_VERSION;
        msg.init.minor = FUSE_KERNEL_MINOR_VERSION;
        msg.init.max_readahead = 1 << 20;
        msg.init.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
                         FUSE_ATOMIC_O_TRUNC | FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES |
                         (options_.writeback_cache ? FUSE_WRITEBACK_CACHE : 0);
        struct fuse_buf buf = {};
        buf.size = sizeof msg;
        buf.mem = &msg;
        fuse_session_process_buf(session_, &buf);
        constexpr int32_t kNotifyResend = 7;  // FUSE_NOTIFY_RESEND; newer than Debian's headers
        fuse_out_header resend = {sizeof resend, kNotifyResend, 0};
        if (::write(fuse_session_fd(session_), &resend, sizeof resend) != sizeof resend) {
            fprintf(stderr, "zerohop-fuse: the kernel did not resend the predecessor's requests (%s); they wait "
                            "until they are interrupted\n",
                    strerror(errno));
        }
    }

    absl::Status Run() {
        struct fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_max_threads(cfg, options_.max_threads);
        fuse_loop_cfg_set_idle_threads(cfg, std::max(2u, options_.max_threads / 2));
        int r = fuse_session_loop_mt(session_, cfg);
        fuse_loop_cfg_destroy(cfg);
        Shutdown();
        return r == 0 ? absl::OkStatus() : absl::InternalError(absl::StrFormat("FUSE loop ended with %d", r));
    }

    // From any thread (main.cc calls it from its signal watcher), also while Run ends.
    void Stop() {
        std::lock_guard lock(unmount_mu_);
        if (session_ != nullptr) {
            fuse_session_exit(session_);
            // Wake a thread blocked reading /dev/fuse: unmounting ends its read.
            if (mounted_) {
                Unmount();
                mounted_ = false;
            }
        }
    }

    ~Impl() { Shutdown(); }

private:
    // A resumed session's mount point is /dev/fd/N to libfuse: unmount the real one.
    void Unmount() {
        if (resumed_) {
            ::umount2(options_.mountpoint.c_str(), MNT_DETACH);
        } else {
            fuse_session_unmount(session_);
        }
    }

    void Shutdown() {
        {
            std::lock_guard lock(unmount_mu_);
            if (session_ != nullptr && mounted_) {
                Unmount();
                mounted_ = false;
            }
        }
        stopping_.store(true, std::memory_order_release);
        if (completions_.joinable()) {
            completions_.join();
        }
        std::lock_guard lock(unmount_mu_);
        if (session_ != nullptr) {
            fuse_session_destroy(session_);
            session_ = nullptr;
        }
    }

    static Impl* Self(fuse_req_t req) { return static_cast<Impl*>(fuse_req_userdata(req)); }

    // A FUSE thread that has just submitted polls for a moment before going back to
    // /dev/fuse: the daemon usually answers within microseconds, and a completion run
    // here saves waking the completion thread (tens of microseconds). Requests still
    // unanswered after that are the completion thread's.
    // One FUSE thread at a time polls for answers (it completes everyone's): at queue depth
    // one it saves the wake-up of the completion thread; at depth sixteen the others do not
    // burn the cores the daemon and the callers need.
    struct Assist {
        Impl* fs;
        ~Assist() {
            if (fs->options_.assist_us == 0 || fs->spinning_.exchange(true, std::memory_order_acquire)) {
                return;
            }
            auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(fs->options_.assist_us);
            while (fs->client_->Poll() == 0 && std::chrono::steady_clock::now() < until) {
                __builtin_ia32_pause();
            }
            fs->spinning_.store(false, std::memory_order_release);
        }
    };
    std::atomic<bool> spinning_{false};

    std::optional<Path> PathOf(Ino ino) {
        auto p = nodes_.PathOf(ino);
        if (!p) {
            return std::nullopt;
        }
        auto path = Path::Parse(*p);
        return path.ok() ? std::optional<Path>(*path) : std::nullopt;
    }

    // The path of `name` in `parent`; replies the error itself when there is none.
    std::optional<Path> ChildPath(fuse_req_t req, Ino parent, const char* name) {
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

    std::optional<Path> PathOrReply(fuse_req_t req, Ino ino) {
        auto p = PathOf(ino);
        if (!p) {
            fuse_reply_err(req, ESTALE);
        }
        return p;
    }

    fuse_entry_param Entry(Ino parent, const std::string& name, const ObjectInfo& info, uint64_t lookups = 1) {
        fuse_entry_param e = {};
        e.ino = nodes_.Lookup(parent, name, lookups, info.type == ObjectType::kShard);
        e.generation = 1;
        e.attr = ToStat(info, e.ino);
        e.attr_timeout = options_.attr_timeout;
        e.entry_timeout = options_.entry_timeout;
        return e;
    }

    // After a create by `req`'s caller: the new entry belongs to the caller, not to us.
    template <typename Reply>
    void OwnThenReply(fuse_req_t req, const Path& path, const ObjectInfo& info, Reply reply) {
        const fuse_ctx* ctx = fuse_req_ctx(req);
        if (ctx->uid == info.uid && ctx->gid == info.gid) {
            return reply(info);
        }
        client_->SetMetadataAsync({.path = path, .uid = ctx->uid, .gid = ctx->gid},
                                  [req, reply](absl::StatusOr<ObjectInfo> r) mutable {
                                      if (!r.ok()) {
                                          return (void)fuse_reply_err(req, Errno(r.status()));
                                      }
                                      reply(*r);
                                  });
    }

    // ---- open handles ---------------------------------------------------------------
    // The kernel keeps a number per open file, not a pointer: a successor process (after a
    // restart) that does not know a number makes a fresh handle from the flags in its low
    // bits instead of following a stale pointer.
    static constexpr uint64_t kFhAppend = 1, kFhShard = 2, kFhFlags = 3;

    // 0 if `ino` is a shard whose name is not a shard number.
    // O_APPEND writes are appends in the backend, except with writeback caching: the kernel
    // then places them itself (at the end it knows) and sends them as positional writes.
    bool BackendAppends(int open_flags) const {
        return (open_flags & O_APPEND) != 0 && !options_.writeback_cache;
    }

    uint64_t AddFile(Ino ino, bool append, bool shard) {
        auto h = std::make_shared<FileHandle>();
        h->append = append;
        if (shard && !InitShard(ino, h.get())) {
            return 0;
        }
        std::lock_guard<std::mutex> lock(handles_mu_);
        uint64_t fh = (next_handle_++ << 2) | (append ? kFhAppend : 0) | (shard ? kFhShard : 0);
        files_[fh] = std::move(h);
        return fh;
    }

    // Shared: a shard read still running when the kernel releases the handle (it may, once
    // the read's reply is out) keeps it alive until it is done.
    std::shared_ptr<FileHandle> File(Ino ino, uint64_t fh) {
        std::lock_guard<std::mutex> lock(handles_mu_);
        auto it = files_.find(fh);
        if (it != files_.end()) {
            return it->second;
        }
        // Opened by a predecessor.
        auto h = std::make_shared<FileHandle>();
        h->append = (fh & kFhAppend) != 0;
        if ((fh & kFhShard) && !InitShard(ino, h.get())) {
            return nullptr;
        }
        return files_[fh] = std::move(h);
    }

    void DropFile(uint64_t fh) {
        std::lock_guard<std::mutex> lock(handles_mu_);
        files_.erase(fh);
    }

    uint64_t AddDir() {
        std::lock_guard<std::mutex> lock(handles_mu_);
        uint64_t fh = next_handle_++ << 2;
        dirs_[fh] = std::make_unique<DirHandle>();
        return fh;
    }

    DirHandle* Dir(uint64_t fh) {
        std::lock_guard<std::mutex> lock(handles_mu_);
        auto& d = dirs_[fh];  // opened by a predecessor: a fresh listing
        if (!d) {
            d = std::make_unique<DirHandle>();
        }
        return d.get();
    }

    void DropDir(uint64_t fh) {
        std::lock_guard<std::mutex> lock(handles_mu_);
        dirs_.erase(fh);
    }

    bool InitShard(Ino ino, FileHandle* h) {
        auto path = PathOf(ino);
        if (!path) {
            return false;
        }
        auto name = path->name();
        if (!absl::SimpleAtoi(absl::string_view(name.data(), name.size()), &h->shard_no)) {
            return false;
        }
        h->shard = true;
        h->stream = path->Parent();
        return true;
    }

    // The completion of a call that made `name` in `parent`: the entry is given to the
    // caller, then answered.
    Callback<ObjectInfo> NewEntry(fuse_req_t req, Ino parent, const char* name, Path path) {
        return [this, req, parent, n = std::string(name), path = std::move(path)](absl::StatusOr<ObjectInfo> r) {
            if (!r.ok()) {
                return (void)fuse_reply_err(req, Errno(r.status()));
            }
            OwnThenReply(req, path, *r, [this, req, parent, n](const ObjectInfo& info) {
                fuse_entry_param e = Entry(parent, n, info);
                fuse_reply_entry(req, &e);
            });
        };
    }

    // The completion of a call that removed `name` from `parent`.
    StatusCallback Removed(fuse_req_t req, Ino parent, const char* name) {
        return [this, req, parent, n = std::string(name)](absl::Status s) {
            if (s.ok()) {
                nodes_.Unlink(parent, n);
            }
            fuse_reply_err(req, Errno(s));
        };
    }

    // ---- the operations -------------------------------------------------------------

    static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
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

    static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
        Self(req)->nodes_.Forget(ino, nlookup);
        fuse_reply_none(req);
    }

    static void ForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
        for (size_t i = 0; i < count; ++i) {
            Self(req)->nodes_.Forget(forgets[i].ino, forgets[i].nlookup);
        }
        fuse_reply_none(req);
    }

    static void GetAttr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
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

    static void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info*) {
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
        if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
            meta.mtime = Timestamp::Now();
        } else if (to_set & FUSE_SET_ATTR_MTIME) {
            meta.mtime = Timestamp{attr->st_mtim.tv_sec, static_cast<int32_t>(attr->st_mtim.tv_nsec)};
        }
        bool has_meta = meta.mode || meta.uid || meta.gid || meta.mtime;
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
            fs->client_->StatAsync(*path, std::move(finish));  // atime only: nothing to change
        }
    }

    static void Readlink(fuse_req_t req, fuse_ino_t ino) {
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

    static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
        Impl* fs = Self(req);
        Assist assist{fs};
        auto path = fs->ChildPath(req, parent, name);
        if (!path) {
            return;
        }
        fs->client_->MkdirAsync({.path = *path, .mode = static_cast<uint32_t>(mode & 07777 & ~fuse_req_ctx(req)->umask)},
                                fs->NewEntry(req, parent, name, *path));
    }

    static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
        Impl* fs = Self(req);
        Assist assist{fs};
        auto path = fs->ChildPath(req, parent, name);
        if (!path) {
            return;
        }
        if (auto open = fs->nodes_.OpenAt(parent, name)) {
            // Open here: hide it, so that its descriptors keep working; gone at the last close.
            return fs->Hide(parent, *path, *open, [req](absl::Status s) { fuse_reply_err(req, Errno(s)); });
        }
        fs->client_->DeleteAsync({.path = *path}, fs->Removed(req, parent, name));
    }

    // Renames the open file `ino` at `path` to its hidden name; `then` gets the outcome.
    void Hide(Ino parent, const Path& path, Ino ino, std::function<void(absl::Status)> then) {
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

    static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
        Impl* fs = Self(req);
        Assist assist{fs};
        auto path = fs->ChildPath(req, parent, name);
        if (!path) {
            return;
        }
        fs->client_->RmdirAsync(*path, fs->Removed(req, parent, name));
    }

    static void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
        Impl* fs = Self(req);
        Assist assist{fs};
        auto path = fs->ChildPath(req, parent, name);
        if (!path) {
            return;
        }
        fs->client_->SymlinkAsync({.path = *path, .target = link}, fs->NewEntry(req, parent, name, *path));
    }

    static void Link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
        fuse_reply_err(req, EPERM);  // no hard links: link(2)'s answer for such file systems
    }

    static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
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
        auto rename = [fs, req, parent, newparent, from = *from, to = *to, no_replace = (flags & RENAME_NOREPLACE) != 0,
                       n = std::string(name), nn = std::string(newname)](absl::Status hidden) {
            if (!hidden.ok()) {
                return (void)fuse_reply_err(req, Errno(hidden));
            }
            fs->client_->RenameAsync({.from = from, .to = to, .no_replace = no_replace},
                                     [fs, req, parent, newparent, n, nn](absl::Status s) {
                                         if (s.ok()) {
                                             fs->nodes_.Move(parent, n, newparent, nn);
                                         }
                                         fuse_reply_err(req, Errno(s));
                                     });
        };
        // A file open here that the rename would replace is hidden first, so that its
        // descriptors keep the old bytes.
        auto open = (flags & RENAME_NOREPLACE) ? std::nullopt : fs->nodes_.OpenAt(newparent, newname);
        if (open && *open != fs->nodes_.OpenAt(parent, name).value_or(0)) {
            return fs->Hide(newparent, *to, *open, rename);
        }
        rename(absl::OkStatus());
    }

    static void Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
        Impl* fs = Self(req);
        Assist assist{fs};
        auto path = fs->PathOrReply(req, ino);
        if (!path) {
            return;
        }
        bool shard = fs->nodes_.IsShard(ino);
        uint64_t fh = fs->AddFile(ino, fs->BackendAppends(fi->flags), shard);
        if (fh == 0) {
            return (void)fuse_reply_err(req, EINVAL);  // a shard file not named by its number
        }
        fi->fh = fh;
        if (shard) {
            // Records, not bytes: read from the start, to the end, whatever st_size says.
            fi->direct_io = 1;  // (not nonseekable: stream files get offset 0 on every read)
            fs->nodes_.Opened(ino);
            return (void)fuse_reply_open(req, fi);
        }
        fuse_file_info out = *fi;
        fs->nodes_.Opened(ino);
        if (fi->flags & O_TRUNC) {
            fs->client_->TruncateAsync({.path = *path, .size = 0}, [fs, req, ino, out, fh](absl::StatusOr<ObjectInfo> r) {
                if (!r.ok()) {
                    fs->DropFile(fh);
                    fs->nodes_.Closed(ino);
                    return (void)fuse_reply_err(req, Errno(r.status()));
                }
                fs->nodes_.SameVersion(ino, r->size, r->mtime.secs, r->mtime.nsecs);
                fuse_reply_open(req, &out);
            });
            return;
        }
        // The kernel keeps its cached pages when the object is the version it cached them
        // from (same size and mtime as at the previous open).
        fs->client_->StatAsync(*path, [fs, req, ino, out, fh](absl::StatusOr<ObjectInfo> r) mutable {
            if (!r.ok()) {
                fs->DropFile(fh);
                fs->nodes_.Closed(ino);
                return (void)fuse_reply_err(req, Errno(r.status()));
            }
            out.keep_cache = fs->nodes_.SameVersion(ino, r->size, r->mtime.secs, r->mtime.nsecs) ? 1 : 0;
            fuse_reply_open(req, &out);
        });
    }

    static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi) {
        Impl* fs = Self(req);
        Assist assist{fs};
        auto path = fs->ChildPath(req, parent, name);
        if (!path) {
            return;
        }
        Path p = *path;
        uint64_t fh = fs->AddFile(0, fs->BackendAppends(fi->flags), false);
        fi->fh = fh;
        fuse_file_info out = *fi;
        bool excl = (fi->flags & O_EXCL) != 0;
        bool trunc = (fi->flags & O_TRUNC) != 0;
        auto reply = [fs, req, parent, out, n = std::string(name)](const ObjectInfo& info) {
            fuse_entry_param e = fs->Entry(parent, n, info);
            fs->nodes_.Opened(e.ino);
            fuse_reply_create(req, &e, &out);
        };
        // Only if nothing is there: an existing file is opened as it is (O_EXCL: EEXIST).
        fs->client_->PutObjectAsync(
            {.path = p,
             .condition = std::string(kCreateCondition),
             .mode = static_cast<uint32_t>(mode & 07777 & ~fuse_req_ctx(req)->umask)},
            "", [fs, req, p, fh, excl, trunc, reply](absl::StatusOr<ObjectInfo> r) {
                if (r.ok()) {
                    return fs->OwnThenReply(req, p, *r, reply);
                }
                bool exists = IsConditionFailed(r.status());
                if (!exists || excl) {
                    fs->DropFile(fh);
                    return (void)fuse_reply_err(req, exists ? EEXIST : Errno(r.status()));
                }
                auto opened = [fs, req, fh, reply](absl::StatusOr<ObjectInfo> r) {
                    if (!r.ok()) {
                        fs->DropFile(fh);
                        return (void)fuse_reply_err(req, Errno(r.status()));
                    }
                    reply(*r);
                };
                if (trunc) {
                    fs->client_->TruncateAsync({.path = p, .size = 0}, opened);
                } else {
                    fs->client_->StatAsync(p, opened);
                }
            });
    }

    // Bytes [off, off + size) of a shard file's framed records. The handle keeps a window
    // of framed bytes starting at `offset`, fetches records until the window covers the
    // read (or the shard ends), and drops what lies well before the read: readers go
    // forward.
    // A shard read holds its handle (`h`) until it has answered and handed on to the next.
    using ShardHandle = std::shared_ptr<FileHandle>;

    void ReadShard(fuse_req_t req, ShardHandle h, size_t size, off_t off) {
        {
            std::lock_guard<std::mutex> lock(h->mu);
            if (h->busy) {
                h->waiting.emplace_back(req, size, off);
                return;
            }
            h->busy = true;
        }
        ReadShardNow(req, h, size, off);
    }

    // Called when a shard read has been answered: the next waiting one, if any, goes on.
    void ShardReadDone(const ShardHandle& h) {
        std::tuple<fuse_req_t, size_t, off_t> next;
        {
            std::lock_guard<std::mutex> lock(h->mu);
            if (h->waiting.empty()) {
                h->busy = false;
                return;
            }
            next = h->waiting.front();
            h->waiting.pop_front();
        }
        ReadShardNow(std::get<0>(next), h, std::get<1>(next), std::get<2>(next));
    }

    // Reads of one handle may arrive out of order by this much and still be served.
    static constexpr uint64_t kShardWindowBehind = 8 << 20;

    void ReadShardNow(fuse_req_t req, ShardHandle h, size_t size, off_t off) {
        auto fail = [this, req, h](int e) {
            fuse_reply_err(req, e);
            ShardReadDone(h);
        };
        uint64_t at = static_cast<uint64_t>(off);
        if (at < h->offset) {
            if (at != 0) {
                return fail(EINVAL);  // shard files are read forward
            }
            h->next_sequence = 0;  // from the start again
            h->offset = 0;
            h->pending.clear();
        }
        if (h->next_sequence == 0) {
            // First read: from the oldest record still retained.
            return client_->SeekAsync({.path = h->stream, .shard = h->shard_no, .type = SeekType::kEarliest},
                                      [this, req, h, size, off, fail](absl::StatusOr<StreamLocation> r) {
                                          if (!r.ok()) {
                                              return fail(Errno(r.status()));
                                          }
                                          h->next_sequence = r->sequence;
                                          ReadShardNow(req, h, size, off);
                                      });
        }
        uint64_t end = h->offset + h->pending.size();
        if (end >= at + size || h->at_end) {
            // Covered (or all there is): hand it over and forget what lies before it.
            h->at_end = false;  // a later read looks for new records again
            size_t from = static_cast<size_t>(std::min(at, end) - h->offset);
            size_t n = std::min<size_t>(size, h->pending.size() - from);
            fuse_reply_buf(req, h->pending.data() + from, n);
            // Keep some bytes behind the read, for requests of the same read that come late.
            if (from > kShardWindowBehind) {
                size_t drop = from - kShardWindowBehind;
                h->pending.erase(0, drop);
                h->offset += drop;
            }
            return ShardReadDone(h);
        }
        client_->GetRecordsAsync({.path = h->stream,
                                  .location = {.shard = h->shard_no, .sequence = h->next_sequence},
                                  .limit = 1000,
                                  .max_bytes = std::max<uint64_t>(at + size - end, 64 << 10)},
                                 [this, req, h, size, off, fail](absl::StatusOr<GetRecordsResult> r) {
                                     if (!r.ok()) {
                                         return fail(Errno(r.status()));
                                     }
                                     for (const StreamRecord& rec : r->records) {
                                         AppendFrame(rec, &h->pending);
                                     }
                                     h->next_sequence = r->next.sequence;
                                     h->at_end = r->records.empty();
                                     ReadShardNow(req, h, size, off);
                                 });
    }

    static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
        Impl* fs = Self(req);
        Assist assist{fs};
        if (std::shared_ptr<FileHandle> h = fs->File(ino, fi->fh); h != nullptr && h->shard) {
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

    static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                      struct fuse_file_info* fi) {
        Impl* fs = Self(req);
        Assist assist{fs};
        auto path = fs->PathOrReply(req, ino);
        if (!path) {
            return;
        }
        std::shared_ptr<FileHandle> h = fs->File(ino, fi->fh);
        if (h != nullptr && h->shard) {
            // One write, one record, on this shard.
            return fs->client_->PutRecordsAsync(
                {.path = h->stream, .records = {{.data = std::string(buf, size), .shard = h->shard_no}}},
                [req, size](absl::StatusOr<std::vector<RecordResult>> r) {
                    absl::Status s = !r.ok() ? r.status() : r->empty() ? absl::InternalError("no result") : (*r)[0].status;
                    if (!s.ok()) {
                        return (void)fuse_reply_err(req, Errno(s));
                    }
                    fuse_reply_write(req, size);
                });
        }
        // A write in flight when zerohopd restarts has an unknown outcome. Writing the same
        // bytes at the same place again gives the same file either way, so it is sent once
        // more as a positional write at the offset the kernel gave (for O_APPEND, the size
        // the kernel knows, which is where a single appender's bytes belong).
        auto retry = std::make_shared<std::string>(buf, size);
        auto done = [fs, req, size, p = *path, off, retry](absl::StatusOr<ObjectInfo> r) {
            if (r.ok()) {
                return (void)fuse_reply_write(req, size);
            }
            if (!absl::IsUnavailable(r.status()) || !absl::StrContains(r.status().message(), "restarted while")) {
                return (void)fuse_reply_err(req, Errno(r.status()));
            }
            fs->client_->WriteObjectAsync({.path = p, .offset = static_cast<uint64_t>(off), .data = *retry},
                                          [req, size, retry](absl::StatusOr<ObjectInfo> again) {
                                              if (!again.ok()) {
                                                  return (void)fuse_reply_err(req, Errno(again.status()));
                                              }
                                              fuse_reply_write(req, size);
                                          });
        };
        // The bytes are copied into the request before these return.
        std::string_view data(buf, size);
        if (h != nullptr && h->append) {
            fs->client_->AppendAsync({.path = *path, .data = data}, done);
        } else {
            fs->client_->WriteObjectAsync({.path = *path, .offset = static_cast<uint64_t>(off), .data = data}, done);
        }
    }

    // Reserving space: the backends have no preallocation, so mode 0 extends the size (the
    // new bytes read as zeros) and FALLOC_FL_KEEP_SIZE succeeds without change; punching or
    // collapsing ranges is EOPNOTSUPP.
    static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
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

    static void Flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) {
        fuse_reply_err(req, 0);  // every write is already in the backend
    }

    static void Release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
        Impl* fs = Self(req);
        Assist assist{fs};
        fs->DropFile(fi->fh);
        if (auto hidden = fs->nodes_.Closed(ino)) {
            // The last close of a file unlinked while open: now it goes.
            if (auto p = Path::Parse(*hidden); p.ok()) {
                fs->client_->DeleteAsync({.path = *p}, [](absl::Status) {});
            }
        }
        fuse_reply_err(req, 0);
    }

    static void Fsync(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info*) {
        // Durable in the backend: everything acknowledged so far survives power loss.
        Self(req)->client_->SyncAsync([req](absl::Status s) { fuse_reply_err(req, Errno(s)); });
    }

    static void OpenDir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
        if (!Self(req)->PathOf(ino)) {
            return (void)fuse_reply_err(req, ESTALE);
        }
        fi->fh = Self(req)->AddDir();
        fuse_reply_open(req, fi);
    }

    static void ReleaseDir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
        Self(req)->DropDir(fi->fh);
        fuse_reply_err(req, 0);
    }

    // Loads the whole listing into `d`, page by page, then calls `then`.
    void LoadDir(fuse_req_t req, Path path, DirHandle* d, std::string marker, std::function<void()> then) {
        client_->ListAsync({.path = path, .marker = marker, .limit = kMaxListLimit},
                           [this, req, path, d, then](absl::StatusOr<ListResult> r) mutable {
                               if (!r.ok()) {
                                   return (void)fuse_reply_err(req, Errno(r.status()));
                               }
                               for (auto& e : r->entries) {
                                   if (!NodeTable::IsHidden(e.name)) {
                                       d->entries.push_back(std::move(e));
                                   }
                               }
                               if (r->truncated && !r->next_marker.empty()) {
                                   return LoadDir(req, path, d, r->next_marker, std::move(then));
                               }
                               d->loaded = true;
                               then();
                           });
    }

    static void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
        ReadDirCommon(req, ino, size, off, fi, false);
    }
    static void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
        ReadDirCommon(req, ino, size, off, fi, true);
    }

    static void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi,
                              bool plus) {
        Impl* fs = Self(req);
        Assist assist{fs};
        DirHandle* d = fs->Dir(fi->fh);
        auto serve = [fs, req, ino, size, off, d, plus] { fs->ServeDir(req, ino, size, off, d, plus); };
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

    // Offsets: 1 and 2 for "." and "..", then 3 + the entry's index in the listing.
    void ServeDir(fuse_req_t req, Ino ino, size_t size, off_t off, DirHandle* d, bool plus) {
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
        for (off_t i = off; i < 2 + static_cast<off_t>(d->entries.size()); ++i) {
            bool fit;
            if (i < 2) {
                dir.st_ino = i == 0 ? ino : kRootIno;  // ".." needs some inode, or ls hides it
                fit = add(i == 0 ? "." : "..", dir, i + 1, nullptr);
            } else {
                const DirEntry& e = d->entries[static_cast<size_t>(i - 2)];
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

    static void StatFs(fuse_req_t req, fuse_ino_t) {
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

    // ---- xattrs: user.<name> is attribute <name> ----------------------------------------

    static std::optional<std::string> AttrName(const char* xattr) {
        std::string_view n(xattr);
        if (!n.starts_with(kXattrPrefix) || n.size() == kXattrPrefix.size()) {
            return std::nullopt;
        }
        return std::string(n.substr(kXattrPrefix.size()));
    }

    static void ReplyXattr(fuse_req_t req, const std::string& value, size_t size) {
        if (size == 0) {
            fuse_reply_xattr(req, value.size());
        } else if (value.size() > size) {
            fuse_reply_err(req, ERANGE);
        } else {
            fuse_reply_buf(req, value.data(), value.size());
        }
    }

    static void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
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

    static void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
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

    // A read-modify-write of the attribute map, guarded by the mtime it read: a concurrent
    // change makes the put fail and the whole change is tried again.
    void ChangeAttributes(fuse_req_t req, Path path, std::function<int(AttributeMap*)> change, int attempts) {
        client_->GetItemAsync(
            {.path = path, .attributes = {"*", "__mtime_secs", "__mtime_nsecs"}},
            [this, req, path, change, attempts](absl::StatusOr<Item> r) {
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
                    return (void)fuse_reply_err(req, e);
                }
                client_->PutItemAsync(
                    {.path = path,
                     .attributes = std::move(attrs),
                     .condition = absl::StrFormat("__mtime_secs == %d AND __mtime_nsecs == %d", secs, nsecs)},
                    [this, req, path, change, attempts](absl::StatusOr<ObjectInfo> w) {
                        if (w.ok()) {
                            return (void)fuse_reply_err(req, 0);
                        }
                        if (absl::IsFailedPrecondition(w.status()) && attempts > 1) {
                            return ChangeAttributes(req, path, change, attempts - 1);
                        }
                        fuse_reply_err(req, absl::IsFailedPrecondition(w.status()) ? EAGAIN : Errno(w.status()));
                    });
            });
    }

    static void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
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
            8);
    }

    static void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
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
        fs->ChangeAttributes(
            req, *path, [a = *attr](AttributeMap* attrs) { return attrs->erase(a) == 1 ? 0 : ENODATA; }, 8);
    }

    static void Init(void* userdata, struct fuse_conn_info* conn) {
        auto* fs = static_cast<Impl*>(userdata);
        conn->max_write = 1 << 20;
        conn->max_readahead = 1 << 20;
        conn->max_background = 64;
        if (conn->capable & FUSE_CAP_READDIRPLUS) {
            conn->want |= FUSE_CAP_READDIRPLUS;
        }
        if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) {
            conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;  // O_TRUNC comes with the open: one request, not two
        }
        if (fs->options_.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
            conn->want |= FUSE_CAP_WRITEBACK_CACHE;
        } else {
            conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  // every write goes to the backend when made
        }
    }

    static struct fuse_lowlevel_ops Ops() {
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

    FuseOptions options_;
    NodeTable nodes_;
    std::mutex handles_mu_;
    uint64_t next_handle_ = 1;  // under handles_mu_
    absl::flat_hash_map<uint64_t, std::shared_ptr<FileHandle>> files_;  // under handles_mu_
    absl::flat_hash_map<uint64_t, std::unique_ptr<DirHandle>> dirs_;    // under handles_mu_
    std::unique_ptr<Client> client_;
    struct fuse_session* session_ = nullptr;
    std::mutex unmount_mu_;  // Stop (another thread) against Shutdown: libfuse's unmount is not re-entrant
    bool mounted_ = false;
    bool resumed_ = false;          // serving a predecessor's mount
    shmring::UniqueFd journal_;     // the inode journal the holder keeps
    shmring::UniqueFd lease_;       // our connection to the holder: open while we serve
    std::atomic<bool> stopping_{false};
    std::thread completions_;
};

absl::StatusOr<std::unique_ptr<FuseFs>> FuseFs::Mount(FuseOptions options) {
    auto impl = std::make_unique<Impl>(std::move(options));
    if (absl::Status s = impl->Start(); !s.ok()) {
        return s;
    }
    return std::unique_ptr<FuseFs>(new FuseFs(std::move(impl)));
}

FuseFs::FuseFs(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FuseFs::~FuseFs() = default;
absl::Status FuseFs::Run() { return impl_->Run(); }
void FuseFs::Stop() { impl_->Stop(); }

}  // namespace zerohop::fuse

#pragma once
// What zerohop-fuse is made of (fuse_fs.h is its face): the FuseFs::Impl that libfuse calls
// into, the handles of open files and directories, and the helpers its parts share.
//
// Its parts:
//   mount.cc        mounting, or taking a predecessor's mount over from the holder, the
//                   kernel connection's options, and shutting down
//   fuse_fs.cc      the operations table: lookup, attributes, namespace, files, directories,
//                   xattrs
//   shard_files.cc  stream shards as files: reads yield framed records, a write appends one
//   once.cc         exactly once: the request journal's hooks on /dev/fuse, and what a
//                   request a predecessor began is answered with

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include <fuse3/fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "fuse_fs.h"
#include "node_table.h"
#include "passthrough.h"
#include "request_journal.h"
#include "shmring/unique_fd.h"
#include "zerohop/client.h"

namespace zerohop::fuse {

// What a backend error means to the kernel: StatusToErrno, except that ENOSYS from a
// handler would tell the kernel never to call that operation again, and EAGAIN (the daemon
// is gone and did not come back) would have callers retry forever.
int Errno(const absl::Status& s);
// The S_IFMT bits of what `info` names.
mode_t TypeBits(const ObjectInfo& info);
struct stat ToStat(const ObjectInfo& info, Ino ino);

// An open directory: the listing taken at the first readdir, so that offsets stay
// stable (entries added later are not seen through this handle, none is seen twice).
struct DirHandle {
    std::vector<DirEntry> entries;
    bool loaded = false;
};

// An open file.
struct FileHandle {
    bool append = false;
    bool passthrough = false;  // the kernel reads it from its backing file
    // An open for reading only of an object that is a local file the kernel does not read
    // itself: the file, which READs are answered from (the version opened, as a passed-
    // through open reads it).
    shmring::UniqueFd file;
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

// A record as a shard file shows it (shard_files.cc).
void AppendFrame(const StreamRecord& r, std::string* out);

// The condition of a create: nothing is there yet.
inline constexpr std::string_view kCreateCondition = "NOT exists(__name)";

class FuseFs::Impl {
public:
    explicit Impl(FuseOptions o) : options_(std::move(o)), nodes_(options_.root) {}

    absl::Status Start();

    // Takes over a connection the kernel already initialized with a predecessor: libfuse
    // is given an INIT of its own (its answer goes nowhere: the kernel knows no such
    // request), and the kernel is asked to send again every request the predecessor had
    // read and not answered (FUSE_NOTIFY_RESEND, Linux 6.9).
    void Resume();

    // Puts the request journal's hooks between libfuse and /dev/fuse (once.cc), before
    // the first request is read.
    absl::Status HookIo();

    absl::Status Run();

    // From any thread (main.cc calls it from its signal watcher), also while Run ends.
    void Stop();

    ~Impl() { Shutdown(); }

private:
    // A resumed session's mount point is /dev/fd/N to libfuse: unmount the real one.
    void Unmount();

    void Shutdown();

    static Impl* Self(fuse_req_t req) { return static_cast<Impl*>(fuse_req_userdata(req)); }

    // A FUSE thread that has just submitted the only request in progress polls for its
    // answer for a moment before going back to /dev/fuse: the daemon usually answers
    // within microseconds, and a completion run here saves waking the completion thread
    // (tens of microseconds). With more in progress, nobody spins: the completion thread
    // answers them in batches, and on two cores a spinning thread takes the CPU the
    // daemon and the callers need. Requests still unanswered after that are the completion
    // thread's.
    struct Assist {
        Impl* fs;
        ~Assist() {
            if (fs->options_.assist_us == 0 || fs->answering_.load(std::memory_order_relaxed) != 1 ||
                fs->spinning_.exchange(true, std::memory_order_acquire)) {
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
    std::atomic<int> answering_{0};  // requests read from /dev/fuse and not answered yet

    std::optional<Path> PathOf(Ino ino);

    // The path of `name` in `parent`; replies the error itself when there is none.
    std::optional<Path> ChildPath(fuse_req_t req, Ino parent, const char* name);

    std::optional<Path> PathOrReply(fuse_req_t req, Ino ino);

    fuse_entry_param Entry(Ino parent, const std::string& name, const ObjectInfo& info, uint64_t lookups = 1);

    // ---- exactly once (once.cc, request_journal.h) ------------------------------------
    // libfuse reads requests and writes answers through these: the number of the request
    // a thread is handling is noted, and a request's record ends once its answer is out.
    static ssize_t ReadRequest(int fd, void* buf, size_t size, void* userdata);
    static void ClampToLength(void* buf, size_t n);  // a request's inner byte counts, to its length
    static ssize_t WriteAnswer(int fd, struct iovec* iov, int count, void* userdata);
    static thread_local uint64_t incoming_;
    std::atomic<uint64_t> init_unique_{0};  // the kernel's INIT: its answer asks for passthrough

    // A request that changes something, on its way (held by its completions).
    struct Once {
        uint64_t unique = 0;
        // It may have been applied already: a predecessor began it, or zerohopd restarted
        // while it was in flight. It is applied so that twice gives what once gives (a
        // create finds the file there, an unlink finds it gone, an append is written at
        // the offset the kernel gave).
        bool unknown = false;
        // Applied by a predecessor: answered from what it recorded, not applied again.
        std::optional<std::string> applied;
    };
    // Called by the handler of such a request, on the thread libfuse called it on.
    Once BeginOnce();
    // Before the answer: the request was applied; `payload` is what its answer needs.
    void AppliedOnce(const Once& once, const void* payload = nullptr, size_t size = 0);
    // Whether `s` says zerohopd restarted with the request in flight (the first time): `once`
    // is then marked unknown, and the caller applies the request again.
    static bool MadeUnknown(Once* once, const absl::Status& s);
    // `s`, except that a name found gone is no error for a removal whose outcome was
    // unknown: this very request removed it before the restart.
    static absl::Status GoneBefore(const Once& once, absl::Status s);
    // A seam for the tests of the above: ZEROHOP_FUSE_FAULT=after-apply makes the server
    // kill itself (SIGKILL) when a request is applied and not recorded yet, after-record
    // when it is recorded and not answered yet.
    enum class Fault { kNone, kAfterApply, kAfterRecord };
    Fault fault_ = Fault::kNone;

    // After a create by `req`'s caller: the new entry belongs to the caller, not to us. A
    // root zerohop-fuse names the owner in the create itself (Caller), so this finds it done;
    // run as another user, it takes a second request (and a create whose answer is lost
    // leaves the entry ours).
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

    // The kernel asks for at most max_pages (256) pages per read or directory read; a size
    // beyond that is not its, and must neither make us allocate it nor give an answer the
    // device refuses (found by the FUSE request fuzzer: a 4 GiB readdir, a 50 MiB read).
    static constexpr size_t kMaxAnswer = 256 * 4096;

    // ---- open handles ---------------------------------------------------------------
    // The kernel keeps a number per open file, not a pointer: a successor process (after a
    // restart) that does not know a number makes a fresh handle from the flags in its low
    // bits instead of following a stale pointer. A number is [generation:21][count:40]
    // [flags:3]; the generation is the request journal's (one more per restart), so that a
    // successor's new handles never equal those its predecessors gave and the kernel holds.
    static constexpr uint64_t kFhAppend = 1, kFhShard = 2, kFhPassthrough = 4, kFhFlags = 7;
    static constexpr int kFhGenerationShift = 43;

    // The generation of this process's handle numbers: 1 to 2^21 - 1, one more per restart
    // (it comes round again after two million restarts of one mount).
    static uint64_t HandleGeneration(const RequestJournal& requests);
    // A new handle number with `flags` (under handles_mu_).
    uint64_t NewHandle(uint64_t flags);
    // Whether `fh` was given by a predecessor (the kernel may still hold it). A number of
    // ours that we do not know was released, or never given: the kernel does not send
    // those, and they get a handle that is not kept, so no number can make us hold memory.
    bool Predecessors(uint64_t fh) const;

    // 0 if `ino` is a shard whose name is not a shard number.
    // O_APPEND writes are appends in the backend, except with writeback caching: the kernel
    // then places them itself (at the end it knows) and sends them as positional writes.
    bool BackendAppends(int open_flags) const;

    uint64_t AddFile(Ino ino, bool append, bool shard, bool passthrough = false, shmring::UniqueFd file = {});

    // Shared: a shard read still running when the kernel releases the handle (it may, once
    // the read's reply is out) keeps it alive until it is done.
    std::shared_ptr<FileHandle> File(Ino ino, uint64_t fh);

    // Forgets the handle; whether it was an open the kernel passes through.
    bool DropFile(uint64_t fh);

    // Answers an open of `ino` (not a shard) made as `choice` says (passthrough.h), with a
    // new handle; takes back what it counted if the answer cannot reach the kernel.
    // `file`: the object's file, for an open whose reads we answer from it (FileHandle::file).
    void AnswerOpen(fuse_req_t req, Ino ino, fuse_file_info out, Passthrough::Choice choice,
                    shmring::UniqueFd file = {});

    // Answers a READ from the object's file itself.
    static void ReadFile(fuse_req_t req, int file, size_t size, off_t off);

    uint64_t AddDir();

    // Shared: a listing in flight keeps it alive.
    std::shared_ptr<DirHandle> Dir(uint64_t fh);

    void DropDir(uint64_t fh);

    bool InitShard(Ino ino, FileHandle* h);

    // The completion of a call that made `name` in `parent`: the entry is given to the
    // caller, then answered. An outcome made unknown calls `again` (the same call, marked
    // unknown); a name found there when unknown is the one this request made.
    Callback<ObjectInfo> NewEntry(fuse_req_t req, Ino parent, const char* name, Path path, Once once,
                                  std::function<void(Once)> again);
    // Answers a request a predecessor applied with the entry it recorded.
    static bool ReplayEntry(fuse_req_t req, const Once& once);
    // The start of a request that makes an entry (mkdir, symlink, mknod): its path and its
    // journal slot; nullopt when it is answered already (a bad name, or a predecessor made
    // the entry and its answer is replayed).
    std::optional<std::pair<Path, Once>> BeginEntry(fuse_req_t req, Ino parent, const char* name);

    // The completion of a call that removed `name` from `parent` (a name gone when unknown
    // is the one this request removed).
    StatusCallback Removed(fuse_req_t req, Ino parent, const char* name, Once once, std::function<void(Once)> again);

    // ---- the operations -------------------------------------------------------------

    static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);

    static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);

    static void ForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets);
    void ForgetNode(Ino ino, uint64_t nlookup);

    static void GetAttr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*);

    static void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info*);

    static void Readlink(fuse_req_t req, fuse_ino_t ino);

    static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
    void MkdirNow(fuse_req_t req, Ino parent, std::string name, Path path, uint32_t mode, Once once);

    static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
    void UnlinkNow(fuse_req_t req, Ino parent, std::string name, Path path, Once once);
    // Unlink and rmdir alike: the path, the journal, then `now`.
    using RemovalNow = void (Impl::*)(fuse_req_t, Ino, std::string, Path, Once);
    void BeginRemoval(fuse_req_t req, Ino parent, const char* name, RemovalNow now);

    // Renames the open file `ino` at `path` to its hidden name; `then` gets the outcome.
    void Hide(Ino parent, const Path& path, Ino ino, std::function<void(absl::Status)> then);

    static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
    void RmdirNow(fuse_req_t req, Ino parent, std::string name, Path path, Once once);

    static void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
    void SymlinkNow(fuse_req_t req, Ino parent, std::string name, Path path, std::string target, Once once);
    static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
    void MknodNow(fuse_req_t req, Ino parent, std::string name, Path path, uint32_t kind, uint32_t perms, uint64_t rdev,
                  Once once);

    static void Link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*);

    static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
                       unsigned int flags);
    struct RenameArgs {
        Ino parent, newparent;
        std::string name, newname;
        Path from, to;
        bool no_replace;
    };
    void RenameNow(fuse_req_t req, RenameArgs a, Once once);

    static void Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);

    static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi);
    // What a create's answer is made of (recorded for a successor).
    struct Created {
        fuse_entry_param entry;
        fuse_file_info file;
    };
    void CreateNow(fuse_req_t req, Ino parent, std::string name, Path path, uint32_t mode, fuse_file_info out,
                   Once once);
    // As AnswerOpen, for a create (its handle made before the create was sent).
    void AnswerCreate(fuse_req_t req, const Created& c);
    // Sends an open's or a create's answer (`send`), which carries `choice`; takes back
    // what was counted for it if it cannot reach the kernel.
    template <typename Send>
    void SendOpened(Ino ino, uint64_t fh, const Passthrough::Choice& choice, Send send);
    // Containers whose files zerohopd will not hand us (the key may not write them): their
    // opens take the daemon's way without asking. `refused`: add `container`.
    bool NoFilesFrom(std::string_view container, bool refused = false);
    // Whether an open with `open_flags` asks zerohopd for the object's file: for the kernel
    // to pass it through, or for us to read it (ReadsFile).
    bool WantsFile(int open_flags) const;
    // Whether we answer the READs the kernel sends for such an open from the file itself: an
    // open that never writes. (One that writes reads through zerohopd, so that it reads what
    // it wrote also after a put replaced the version it opened.)
    bool ReadsFile(int open_flags) const;
    std::atomic<bool> files_refused_{false};  // zerohopd hands out no files (older)

    // Bytes [off, off + size) of a shard file's framed records. The handle keeps a window
    // of framed bytes starting at `offset`, fetches records until the window covers the
    // read (or the shard ends), and drops what lies well before the read: readers go
    // forward.
    // A shard read holds its handle (`h`) until it has answered and handed on to the next.
    using ShardHandle = std::shared_ptr<FileHandle>;

    void ReadShard(fuse_req_t req, ShardHandle h, size_t size, off_t off);

    // Called when a shard read has been answered: the next waiting one, if any, goes on.
    void ShardReadDone(const ShardHandle& h);

    // Reads of one handle may arrive out of order by this much and still be served.
    static constexpr uint64_t kShardWindowBehind = 8 << 20;

    void ReadShardNow(fuse_req_t req, ShardHandle h, size_t size, off_t off);

    static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi);

    static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                      struct fuse_file_info* fi);
    void WriteNow(fuse_req_t req, const Path& path, std::string_view data, off_t off, bool append, Once once);

    // Reserving space: the backends have no preallocation, so mode 0 extends the size (the
    // new bytes read as zeros) and FALLOC_FL_KEEP_SIZE succeeds without change; punching or
    // collapsing ranges is EOPNOTSUPP.
    static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                          struct fuse_file_info*);

    static void Flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info*);

    static void Release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);

    static void Fsync(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info*);

    static void OpenDir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);

    static void ReleaseDir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi);

    // Loads the whole listing into `d`, page by page, then calls `then`.
    void LoadDir(fuse_req_t req, Path path, std::shared_ptr<DirHandle> d, std::string marker, std::function<void()> then);

    static void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi);
    static void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi);

    static void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi,
                              bool plus);

    // Offsets: 1 and 2 for "." and "..", then 3 + the entry's index in the listing.
    void ServeDir(fuse_req_t req, Ino ino, size_t size, off_t off, const DirHandle& d, bool plus);

    static void StatFs(fuse_req_t req, fuse_ino_t);

    // ---- xattrs: user.<name> is attribute <name> ----------------------------------------

    static std::optional<std::string> AttrName(const char* xattr);

    static void ReplyXattr(fuse_req_t req, const std::string& value, size_t size);

    static void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);

    static void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size);

    // A read-modify-write of the attribute map, guarded by the mtime it read: a concurrent
    // change makes the put fail and the whole change is tried again.
    // When the outcome is unknown, `already` (EEXIST for a create-only set, ENODATA for a
    // remove) means this very change was made.
    void ChangeAttributes(fuse_req_t req, Path path, std::function<int(AttributeMap*)> change, int attempts, Once once,
                          int already);

    static void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags);

    static void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name);

    static void Init(void* userdata, struct fuse_conn_info* conn);

    static struct fuse_lowlevel_ops Ops();

    FuseOptions options_;
    NodeTable nodes_;
    Passthrough passthrough_{options_.passthrough && !options_.writeback_cache, &nodes_};
    std::mutex handles_mu_;
    uint64_t handle_generation_ = 1;  // set at mount
    uint64_t next_handle_ = 1;        // under handles_mu_
    absl::flat_hash_map<uint64_t, std::shared_ptr<FileHandle>> files_;  // under handles_mu_
    absl::flat_hash_map<uint64_t, std::shared_ptr<DirHandle>> dirs_;    // under handles_mu_
    absl::flat_hash_set<std::string> no_files_;                         // under handles_mu_
    std::unique_ptr<Client> client_;
    struct fuse_session* session_ = nullptr;
    std::mutex unmount_mu_;  // Stop (another thread) against Shutdown: libfuse's unmount is not re-entrant
    bool mounted_ = false;
    bool resumed_ = false;          // serving a predecessor's mount
    bool unmounted_ = false;        // we unmounted (a clean stop): the holder is told
    shmring::UniqueFd journal_;     // the inode journal the holder keeps
    std::optional<RequestJournal> requests_;  // the request journal the holder keeps
    shmring::UniqueFd lease_;       // our connection to the holder: open while we serve
    std::atomic<bool> stopping_{false};
    std::thread completions_;
};

}  // namespace zerohop::fuse

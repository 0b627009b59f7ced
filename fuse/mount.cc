// zerohop-fuse's mount: mounting, or taking a predecessor's mount over from the holder
// (its /dev/fuse descriptor and inode journal, the kernel asked to resend what was in
// flight), the kernel connection's options, and shutting down from any thread.

#include <errno.h>
#include <linux/fuse.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "holder.h"
#include "internal/fs.h"

namespace zerohop::fuse {

uint64_t FuseFs::Impl::HandleGeneration(const RequestJournal& requests) {
    constexpr uint64_t kGenerations = (uint64_t{1} << (64 - kFhGenerationShift)) - 1;
    return (requests.generation() - 1) % kGenerations + 1;
}

absl::Status FuseFs::Impl::Start() {
    if (const char* f = getenv("ZEROHOP_FUSE_FAULT"); f != nullptr && *f != '\0') {
        std::string_view fault(f);
        if (fault != "after-apply" && fault != "after-record") {
            return absl::InvalidArgumentError(
                absl::StrFormat("ZEROHOP_FUSE_FAULT=%s: after-apply or after-record", fault));
        }
        fault_ = fault == "after-apply" ? Fault::kAfterApply : Fault::kAfterRecord;
    }
    // zerohopd may be restarting (or not up yet at a node's boot): wait for it as libzerohop
    // waits for a restarted daemon, rather than leave a mount without a server.
    absl::Time give_up = absl::Now() + options_.client.reconnect_timeout;
    auto c = Client::Connect(options_.client);
    while (!c.ok() && absl::IsUnavailable(c.status()) && absl::Now() < give_up) {
        absl::SleepFor(absl::Milliseconds(20));
        c = Client::Connect(options_.client);
    }
    ZH_RETURN_IF_ERROR(c.status());
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
    if (TypeBits(*info) != S_IFDIR) {
        return absl::FailedPreconditionError(absl::StrFormat("root %s is not a directory", options_.root));
    }

    std::vector<std::string> argv = {"zerohop-fuse", "-o", "fsname=zerohop,subtype=zerohop,default_permissions"};
    if (options_.read_only) {
        argv.push_back("-o");
        argv.push_back("ro");
    }
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
        ZH_RETURN_IF_ERROR(nodes_.Replay(held->journal.get()));
        journal_ = std::move(held->journal);
        ZH_ASSIGN_OR_RETURN(RequestJournal requests, RequestJournal::Adopt(std::move(held->requests)));
        requests_ = std::move(requests);
        handle_generation_ = HandleGeneration(*requests_);
        lease_ = std::move(held->lease);
        nodes_.SetJournal(journal_.get());
        int fd = held->fuse.release();  // the session owns it from here
        if (fuse_session_mount(session_, absl::StrCat("/dev/fd/", fd).c_str()) != 0) {
            return absl::InternalError("cannot serve the held /dev/fuse descriptor");
        }
        ZH_RETURN_IF_ERROR(HookIo());
        passthrough_.Bind(fuse_session_fd(session_), true);
        resumed_ = true;
        Resume();
    } else {
        ZH_ASSIGN_OR_RETURN(RequestJournal requests, RequestJournal::Create());
        requests_ = std::move(requests);
        handle_generation_ = HandleGeneration(*requests_);
        if (!options_.holder_socket.empty()) {
            journal_.reset(::memfd_create("zerohop-fuse-inodes", MFD_CLOEXEC));
            if (!journal_.valid()) {
                return absl::InternalError(absl::StrFormat("memfd_create: %s", strerror(errno)));
            }
            nodes_.SetJournal(journal_.get());
        }
        std::string target = options_.device_fd >= 0 ? absl::StrCat("/dev/fd/", options_.device_fd)
                                                     : options_.mountpoint;
        if (fuse_session_mount(session_, target.c_str()) != 0) {
            fuse_session_destroy(session_);
            session_ = nullptr;
            return absl::FailedPreconditionError(absl::StrFormat(
                "cannot mount on %s (does it exist? is /dev/fuse there? root or fusermount3 needed)",
                options_.mountpoint));
        }
        if (absl::Status hooked = HookIo(); !hooked.ok()) {
            fuse_session_unmount(session_);
            fuse_session_destroy(session_);
            session_ = nullptr;
            return hooked;
        }
        passthrough_.Bind(fuse_session_fd(session_), false);
        if (!options_.holder_socket.empty()) {
            auto lease = SpawnHolder(options_.self_exe, options_.holder_socket,
                                     {.fuse = fuse_session_fd(session_),
                                      .journal = journal_.get(),
                                      .requests = requests_->fd()},
                                     options_.mountpoint, options_.takeover_secs);
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

absl::Status FuseFs::Impl::HookIo() {
    static const fuse_custom_io io = {.writev = WriteAnswer, .read = ReadRequest};
    if (int r = fuse_session_custom_io(session_, &io, fuse_session_fd(session_)); r != 0) {
        return absl::InternalError(absl::StrFormat("fuse_session_custom_io: %s", strerror(-r)));
    }
    return absl::OkStatus();
}

void FuseFs::Impl::Resume() {
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

absl::Status FuseFs::Impl::Run() {
    struct fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, options_.max_threads);
    fuse_loop_cfg_set_idle_threads(cfg, std::max(2u, options_.max_threads / 2));
    int r = fuse_session_loop_mt(session_, cfg);
    fuse_loop_cfg_destroy(cfg);
    Shutdown();
    return r == 0 ? absl::OkStatus() : absl::InternalError(absl::StrFormat("FUSE loop ended with %d", r));
}

void FuseFs::Impl::Stop() {
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

void FuseFs::Impl::Unmount() {
    unmounted_ = true;
    if (resumed_) {
        ::umount2(options_.mountpoint.c_str(), MNT_DETACH);
    } else {
        fuse_session_unmount(session_);
    }
}

void FuseFs::Impl::Shutdown() {
    {
        std::lock_guard lock(unmount_mu_);
        if (session_ != nullptr && mounted_) {
            Unmount();
            mounted_ = false;
        }
        // Only after a clean stop: a server that failed to start (or to take over) leaves
        // the mount to the holder and the next server.
        if (unmounted_ && lease_.valid()) {
            ReleaseHolder(lease_.get());
            lease_.reset();
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

void FuseFs::Impl::Init(void* userdata, struct fuse_conn_info* conn) {
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

}  // namespace zerohop::fuse

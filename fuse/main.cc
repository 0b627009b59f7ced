// zerohop-fuse: mounts the zerohop namespace (or a part of it) at a directory.
//
//   zerohop-fuse [--socket PATH] [--key KEY] [--root /container[/dir]] [--threads N]
//                [--attr-timeout S] [--entry-timeout S] [--spin-us N] [--holder-socket PATH | --no-holder]
//                [--takeover-timeout S] [--writeback-cache] [--no-passthrough] [--no-object-files]
//                [--allow-other] [--read-only] [--debug] MOUNTPOINT
//
// Runs in the foreground until the mount goes away (fusermount3 -u MOUNTPOINT, umount) or
// SIGINT/SIGTERM, which unmount. Killed any other way (SIGKILL, a crash), it leaves the mount
// to its holder: callers wait, and a zerohop-fuse started again with the same arguments
// takes the mount over and answers them.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "fuse_fs.h"
#include "holder.h"

namespace {

// The signal handler only writes to a pipe (unmounting is not async-signal-safe: libfuse
// frees and may fork); a thread reads it and stops the mount. A signal can come before the
// mount is up (the handlers are installed first, so that it is never the default action: a
// dead server and a mount nobody serves): g_stop remembers it.
int g_signal_pipe[2] = {-1, -1};
absl::Mutex g_mu;
zerohop::fuse::FuseFs* g_fs ABSL_GUARDED_BY(g_mu) = nullptr;
bool g_stop ABSL_GUARDED_BY(g_mu) = false;
constexpr char kSignalled = 's';
constexpr char kWatcherEnd = 'q';

void OnSignal(int) {
    int saved = errno;
    char c = kSignalled;
    (void)!write(g_signal_pipe[1], &c, 1);
    errno = saved;
}

void WatchSignals() {
    while (true) {
        char c;
        ssize_t n = read(g_signal_pipe[0], &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n != 1 || c == kWatcherEnd) {
            return;
        }
        absl::MutexLock lock(&g_mu);
        g_stop = true;
        if (g_fs != nullptr) {
            g_fs->Stop();
        }
    }
}

int Usage(int code) {
    (code == 0 ? std::cout : std::cerr)
        << "usage: zerohop-fuse [--socket PATH] [--key KEY] [--root /container[/dir]] [--threads N]\n"
           "                    [--attr-timeout S] [--entry-timeout S] [--spin-us N]\n"
           "                    [--holder-socket PATH | --no-holder] [--takeover-timeout S] [--writeback-cache]\n"
           "                    [--no-passthrough] [--no-object-files] [--allow-other] [--read-only] [--debug]\n"
           "                    MOUNTPOINT\n"
           "  Mounts the zerohop namespace at MOUNTPOINT (type fuse.zerohop) and serves it until unmounted.\n"
           "  --socket, --key: the daemon and access key (default $ZEROHOP_SOCKET, $ZEROHOP_ACCESS_KEY)\n"
           "  --root: show only this part of the namespace (default /: every container the key can read)\n"
           "  --threads: FUSE threads (default 16); timeouts in seconds (default 1)\n"
           "  --spin-us: how long a FUSE thread polls for its answer when it is the only request in progress (default 20; 0: never)\n"
           "  --holder-socket: where the holder of the mount listens (default MOUNTPOINT.zerohop-fuse.sock);\n"
           "    a zerohop-fuse started while a holder keeps the mount takes it over; --no-holder: none\n"
           "  --takeover-timeout: seconds the holder waits for a successor before failing callers (default 60)\n"
           "  --writeback-cache: the kernel gathers writes and sends them at close, fsync or under memory\n"
           "    pressure (faster small writes; errors show at close; others see the bytes from then on);\n"
           "    a successor taking over the mount must be started with the same choice\n"
           "  --no-passthrough: every read comes to zerohop-fuse; by default (as root, Linux 6.9+) the kernel\n"
           "    reads and writes large objects of the embedded store straight in their files\n"
           "  --no-object-files: every read and write goes through zerohopd; by default zerohop-fuse reads\n"
           "    the files of large objects itself where the kernel does not (implies --no-passthrough)\n"
           "  --allow-other: users other than the mounter may use it (permissions are checked)\n"
           "  --read-only: mount it read-only (writes fail with EROFS)\n";
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    // Debian builds abseil with the Mutex deadlock detector on: tens of ns per lock.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    zerohop::fuse::FuseOptions o;
    // The holder (started by zerohop-fuse itself):
    //   --hold SOCKET --fuse-fd N --journal-fd M --requests-fd R --takeover SECONDS --listen-fd L MOUNTPOINT
    if (argc == 14 && std::string(argv[1]) == "--hold" && std::string(argv[3]) == "--fuse-fd" &&
        std::string(argv[5]) == "--journal-fd" && std::string(argv[7]) == "--requests-fd" &&
        std::string(argv[9]) == "--takeover" && std::string(argv[11]) == "--listen-fd") {
        zerohop::fuse::HeldFds fds;
        int takeover = 0, listen_fd = -1;
        if (!absl::SimpleAtoi(argv[4], &fds.fuse) || !absl::SimpleAtoi(argv[6], &fds.journal) ||
            !absl::SimpleAtoi(argv[8], &fds.requests) || !absl::SimpleAtoi(argv[10], &takeover) ||
            !absl::SimpleAtoi(argv[12], &listen_fd)) {
            return 2;
        }
        return zerohop::fuse::RunHolder(argv[2], listen_fd, fds, takeover);
    }
    bool hold = true;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "zerohop-fuse: " << a << " needs a value\n";
                std::exit(Usage(2));
            }
            return argv[++i];
        };
        auto seconds = [&](double* out) {
            std::string v = value();
            if (!absl::SimpleAtod(v, out) || *out < 0) {
                std::cerr << "zerohop-fuse: " << a << ": \"" << v << "\" is not a number of seconds\n";
                std::exit(2);
            }
        };
        if (a == "--socket") {
            o.client.socket_path = value();
        } else if (a == "--key") {
            o.client.access_key = value();
        } else if (a == "--root") {
            o.root = value();
        } else if (a == "--threads") {
            std::string v = value();
            if (!absl::SimpleAtoi(v, &o.max_threads) || o.max_threads < 1 || o.max_threads > 1024) {
                std::cerr << "zerohop-fuse: --threads: \"" << v << "\" is not a number in 1..1024\n";
                return 2;
            }
        } else if (a == "--spin-us") {
            std::string v = value();
            if (!absl::SimpleAtoi(v, &o.assist_us) || o.assist_us > 10000) {
                std::cerr << "zerohop-fuse: --spin-us: \"" << v << "\" is not a number in 0..10000\n";
                return 2;
            }
        } else if (a == "--attr-timeout") {
            seconds(&o.attr_timeout);
        } else if (a == "--entry-timeout") {
            seconds(&o.entry_timeout);
        } else if (a == "--holder-socket") {
            o.holder_socket = value();
        } else if (a == "--no-holder") {
            hold = false;
        } else if (a == "--takeover-timeout") {
            std::string v = value();
            if (!absl::SimpleAtoi(v, &o.takeover_secs) || o.takeover_secs < 1) {
                std::cerr << "zerohop-fuse: --takeover-timeout: \"" << v << "\" is not a number of seconds\n";
                return 2;
            }
        } else if (a == "--writeback-cache") {
            o.writeback_cache = true;
        } else if (a == "--no-passthrough") {
            o.passthrough = false;
        } else if (a == "--no-object-files") {
            o.passthrough = false;
            o.object_files = false;
        } else if (a == "--allow-other") {
            o.allow_other = true;
        } else if (a == "--read-only") {
            o.read_only = true;
        } else if (a == "--debug") {
            o.debug = true;
        } else if (a == "--help" || a == "-h") {
            return Usage(0);
        } else if (!a.empty() && a[0] == '-') {
            std::cerr << "zerohop-fuse: unknown option " << a << "\n";
            return Usage(2);
        } else if (o.mountpoint.empty()) {
            o.mountpoint = a;
        } else {
            std::cerr << "zerohop-fuse: one mount point only\n";
            return Usage(2);
        }
    }
    if (o.mountpoint.empty()) {
        return Usage(2);
    }
    // The holder keeps the mount alive across restarts of this process; its socket lives
    // beside the mount point unless told otherwise.
    std::error_code ec;
    std::filesystem::path mnt = std::filesystem::absolute(o.mountpoint, ec).lexically_normal();
    if (!mnt.empty() && mnt.has_filename() == false) {
        mnt = mnt.parent_path();
    }
    o.mountpoint = mnt.string();
    if (!hold) {
        o.holder_socket.clear();
    } else if (o.holder_socket.empty()) {
        o.holder_socket = o.mountpoint + ".zerohop-fuse.sock";
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    o.self_exe = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string(argv[0]);
    // The handler never blocks: a full pipe already holds a stop, and none is read after
    // the watcher ends.
    if (pipe2(g_signal_pipe, O_CLOEXEC) != 0 || fcntl(g_signal_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
        std::cerr << "zerohop-fuse: pipe: " << strerror(errno) << "\n";
        return 1;
    }
    std::thread watcher(WatchSignals);
    struct sigaction sa = {};
    sa.sa_handler = OnSignal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    auto end_watcher = [&] {
        char c = kWatcherEnd;
        while (write(g_signal_pipe[1], &c, 1) != 1) {  // full of signals: the watcher drains it
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        watcher.join();
    };
    auto fs = zerohop::fuse::FuseFs::Mount(o);
    if (!fs.ok()) {
        std::cerr << "zerohop-fuse: " << fs.status().message() << "\n";
        end_watcher();
        return 1;
    }
    {
        absl::MutexLock lock(&g_mu);
        g_fs = fs->get();
        if (g_stop) {
            g_fs->Stop();
        }
    }
    absl::Status s = (*fs)->Run();
    {
        absl::MutexLock lock(&g_mu);
        g_fs = nullptr;
    }
    end_watcher();
    if (!s.ok()) {
        std::cerr << "zerohop-fuse: " << s.message() << "\n";
        return 1;
    }
    return 0;
}

// zerohop-fuse: mounts the zerohop namespace (or a part of it) at a directory.
//
//   zerohop-fuse [--socket PATH] [--key KEY] [--root /container[/dir]] [--threads N]
//                [--attr-timeout S] [--entry-timeout S] [--spin-us N] [--allow-other] [--debug] MOUNTPOINT
//
// Runs in the foreground until the mount goes away (fusermount3 -u MOUNTPOINT, umount) or
// SIGINT/SIGTERM, which unmount.

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "fuse_fs.h"

namespace {

zerohop::fuse::FuseFs* g_fs = nullptr;

void OnSignal(int) {
    if (g_fs != nullptr) {
        g_fs->Stop();
    }
}

int Usage(int code) {
    (code == 0 ? std::cout : std::cerr)
        << "usage: zerohop-fuse [--socket PATH] [--key KEY] [--root /container[/dir]] [--threads N]\n"
           "                    [--attr-timeout S] [--entry-timeout S] [--spin-us N] [--allow-other] [--debug]\n"
           "                    MOUNTPOINT\n"
           "  Mounts the zerohop namespace at MOUNTPOINT (type fuse.zerohop) and serves it until unmounted.\n"
           "  --socket, --key: the daemon and access key (default $ZEROHOP_SOCKET, $ZEROHOP_ACCESS_KEY)\n"
           "  --root: show only this part of the namespace (default /: every container the key can read)\n"
           "  --threads: FUSE threads (default 16); timeouts in seconds (default 1)\n"
           "  --spin-us: how long a FUSE thread polls for its answer (default 0; worth it with cores to spare)\n";
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    // Debian builds abseil with the Mutex deadlock detector on: tens of ns per lock.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    zerohop::fuse::FuseOptions o;
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
        } else if (a == "--allow-other") {
            o.allow_other = true;
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
    auto fs = zerohop::fuse::FuseFs::Mount(o);
    if (!fs.ok()) {
        std::cerr << "zerohop-fuse: " << fs.status().message() << "\n";
        return 1;
    }
    g_fs = fs->get();
    struct sigaction sa = {};
    sa.sa_handler = OnSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    absl::Status s = (*fs)->Run();
    g_fs = nullptr;
    if (!s.ok()) {
        std::cerr << "zerohop-fuse: " << s.message() << "\n";
        return 1;
    }
    return 0;
}

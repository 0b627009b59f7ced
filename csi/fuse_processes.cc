#include "fuse_processes.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "mounts.h"
#include "shmring/unix_socket.h"

namespace zerohop::csi {

namespace {

constexpr char kFuseType[] = "fuse.zerohop";

bool MountedAt(const std::string& mountpoint) {
    for (const MountEntry& e : ListMounts()) {
        if (e.mount_point == mountpoint && e.fs_type == kFuseType) {
            return true;
        }
    }
    return false;
}

// The last lines of a log file, for an error message.
std::string Tail(const std::string& path) {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    if (all.size() > 600) {
        all = "..." + all.substr(all.size() - 600);
    }
    while (!all.empty() && all.back() == '\n') {
        all.pop_back();
    }
    return all;
}

}  // namespace

bool FuseProcesses::Held(const std::string& id) const {
    // A holder hands its descriptors to whoever connects; closing at once gives them back.
    return shmring::ConnectUnix(Directory(id) + "/holder.sock").ok();
}

void FuseProcesses::Reap() {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
}

bool FuseProcesses::Serving(const InstanceRecord& instance) const {
    if (instance.pid <= 0) {
        return false;
    }
    Reap();
    std::ifstream stat(absl::StrCat("/proc/", instance.pid, "/stat"));
    std::string line;
    if (!std::getline(stat, line)) {
        return false;
    }
    size_t paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z') {
        return false;
    }
    std::ifstream cmd(absl::StrCat("/proc/", instance.pid, "/cmdline"), std::ios::binary);
    std::string argv((std::istreambuf_iterator<char>(cmd)), {});
    // Its arguments end with the mount point; the holder's carry --hold.
    std::string tail = std::string(1, '\0') + instance.mountpoint + std::string(1, '\0');
    return absl::StrContains(argv, "zerohop-fuse") && absl::EndsWith(argv, tail) &&
           !absl::StrContains(argv, std::string("--hold") + '\0');
}

absl::Status FuseProcesses::Start(const std::string& id, InstanceRecord& instance) const {
    std::string dir = Directory(id);
    // Never a stat of a held mount point: nobody answers it until the successor runs.
    bool takeover = MountedAt(instance.mountpoint);
    std::error_code ec;
    if (!takeover) {
        std::filesystem::create_directories(instance.mountpoint, ec);
        if (ec) {
            return absl::InternalError(absl::StrFormat("mkdir %s: %s", instance.mountpoint, ec.message()));
        }
    }
    std::string log = dir + "/zerohop-fuse.log";
    if (std::filesystem::file_size(log, ec) > (1 << 20)) {
        std::filesystem::rename(log, log + ".1", ec);  // one old log kept
    }
    std::string container = std::string(Path::Parse(instance.root)->container());
    std::vector<std::string> args = {"zerohop-fuse",       "--socket",
                                     instance.socket,      "--root",
                                     "/" + container,      "--allow-other",
                                     "--holder-socket",    dir + "/holder.sock",
                                     "--takeover-timeout", absl::StrCat(options_.takeover_secs)};
    if (instance.read_only) {
        args.push_back("--read-only");
    }
    args.push_back(instance.mountpoint);
    std::vector<char*> argv;
    for (std::string& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        return absl::ResourceExhaustedError(absl::StrFormat("fork: %s", strerror(errno)));
    }
    if (pid == 0) {
        // Its own session: the plugin's signals and its end are not the mount's.
        ::setsid();
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && null >= 0) {
            ::dup2(null, 0);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        ::execv(options_.zerohop_fuse.c_str(), argv.data());
        _exit(127);
    }
    instance.pid = pid;
    // Mounted (or, taking over, still alive a moment after it fetched the descriptor).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    auto settled = std::chrono::steady_clock::now() + std::chrono::milliseconds(takeover ? 200 : 0);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            instance.pid = 0;
            return absl::UnavailableError(
                absl::StrFormat("zerohop-fuse for %s ended at start: %s", instance.root, Tail(log)));
        }
        if (MountedAt(instance.mountpoint) && std::chrono::steady_clock::now() >= settled) {
            Log(LogLevel::kInfo, takeover ? "zerohop-fuse took its mount over" : "zerohop-fuse mounted", "instance", id,
                "root", instance.root, "pid", pid);
            return absl::OkStatus();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ::kill(pid, SIGKILL);
    instance.pid = 0;
    return absl::DeadlineExceededError(
        absl::StrFormat("zerohop-fuse for %s did not mount within 15 s: %s", instance.root, Tail(log)));
}

void FuseProcesses::Stop(const std::string& id, InstanceRecord& instance) const {
    if (Serving(instance)) {
        ::kill(instance.pid, SIGTERM);
        for (int i = 0; i < 500 && Serving(instance); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (Serving(instance)) {
            Log(LogLevel::kWarning, "zerohop-fuse did not stop within 5 s: killed", "instance", id, "pid",
                instance.pid);
            ::kill(instance.pid, SIGKILL);
        }
    }
    instance.pid = 0;
    // Not served any more (or never stopped cleanly): a detached unmount ends the connection
    // and, with it, the holder.
    if (absl::Status s = Unmount(instance.mountpoint); !s.ok()) {
        Log(LogLevel::kWarning, "a FUSE view stays mounted", "instance", id, "error", std::string(s.message()));
        return;
    }
    std::error_code ec;
    std::filesystem::remove(instance.mountpoint, ec);
    std::filesystem::remove(Directory(id) + "/holder.sock", ec);
    std::filesystem::remove(Directory(id) + "/zerohop-fuse.log", ec);
    std::filesystem::remove(Directory(id) + "/zerohop-fuse.log.1", ec);
    std::filesystem::remove(Directory(id), ec);
}

}  // namespace zerohop::csi

#include "holder.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "shmring/fd_passing.h"
#include "shmring/unix_socket.h"

namespace zerohop::fuse {

namespace {

bool Mounted(const std::string& mountpoint) {
    std::ifstream m("/proc/self/mounts");
    std::string line;
    while (std::getline(m, line)) {
        if (line.find(" " + mountpoint + " fuse") != std::string::npos) {
            return true;
        }
    }
    return false;
}

}  // namespace

absl::StatusOr<shmring::UniqueFd> SpawnHolder(const std::string& self_exe, const std::string& socket, int fuse_fd,
                                              int journal_fd, const std::string& mountpoint, int takeover_secs) {
    // The holder's socket listens before the holder runs: our lease connects at once and the
    // mount is served while the holder is still starting (it accepts the lease when it is up).
    // The mount's descriptor: only its owner may take it.
    ZH_ASSIGN_OR_RETURN(shmring::UniqueFd listener, shmring::ListenUnix(socket, 0600, 4));
    ZH_ASSIGN_OR_RETURN(shmring::UniqueFd lease, shmring::ConnectUnix(socket));
    // Twice forked, so that the holder is nobody's child to wait for.
    pid_t child = fork();
    if (child < 0) {
        return absl::InternalError(absl::StrFormat("fork: %s", strerror(errno)));
    }
    if (child == 0) {
        if (fork() != 0) {
            _exit(0);
        }
        setsid();  // not in the server's process group: a kill of that leaves the holder
        fcntl(fuse_fd, F_SETFD, 0);
        fcntl(journal_fd, F_SETFD, 0);
        fcntl(listener.get(), F_SETFD, 0);
        std::string f = absl::StrCat(fuse_fd), j = absl::StrCat(journal_fd), t = absl::StrCat(takeover_secs),
                    l = absl::StrCat(listener.get());
        execl(self_exe.c_str(), "zerohop-fuse", "--hold", socket.c_str(), "--fuse-fd", f.c_str(), "--journal-fd",
              j.c_str(), "--takeover", t.c_str(), "--listen-fd", l.c_str(), mountpoint.c_str(),
              static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return lease;
}

int RunHolder(const std::string& socket, int listen_fd, int fuse_fd, int journal_fd, const std::string& mountpoint,
              int takeover_secs) {
    shmring::UniqueFd listener(listen_fd);
    ::fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
    std::vector<shmring::UniqueFd> leases;
    time_t unleased_since = time(nullptr);
    for (;;) {
        std::vector<struct pollfd> fds = {{listener.get(), POLLIN, 0}, {fuse_fd, 0, 0}};
        for (const auto& l : leases) {
            fds.push_back({l.get(), POLLIN, 0});
        }
        int n = ::poll(fds.data(), fds.size(), 1000);
        // The connection is gone (unmounted, aborted): nothing left to hold.
        if ((n > 0 && (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL))) || !Mounted(mountpoint)) {
            break;
        }
        // A lease ends when its server's end closes (it exited or was killed).
        for (size_t i = leases.size(); i-- > 0;) {
            if (fds[2 + i].revents != 0) {
                leases.erase(leases.begin() + static_cast<ptrdiff_t>(i));
            }
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            shmring::UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (conn.valid() && shmring::SendWithFds(conn.get(), "Z", {fuse_fd, journal_fd}).ok()) {
                leases.push_back(std::move(conn));
            }
        }
        if (!leases.empty()) {
            unleased_since = time(nullptr);
        } else if (time(nullptr) - unleased_since >= takeover_secs) {
            break;  // nobody took over: let the mount fail its callers instead of hang them
        }
    }
    ::unlink(socket.c_str());
    return 0;
}

absl::StatusOr<HeldMount> FetchFromHolder(const std::string& socket) {
    auto connected = shmring::ConnectUnix(socket);
    if (!connected.ok()) {
        return absl::NotFoundError(absl::StrFormat("no holder at %s", socket));
    }
    shmring::UniqueFd s = std::move(*connected);
    char byte;
    std::vector<shmring::UniqueFd> fds;
    auto r = shmring::ReceiveWithFds(s.get(), &byte, 1, &fds);
    if (!r.ok() || *r != 1 || fds.size() != 2) {
        return absl::DataLossError(absl::StrFormat("the holder at %s sent no descriptors", socket));
    }
    return HeldMount{std::move(fds[0]), std::move(fds[1]), std::move(s)};
}

}  // namespace zerohop::fuse

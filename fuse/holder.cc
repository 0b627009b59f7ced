#include "holder.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
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

// What a server sends on its lease when it has unmounted: the holder goes at once.
constexpr char kMountOver = 'Q';

// The inode of the socket at `path` (0: none), to tell ours from a successor holder's.
ino_t SocketInode(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

}  // namespace

absl::StatusOr<shmring::UniqueFd> SpawnHolder(const std::string& self_exe, const std::string& socket, HeldFds fds,
                                              const std::string& mountpoint, int takeover_secs) {
    // The holder's socket listens before the holder runs: our lease connects at once and the
    // mount is served while the holder is still starting (it accepts the lease when it is up).
    // The mount's descriptor: only its owner may take it.
    ZH_ASSIGN_OR_RETURN(shmring::UniqueFd listener, shmring::ListenUnix(socket, 0600, 4));
    ZH_ASSIGN_OR_RETURN(shmring::UniqueFd lease, shmring::ConnectUnix(socket));
    // Twice forked, so that the holder is nobody's child to wait for. The middle process
    // spawns it with vfork semantics: once that process is reaped, the holder runs its own
    // program (nobody sees a copy of this server that is not the holder yet).
    std::string f = absl::StrCat(fds.fuse), j = absl::StrCat(fds.journal), r = absl::StrCat(fds.requests),
                t = absl::StrCat(takeover_secs), l = absl::StrCat(listener.get());
    const char* argv[] = {"zerohop-fuse",  "--hold",   socket.c_str(), "--fuse-fd",   f.c_str(),
                          "--journal-fd",  j.c_str(),  "--requests-fd", r.c_str(),    "--takeover",
                          t.c_str(),       "--listen-fd", l.c_str(),    mountpoint.c_str(), nullptr};
    pid_t child = fork();
    if (child < 0) {
        return absl::InternalError(absl::StrFormat("fork: %s", strerror(errno)));
    }
    if (child == 0) {
        for (int fd : {fds.fuse, fds.journal, fds.requests, listener.get()}) {
            fcntl(fd, F_SETFD, 0);
        }
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        // Not in the server's process group: a kill of that leaves the holder.
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
        pid_t holder = 0;
        _exit(posix_spawn(&holder, self_exe.c_str(), nullptr, &attr, const_cast<char* const*>(argv), environ) == 0
                  ? 0
                  : 127);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return absl::InternalError(absl::StrFormat("could not start the holder %s", self_exe));
    }
    return lease;
}

int RunHolder(const std::string& socket, int listen_fd, HeldFds held, int takeover_secs) {
    shmring::UniqueFd listener(listen_fd);
    ::fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
    std::vector<shmring::UniqueFd> leases;
    time_t unleased_since = time(nullptr);
    ino_t ours = SocketInode(socket);
    for (;;) {
        std::vector<struct pollfd> fds = {{listener.get(), POLLIN, 0}};
        for (const auto& l : leases) {
            fds.push_back({l.get(), POLLIN, 0});
        }
        int n = ::poll(fds.data(), fds.size(), 1000);
        // The connection is gone (unmounted and unused, aborted): nothing left to hold. (Not
        // "nothing mounted at the mount point": a lazily unmounted mount still serves its
        // open files, and another mount may be there now.) Looked at without waiting on it,
        // once a second and after each event: a poll waiting on /dev/fuse is woken by every
        // request the kernel queues, which cost the server a third of its small reads.
        struct pollfd fuse = {held.fuse, 0, 0};
        if (::poll(&fuse, 1, 0) > 0 && (fuse.revents & (POLLERR | POLLHUP | POLLNVAL))) {
            break;
        }
        // A lease ends when its server's end closes (it exited or was killed); a server
        // that stopped cleanly (it unmounted) says the mount is over (ReleaseHolder).
        bool over = false;
        for (size_t i = leases.size(); i-- > 0;) {
            if (fds[1 + i].revents != 0) {
                char byte = 0;
                over |= ::recv(leases[i].get(), &byte, 1, MSG_DONTWAIT) == 1 && byte == kMountOver;
                leases.erase(leases.begin() + static_cast<ptrdiff_t>(i));
            }
        }
        if (over) {
            break;
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            shmring::UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (conn.valid() && shmring::SendWithFds(conn.get(), "Z", {held.fuse, held.journal, held.requests}).ok()) {
                leases.push_back(std::move(conn));
            }
        }
        if (!leases.empty()) {
            unleased_since = time(nullptr);
        } else if (time(nullptr) - unleased_since >= takeover_secs) {
            break;  // nobody took over: let the mount fail its callers instead of hang them
        }
    }
    if (ours != 0 && SocketInode(socket) == ours) {
        ::unlink(socket.c_str());  // (not a newer holder's, of a new mount at the same place)
    }
    return 0;  // (the leases close as we exit: ReleaseHolder's wait ends)
}

void ReleaseHolder(int lease) {
    if (::send(lease, &kMountOver, 1, MSG_NOSIGNAL) != 1) {
        return;  // no holder any more
    }
    struct pollfd p = {lease, POLLIN, 0};
    char byte;
    // Its "Z" (sent when it took our lease) comes first; then the end of the connection.
    for (int i = 0; i < 4 && ::poll(&p, 1, 1000) == 1; ++i) {
        if (::recv(lease, &byte, 1, MSG_DONTWAIT) <= 0) {
            return;
        }
    }
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
    if (!r.ok() || *r != 1 || fds.size() != 3) {
        return absl::DataLossError(absl::StrFormat("the holder at %s sent no descriptors", socket));
    }
    return HeldMount{std::move(fds[0]), std::move(fds[1]), std::move(fds[2]), std::move(s)};
}

}  // namespace zerohop::fuse

#include "shmring/unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_format.h"

namespace shmring {

namespace {

// The address of `path`; for a long one, `dir` keeps its directory open while it is used.
absl::StatusOr<sockaddr_un> AddressOf(const std::string& path, UniqueFd* dir) {
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::string name = path;
    if (path.size() >= sizeof addr.sun_path) {
        size_t slash = path.rfind('/');
        if (slash == std::string::npos || slash == 0) {
            return absl::InvalidArgumentError(absl::StrFormat("socket path %s is too long", path));
        }
        std::string parent = path.substr(0, slash);
        *dir = UniqueFd(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!dir->valid()) {
            return absl::NotFoundError(absl::StrFormat("socket directory %s: %s", parent, strerror(errno)));
        }
        name = absl::StrFormat("/proc/self/fd/%d/%s", dir->get(), path.substr(slash + 1));
        if (name.size() >= sizeof addr.sun_path) {
            return absl::InvalidArgumentError(absl::StrFormat("socket name in %s is too long", path));
        }
    }
    std::memcpy(addr.sun_path, name.data(), name.size());
    return addr;
}

}  // namespace

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
    UniqueFd dir;
    auto addr = AddressOf(path, &dir);
    if (!addr.ok()) {
        return addr.status();
    }
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock.valid()) {
        return absl::ResourceExhaustedError(absl::StrFormat("socket: %s", strerror(errno)));
    }
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
        return absl::UnavailableError(absl::StrFormat("connect %s: %s", path, strerror(errno)));
    }
    return sock;
}

absl::StatusOr<UniqueFd> ListenUnix(const std::string& path, mode_t mode, int backlog) {
    UniqueFd dir;
    auto addr = AddressOf(path, &dir);
    if (!addr.ok()) {
        return addr.status();
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return absl::AlreadyExistsError(absl::StrFormat("%s exists and is not a socket", path));
        }
        ::unlink(path.c_str());  // an earlier listener's: nobody listens there any more
    }
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock.valid()) {
        return absl::ResourceExhaustedError(absl::StrFormat("socket: %s", strerror(errno)));
    }
    if (::bind(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
        return absl::InternalError(absl::StrFormat("bind %s: %s", path, strerror(errno)));
    }
    if (::chmod(path.c_str(), mode) != 0 || ::listen(sock.get(), backlog) != 0) {
        return absl::InternalError(absl::StrFormat("listen on %s: %s", path, strerror(errno)));
    }
    return sock;
}

}  // namespace shmring

#include "shmring/fd_passing.h"

#include <errno.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/str_format.h"

namespace shmring {

absl::Status SendWithFds(int sock, std::string_view data, std::initializer_list<int> fds, int flags) {
    if (data.empty() || fds.size() > kMaxPassedFds) {
        return absl::InvalidArgumentError("SendWithFds: needs 1+ bytes and at most 8 descriptors");
    }
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
    struct iovec iov = {const_cast<char*>(data.data()), data.size()};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fds.size() > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.begin(), sizeof(int) * fds.size());
    }
    size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return absl::UnavailableError(absl::StrFormat("send: %s", strerror(errno)));
        }
        sent += static_cast<size_t>(n);
        iov.iov_base = const_cast<char*>(data.data()) + sent;
        iov.iov_len = data.size() - sent;
        msg.msg_control = nullptr;  // descriptors go with the first byte only
        msg.msg_controllen = 0;
    }
    return absl::OkStatus();
}

absl::StatusOr<size_t> ReceiveWithFds(int sock, char* buf, size_t capacity, std::vector<UniqueFd>* fds) {
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
    struct iovec iov = {buf, capacity};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN ? absl::UnavailableError("receive: would block")
                               : absl::UnavailableError(absl::StrFormat("receive: %s", strerror(errno)));
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds->emplace_back(fd);  // owned from here: closed on any error below
            }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        return absl::InvalidArgumentError("receive: too many descriptors attached");
    }
    return static_cast<size_t>(n);
}

}  // namespace shmring

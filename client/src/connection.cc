#include "connection.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "shmring/fd_passing.h"
#include "shmring/unix_socket.h"

namespace zerohop {

using protocol::Descriptor;
using protocol::Op;

Client::Connection::Connection(shmring::UniqueFd sock, shmring::Segment seg, shmring::EventFd bell, uint64_t session,
                               absl::Duration spin)
    : sock_(std::move(sock)),
      segment_(std::move(seg)),
      doorbell_(std::move(bell)),
      session_id_(session),
      spin_(spin),
      submit_(segment_.submit_ring()),
      complete_(segment_.complete_ring()),
      alloc_(segment_.layout().client_region.size) {}

std::vector<std::pair<uint64_t, Client::Connection::Pending>> Client::Connection::Kill() {
    std::lock_guard<std::mutex> lock(pending_mu_);
    dead_ = true;
    std::vector<std::pair<uint64_t, Pending>> out;
    out.reserve(pending_.size());
    for (auto& [id, p] : pending_) {
        out.emplace_back(id, std::move(p));
    }
    pending_.clear();
    return out;
}

bool Client::Connection::Push(const protocol::Descriptor& d) {
    shmring::SegmentHeader* h = segment_.header();
    for (int i = 1; !submit_.PushShared(&h->submit_tail, &d); ++i) {
        // Full: the daemon is behind. Make sure it is awake, and help drain completions.
        shmring::NotifyCreator(h, doorbell_);
        if (Poll() == 0) {
            std::this_thread::yield();
        }
        if (i % 4096 == 0 && Gone()) {
            return false;
        }
    }
    shmring::NotifyCreator(h, doorbell_);
    return true;
}

void Client::Connection::Release(uint64_t buffer) {
    Descriptor r;
    r.op = static_cast<uint16_t>(Op::kRelease);
    r.offset = buffer;
    (void)Push(r);
}

size_t Client::Connection::Poll() {
    size_t n = 0;
    Descriptor c;
    shmring::SegmentHeader* h = segment_.header();
    while (complete_.PopShared(&h->complete_head, &c)) {
        ++n;
        std::optional<Pending> p;
        {
            std::lock_guard<std::mutex> lock(pending_mu_);
            auto it = pending_.find(c.request_id);
            if (it != pending_.end()) {
                p.emplace(std::move(it->second));
                pending_.erase(it);
            }
        }
        std::string_view body;
        uint64_t region = daemon_bytes();
        if (c.length > 0 && c.offset <= region && c.length <= region - c.offset) {
            body = std::string_view(segment_.daemon_region() + c.offset, c.length);
        }
        bool kept = false;
        if (p) {
            if (p->allocation) {
                Free(*p->allocation);
            }
            absl::Status status;
            if (c.status != 0) {
                auto wire = protocol::Decode<protocol::WireStatus>(body);
                status = wire.ok() ? wire->status
                                   : absl::Status(static_cast<absl::StatusCode>(c.status), "zerohopd: request failed");
                body = {};
            }
            kept = std::move(p->done)(status, body, c.arg0, shared_from_this()) && c.status == 0 && c.length > 0;
        }
        if (c.length > 0 && !kept) {
            Release(c.arg0);
        }
    }
    return n;
}

bool Client::Connection::Gone() const {
    struct pollfd p = {sock_.get(), POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

absl::StatusOr<shmring::UniqueFd> Client::Connection::TakeFile(uint64_t tag) {
    std::lock_guard<std::mutex> lock(files_mu_);
    for (;;) {
        if (auto it = files_.find(tag); it != files_.end()) {
            shmring::UniqueFd fd = std::move(it->second);
            files_.erase(it);
            return fd;
        }
        // Already on the socket (sent before its completion): the wait is a formality that
        // keeps a confused daemon from hanging the caller.
        struct pollfd p = {sock_.get(), POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) {
            return absl::InternalError(absl::StrFormat("zerohopd named descriptor %d, which never came", tag));
        }
        uint64_t got = 0;
        std::vector<shmring::UniqueFd> fds;
        ZH_ASSIGN_OR_RETURN(size_t n, shmring::ReceiveWithFds(sock_.get(), reinterpret_cast<char*>(&got), sizeof got, &fds));
        if (n != sizeof got || fds.size() != 1) {
            return absl::InternalError(absl::StrFormat(
                "the session socket carried %d bytes and %d descriptors where a tagged descriptor was due", n,
                fds.size()));
        }
        files_[got] = std::move(fds[0]);
    }
}

absl::StatusOr<std::shared_ptr<Client::Connection>> Client::Connection::Dial(const ClientOptions& options) {
    auto connected = shmring::ConnectUnix(options.socket_path);
    if (!connected.ok()) {
        return absl::UnavailableError(absl::StrFormat("cannot reach zerohopd at %s: %s (is it running? set ZEROHOP_SOCKET)",
                                                      options.socket_path, connected.status().message()));
    }
    shmring::UniqueFd sock = std::move(*connected);
    protocol::Hello hello;
    hello.access_key = options.access_key;
    hello.submit_entries = options.submit_entries;
    hello.complete_entries = options.complete_entries;
    hello.client_bytes = options.client_bytes;
    hello.daemon_bytes = options.daemon_bytes;
    std::string body = protocol::Encode(hello);
    std::string framed(4, '\0');
    uint32_t len = static_cast<uint32_t>(body.size());
    std::memcpy(framed.data(), &len, 4);
    framed += body;
    if (absl::Status s = shmring::SendWithFds(sock.get(), framed, {}); !s.ok()) {
        return absl::UnavailableError(absl::StrFormat("zerohopd at %s: %s", options.socket_path, s.message()));
    }
    std::vector<shmring::UniqueFd> fds;
    char head[4];
    size_t got = 0;
    while (got < 4) {
        auto n = shmring::ReceiveWithFds(sock.get(), head + got, 4 - got, &fds);
        if (!n.ok() || *n == 0) {
            return absl::UnavailableError(absl::StrFormat("zerohopd at %s closed the connection during hello",
                                                          options.socket_path));
        }
        got += *n;
    }
    std::memcpy(&len, head, 4);
    if (len == 0 || len > 4096) {
        return absl::DataLossError("zerohopd sent a malformed welcome");
    }
    std::string welcome_bytes(len, '\0');
    if (::recv(sock.get(), welcome_bytes.data(), len, MSG_WAITALL) != static_cast<ssize_t>(len)) {
        return absl::UnavailableError("zerohopd closed the connection during hello");
    }
    auto welcome = protocol::Decode<protocol::Welcome>(welcome_bytes);
    if (!welcome.ok()) {
        return absl::DataLossError("zerohopd sent a malformed welcome");
    }
    if (!welcome->status.ok()) {
        return absl::Status(welcome->status.code(),
                            absl::StrFormat("zerohopd refused the session: %s", welcome->status.message()));
    }
    if (fds.size() != 2) {
        return absl::DataLossError("zerohopd did not pass the session segment and doorbell");
    }
    ZH_ASSIGN_OR_RETURN(auto segment, shmring::Segment::Map(std::move(fds[0])));
    return std::make_shared<Connection>(std::move(sock), std::move(segment), shmring::EventFd(std::move(fds[1])),
                                        welcome->session_id, options.spin);
}

}  // namespace zerohop

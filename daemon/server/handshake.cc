// The acceptor: connections on the unix socket, their hello, the checks (version, peer
// credentials, access key, limits) and the session handed to a worker.

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/str_format.h"
#include "server/internal/server_impl.h"
#include "base/log.h"
#include "shmring/fd_passing.h"

namespace zerohop {

namespace {

constexpr size_t kMaxHelloBytes = 4096;

uint32_t ClampEntries(uint32_t want) {
    uint32_t e = 16;
    while (e < want && e < 4096) {
        e <<= 1;
    }
    return e;
}

// Writes a u32 length and the bytes, the first byte carrying `fds`.
absl::Status SendFramed(int sock, const std::string& body, std::initializer_list<int> fds) {
    std::string framed(4, '\0');
    uint32_t n = static_cast<uint32_t>(body.size());
    std::memcpy(framed.data(), &n, 4);
    framed += body;
    return shmring::SendWithFds(sock, framed, fds);
}

}  // namespace

void Server::Impl::AcceptLoop() {
    std::vector<struct pollfd> fds;
    std::vector<std::shared_ptr<const Scope>> scopes;  // of fds[kFixed + i]
    constexpr size_t kFixed = 3;                        // the socket, the stop bell, volume changes
    bool rebuild = true;
    for (;;) {
        if (rebuild) {
            volumes_->DrainChanged();
            fds = {{listener_.get(), POLLIN, 0}, {stop_bell_->fd(), POLLIN, 0}, {volumes_->changed_fd(), POLLIN, 0}};
            scopes.clear();
            for (auto& [fd, scope] : volumes_->Listeners()) {
                fds.push_back({fd, POLLIN, 0});
                scopes.push_back(std::move(scope));
            }
            rebuild = false;
        }
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            Log(LogLevel::kError, "accept loop failed", "error", strerror(errno));
            return;
        }
        if (stopped_.load()) {
            return;
        }
        if (fds[2].revents != 0) {
            rebuild = true;  // a volume was published or unpublished (before accepting on a closed one)
            continue;
        }
        for (size_t i = 0; i < fds.size(); ++i) {
            if (i == 1 || i == 2 || (fds[i].revents & POLLIN) == 0) {
                continue;
            }
            shmring::UniqueFd sock(::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC));
            if (!sock.valid()) {
                continue;
            }
            std::shared_ptr<const Scope> scope = i >= kFixed ? scopes[i - kFixed] : nullptr;
            if (HelloArrived(sock.get())) {
                Handshake(std::move(sock), std::move(scope));  // nothing to wait for: no thread needed
                continue;
            }
            if (handshakes_.load() >= kMaxHandshakes) {
                sessions_refused_.fetch_add(1);  // too many half-open connections: shed this one
                continue;
            }
            handshakes_.fetch_add(1);
            std::thread([this, sock = std::move(sock), scope = std::move(scope)]() mutable {
                Handshake(std::move(sock), std::move(scope));
                handshakes_.fetch_sub(1);
            }).detach();
        }
    }
}

bool Server::Impl::HelloArrived(int sock) {
    char buf[4 + kMaxHelloBytes];
    ssize_t n = ::recv(sock, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n < 4) {
        return false;
    }
    uint32_t len;
    std::memcpy(&len, buf, 4);
    return len <= kMaxHelloBytes && static_cast<size_t>(n) >= 4 + size_t{len};
}

void Server::Impl::Handshake(shmring::UniqueFd sock, std::shared_ptr<const Scope> scope) {
    struct timeval tv = {2, 0};  // a client that does not say hello does not hold the acceptor
    ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    auto refuse = [&](const absl::Status& why) {
        sessions_refused_.fetch_add(1);
        protocol::Welcome w;
        w.status = why;
        (void)SendFramed(sock.get(), protocol::Encode(w), {});
        Log(LogLevel::kWarning, "session refused", "why", std::string(why.message()));
    };
    uint32_t len = 0;
    ssize_t got = ::recv(sock.get(), &len, 4, MSG_WAITALL);
    if (got == 0) {
        return;  // connected and left without a word: a health check, nothing to refuse
    }
    if (got != 4 || len == 0 || len > kMaxHelloBytes) {
        return refuse(absl::InvalidArgumentError("expected a framed hello of 1..4096 bytes"));
    }
    std::string body(len, '\0');
    if (::recv(sock.get(), body.data(), len, MSG_WAITALL) != static_cast<ssize_t>(len)) {
        return refuse(absl::InvalidArgumentError("the hello was cut short"));
    }
    auto hello = protocol::Decode<protocol::Hello>(body);
    if (!hello.ok()) {
        return refuse(absl::InvalidArgumentError("malformed hello"));
    }
    if (hello->version != protocol::kProtocolVersion) {
        return refuse(absl::FailedPreconditionError(absl::StrFormat(
            "the client speaks protocol version %d, this daemon speaks %d", hello->version, protocol::kProtocolVersion)));
    }
    struct ucred cred = {};
    socklen_t cred_len = sizeof cred;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) {
        return refuse(absl::InternalError("cannot read the peer's credentials"));
    }
    // On a volume's socket the scope is the credential (its key was checked when it was
    // published): whatever key the hello carries is not looked at.
    const CredentialConfig* credential = scope != nullptr ? &scope->credential : nullptr;
    if (credential == nullptr) {
        auto key = keys_.find(hello->access_key);
        if (key == keys_.end()) {
            return refuse(absl::PermissionDeniedError("unknown access key"));
        }
        credential = key->second;
        if (!credential->uids.empty() &&
            std::find(credential->uids.begin(), credential->uids.end(), cred.uid) == credential->uids.end()) {
            return refuse(absl::PermissionDeniedError(
                absl::StrFormat("this access key may not be used by uid %d", cred.uid)));
        }
    }
    size_t open = 0;
    for (const auto& w : workers_) {
        open += w->open_sessions();
    }
    if (open >= config_.limits.max_sessions) {
        return refuse(absl::ResourceExhaustedError(
            absl::StrFormat("%d sessions are open, the daemon's limit", config_.limits.max_sessions)));
    }
    auto layout = shmring::SegmentLayout::Compute(
        {.submit_entries = ClampEntries(hello->submit_entries),
         .complete_entries = ClampEntries(hello->complete_entries),
         .slot_payload = protocol::kDescriptorSize,
         .client_bytes = std::clamp<uint64_t>(hello->client_bytes, 1 << 16, config_.limits.max_client_bytes),
         .daemon_bytes = std::clamp<uint64_t>(hello->daemon_bytes, 1 << 16, config_.limits.max_daemon_bytes)});
    if (!layout.ok()) {
        return refuse(layout.status());
    }
    auto segment = shmring::Segment::Create(*layout, "zerohop-session");
    if (!segment.ok()) {
        return refuse(segment.status());
    }
    auto bell = shmring::EventFd::Create();
    if (!bell.ok()) {
        return refuse(bell.status());
    }
    auto s = std::make_shared<Session>(std::move(*segment), std::move(*bell));
    // Until a worker adopts the session, the client must ring for whatever it sends.
    std::atomic_ref<uint32_t>(s->segment.header()->creator_sleeping).store(1, std::memory_order_seq_cst);
    s->id = next_session_.fetch_add(1);
    s->uid = cred.uid;
    s->gid = cred.gid;
    s->pid = cred.pid;
    s->credential = credential;
    if (scope != nullptr) {
        scope->sessions.fetch_add(1);
        s->scope = std::move(scope);
    }
    s->max_in_flight = std::min<uint32_t>(config_.limits.max_in_flight, layout->complete.capacity);
    // The worker is chosen before the client hears the welcome, so that sessions go to the
    // workers in the order their clients were answered (this thread may be slow to go on).
    Worker* worker = workers_[next_worker_.fetch_add(1) % workers_.size()].get();
    protocol::Welcome w;
    w.session_id = s->id;
    w.max_in_flight = s->max_in_flight;
    if (absl::Status st = SendFramed(sock.get(), protocol::Encode(w), {s->segment.fd(), s->doorbell.fd()}); !st.ok()) {
        Log(LogLevel::kWarning, "hello answer failed", "error", std::string(st.message()));
        return;
    }
    s->sock = std::move(sock);
    sessions_total_.fetch_add(1);
    Log(LogLevel::kInfo, "session opened", "session", s->id, "pid", cred.pid, "uid", cred.uid, "volume",
        s->scope != nullptr ? s->scope->id : "", "pod", s->scope != nullptr ? s->scope->pod : "");
    worker->Add(std::move(s));
}

}  // namespace zerohop

#include "redis/redis_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/status_macros.h"
#include "redis/resolver.h"

namespace zerohop::redis {

// ---- small pieces ----

std::string Reply::ToString() const {
    switch (type) {
        case Type::kString:
            return absl::StrCat("\"", str, "\"");
        case Type::kStatus:
            return str;
        case Type::kError:
            return absl::StrCat("(error) ", str);
        case Type::kInteger:
            return absl::StrCat(integer);
        case Type::kNil:
            return "(nil)";
        case Type::kArray: {
            std::vector<std::string> parts;
            for (const Reply& e : elements) {
                parts.push_back(e.ToString());
            }
            return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
        }
    }
    return "?";
}

namespace {

// CRC16-CCITT (XMODEM), as Redis Cluster defines the key slot.
uint16_t Crc16(absl::string_view data) {
    uint16_t crc = 0;
    for (unsigned char c : data) {
        crc ^= static_cast<uint16_t>(c) << 8;
        for (int i = 0; i < 8; ++i) {
            crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
        }
    }
    return crc;
}

// hiredis parses, and builds our Reply directly (no tree of its own objects to copy and
// free): the root is allocated, every other node lives in its parent's `elements`, sized
// when the array's header is read, so the pointers handed back to hiredis stay valid.
Reply* ReplyNode(const redisReadTask* task) {
    if (task->parent == nullptr) {
        return new Reply();
    }
    auto* parent = static_cast<Reply*>(task->parent->obj);
    return &parent->elements[static_cast<size_t>(task->idx)];
}

void* CreateString(const redisReadTask* task, char* str, size_t len) {
    Reply* r = ReplyNode(task);
    r->type = task->type == REDIS_REPLY_ERROR    ? Reply::Type::kError
              : task->type == REDIS_REPLY_STATUS ? Reply::Type::kStatus
                                                 : Reply::Type::kString;
    r->str.assign(str, len);
    return r;
}

// No reply of ours comes near this; a larger array header is refused (hiredis reports the
// null as out of memory, and the connection is closed) before it is allocated.
constexpr int kMaxReplyElements = 1 << 20;
thread_local int tls_refused_elements = 0;  // for the message: hiredis would say "Out of memory"

void* CreateArray(const redisReadTask* task, int elements) {
    if (elements > kMaxReplyElements) {
        tls_refused_elements = elements;
        return nullptr;
    }
    Reply* r = ReplyNode(task);
    r->type = Reply::Type::kArray;
    r->elements.resize(static_cast<size_t>(std::max(elements, 0)));
    return r;
}

void* CreateInteger(const redisReadTask* task, long long value) {
    Reply* r = ReplyNode(task);
    r->type = Reply::Type::kInteger;
    r->integer = value;
    return r;
}

void* CreateNil(const redisReadTask* task) {
    Reply* r = ReplyNode(task);
    r->type = Reply::Type::kNil;
    return r;
}

// hiredis frees only roots (a reply abandoned half-read): the rest is inside them.
void FreeReply(void* root) { delete static_cast<Reply*>(root); }

redisReplyObjectFunctions kReplyFunctions = {CreateString, CreateArray, CreateInteger, CreateNil, FreeReply};

// A command in RESP ("*<n>\r\n" then "$<len>\r\n<arg>\r\n" per argument), in one allocation.
template <typename Args>
std::string Format(const Args& argv) {
    size_t bytes = 16;
    for (std::string_view a : argv) {
        bytes += a.size() + 16;
    }
    std::string wire;
    wire.reserve(bytes);
    auto line = [&wire](char kind, size_t n) {
        wire += kind;
        wire += std::to_string(n);
        wire += "\r\n";
    };
    line('*', std::size(argv));
    for (std::string_view a : argv) {
        line('$', a.size());
        wire.append(a.data(), a.size());
        wire += "\r\n";
    }
    return wire;
}
std::string Format(std::initializer_list<std::string_view> argv) { return Format<>(argv); }

// The first word of an error reply ("MOVED", "ASK", "ERR", ...).
std::string_view ErrorKind(const Reply& r) {
    std::string_view s = r.str;
    return s.substr(0, s.find(' '));
}

}  // namespace

uint16_t KeySlot(absl::string_view key) {
    size_t open = key.find('{');
    if (open != absl::string_view::npos) {
        size_t close = key.find('}', open + 1);
        if (close != absl::string_view::npos && close > open + 1) {
            key = key.substr(open + 1, close - open - 1);
        }
    }
    return Crc16(key) & 16383;
}

// ---- the client ----

class RedisClient::Impl {
public:
    explicit Impl(ClientOptions o) : options_(std::move(o)) {}

    ~Impl() {
        {
            absl::MutexLock lock(&mu_);
            stopping_ = true;
        }
        if (thread_.joinable()) {
            Wake();
            thread_.join();
        }
        loop_thread_ = {};  // what the failures below send again fails at once (Submit)
        closing_ = true;    // ... and what they dispatch themselves (a slots refresh) too
        // Whatever is left fails; nothing waits forever.
        for (auto& [ep, node] : nodes_) {
            for (auto& c : node->conns) {
                CloseConn(*c, absl::CancelledError("the Redis client is shutting down"), /*retry=*/false);
            }
        }
        for (auto& p : parked_) {
            Fail(*p, absl::CancelledError("the Redis client is shutting down"));
        }
        std::deque<std::unique_ptr<Pending>> left;
        {
            absl::MutexLock lock(&mu_);
            left.swap(incoming_);
        }
        for (auto& p : left) {
            Fail(*p, absl::CancelledError("the Redis client is shutting down"));
        }
        if (epoll_fd_ >= 0) {
            ::close(epoll_fd_);
        }
        if (wake_fd_ >= 0) {
            ::close(wake_fd_);
        }
    }

    absl::Status Start() {
        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (epoll_fd_ < 0 || wake_fd_ < 0) {
            return absl::InternalError(absl::StrFormat("redis client: epoll/eventfd: %s", strerror(errno)));
        }
        epoll_event ev = {};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
        thread_ = std::thread([this] { Loop(); });
        loop_thread_ = thread_.get_id();
        return absl::OkStatus();
    }

    // Stops the I/O thread and makes the calling thread this lane's loop: from now on it
    // runs Turn() itself (a daemon worker, see RedisClient::Attach).
    void HandOver() {
        {
            absl::MutexLock lock(&mu_);
            handing_over_ = true;
        }
        Wake();
        thread_.join();
        driven_ = true;
        loop_thread_ = std::this_thread::get_id();
    }

    struct Pending {
        std::string wire;
        std::string key;
        bool safe = false;
        Callback done;
        absl::Time deadline;
        absl::Time not_before;
        absl::Time sent_at;
        uint64_t wire_end = 0;  // the connection's byte count once this is written whole
        int redirects = 0;
        std::optional<Endpoint> ask_to;
        std::optional<Endpoint> pinned;  // start-up probes go to one seed
        // Internal commands (handshake, ASKING, topology): their reply goes here instead.
        absl::AnyInvocable<void(absl::StatusOr<Reply>)> internal;
        // Replication: the WAIT queued right after this command, and (on the WAIT) the
        // command's reply held until the replicas confirm it.
        int replicas = 0;
        int64_t replica_timeout_ms = 0;
        Pending* follower = nullptr;
        bool orphan = false;
        std::optional<Reply> held;
    };

    void Submit(std::unique_ptr<Pending> p) {
        if (loop_thread_ == std::this_thread::get_id()) {
            // On the loop's own thread (a driven lane's worker, or a callback): out at once.
            Count(&Counters::commands);
            ++dispatched_;
            Dispatch(std::move(p));
            ClosePending();
            return;
        }
        {
            absl::MutexLock lock(&mu_);
            if (!stopping_) {
                incoming_.push_back(std::move(p));
            }
        }
        if (p != nullptr) {
            return Fail(*p, absl::CancelledError("the Redis client is shutting down"));
        }
        // A syscall only when the I/O thread sleeps (or is about to): a busy one finds the
        // command when it looks at the queue again.
        if (sleeping_.load(std::memory_order_seq_cst)) {
            Wake();
        }
    }

    std::unique_ptr<Pending> MakePending(std::string wire, CommandOptions o, Callback done) {
        auto p = std::make_unique<Pending>();
        p->wire = std::move(wire);
        p->key = std::string(o.key);
        p->safe = o.safe_to_retry;
        p->replicas = std::max(0, o.replicas);
        p->replica_timeout_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(o.replica_timeout));
        p->done = std::move(done);
        p->deadline = absl::Now() + options_.retry_window;
        return p;
    }

    ClientOptions options_;
    std::atomic<bool> cluster_{false};
    // Counted by the I/O thread, read from anywhere: no lock per command.
    struct Counters {
        std::atomic<uint64_t> commands{0}, redirects{0}, retries{0}, reconnects{0}, topology_refreshes{0};
    } own_counters_;
    Counters* counters_ = &own_counters_;  // a lane counts into its client's
    Resolver own_resolver_;
    Resolver* resolver_ = &own_resolver_;  // a lane uses its client's (one lookup per name)

private:
    struct Conn {
        Endpoint ep;
        int fd = -1;
        bool connecting = false;
        std::string out;
        uint64_t appended = 0;  // bytes ever queued on this connection
        uint64_t written = 0;   // bytes ever written
        std::deque<std::unique_ptr<Pending>> inflight;
        redisReader* reader = nullptr;
        absl::Time connect_started;
        bool want_write = false;
        bool dirty = false;  // queued bytes for the end of the turn (driven lanes)
    };
    struct Node {
        Endpoint ep;
        std::vector<std::unique_ptr<Conn>> conns;
        size_t next = 0;
        int failures = 0;
        absl::Time retry_after = absl::InfinitePast();
    };

    void Wake() {
        uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof one);
    }

    void Count(std::atomic<uint64_t> Counters::*field) {
        (counters_->*field).fetch_add(1, std::memory_order_relaxed);
    }

    void Deliver(Pending& p, absl::StatusOr<Reply> r) {
        ++delivered_;
        if (p.internal) {
            p.internal(std::move(r));
        } else if (p.done) {
            std::move(p.done)(std::move(r));
        }
    }
    void Fail(Pending& p, absl::Status s) { Deliver(p, std::move(s)); }

    Node& NodeFor(const Endpoint& ep) {
        std::string k = ep.ToString();
        auto it = nodes_.find(k);
        if (it == nodes_.end()) {
            auto n = std::make_unique<Node>();
            n->ep = ep;
            for (int i = 0; i < std::max(1, options_.connections_per_node); ++i) {
                auto c = std::make_unique<Conn>();
                c->ep = ep;
                n->conns.push_back(std::move(c));
            }
            it = nodes_.emplace(k, std::move(n)).first;
        }
        return *it->second;
    }

    // Where a command goes: an ASK target, its slot's primary, or the default node.
    Endpoint Route(const Pending& p) {
        if (p.pinned) {
            return *p.pinned;
        }
        if (p.ask_to) {
            return *p.ask_to;
        }
        if (cluster_.load() && !p.key.empty()) {
            const std::string& owner = slots_[KeySlot(p.key)];
            if (!owner.empty()) {
                auto it = nodes_.find(owner);
                if (it != nodes_.end()) {
                    return it->second->ep;
                }
            }
        }
        return default_;
    }

    void Park(std::unique_ptr<Pending> p, absl::Duration backoff) {
        p->not_before = absl::Now() + backoff;
        parked_.push_back(std::move(p));
    }

    // Retries `p` if it may be (not executed, or safe to repeat) and there is time left.
    void RetryOrFail(std::unique_ptr<Pending> p, bool executed_maybe, const absl::Status& why) {
        if (p->internal) {
            return Deliver(*p, why);
        }
        if ((executed_maybe && !p->safe) || absl::Now() >= p->deadline) {
            return Fail(*p, executed_maybe && !p->safe
                                ? absl::UnavailableError(absl::StrCat(why.message(),
                                                                      "; the command may or may not have been applied"))
                                : why);
        }
        Count(&Counters::retries);
        Park(std::move(p), absl::Milliseconds(50));
    }

    void Dispatch(std::unique_ptr<Pending> p) {
        if (closing_) {  // never a connection opened by the destructor's own failures
            return Fail(*p, absl::CancelledError("the Redis client is shutting down"));
        }
        Endpoint ep = Route(*p);
        if (ep.host.empty()) {
            return RetryOrFail(std::move(p), false, absl::UnavailableError("no Redis server is known to be up"));
        }
        Node& node = NodeFor(ep);
        absl::Time now = absl::Now();
        // The least loaded open connection, else one to open.
        Conn* best = nullptr;
        for (auto& c : node.conns) {
            if (c->fd >= 0 && (best == nullptr || c->inflight.size() < best->inflight.size())) {
                best = c.get();
            }
        }
        if (best == nullptr) {
            if (now < node.retry_after) {
                return RetryOrFail(std::move(p), false,
                                   absl::UnavailableError(absl::StrFormat("Redis %s is down", ep.ToString())));
            }
            // A name still being looked up is not a failed server: the command waits.
            bool pending = false;
            auto addresses = resolver_->Lookup(ep, &pending);
            if (!addresses.ok()) {
                if (!pending) {
                    NodeFailed(node);
                }
                return RetryOrFail(std::move(p), false, addresses.status());
            }
            best = node.conns[node.next++ % node.conns.size()].get();
            // After a failure, the next of the name's addresses (IPv6 and IPv4, say).
            const SocketAddress& address = (*addresses)[static_cast<size_t>(node.failures) % addresses->size()];
            if (absl::Status s = OpenConn(*best, address); !s.ok()) {
                NodeFailed(node);
                return RetryOrFail(std::move(p), false, s);
            }
        }
        if (p->ask_to) {
            auto asking = std::make_unique<Pending>();
            asking->wire = Format({"ASKING"});
            asking->internal = [](absl::StatusOr<Reply>) {};
            Queue(*best, std::move(asking));
            p->ask_to.reset();  // once only: the slot's owner answers for the rest
        }
        Queue(*best, std::move(p));
    }

    void Queue(Conn& c, std::unique_ptr<Pending> p) {
        p->follower = nullptr;  // a WAIT of an earlier attempt is not this one's
        std::unique_ptr<Pending> wait;
        if (p->replicas > 0 && !p->internal) {
            wait = std::make_unique<Pending>();
            wait->wire = Format({"WAIT", std::to_string(p->replicas), std::to_string(p->replica_timeout_ms)});
            wait->replicas = p->replicas;
            wait->replica_timeout_ms = p->replica_timeout_ms;
            Pending* w = wait.get();
            wait->internal = [w](absl::StatusOr<Reply> r) {
                if (w->orphan || !w->done) {
                    return;
                }
                if (!r.ok()) {
                    return std::move(w->done)(absl::UnavailableError(absl::StrCat(
                        "written on the primary, but ", r.status().message(),
                        " before its replicas confirmed it: a failover could lose it")));
                }
                if (r->type == Reply::Type::kInteger && r->integer >= w->replicas) {
                    return std::move(w->done)(std::move(*w->held));
                }
                std::move(w->done)(absl::UnavailableError(
                    absl::StrFormat("written on the primary, but %d of %d replicas confirmed it within %d ms: a "
                                    "failover could lose it",
                                    r->type == Reply::Type::kInteger ? r->integer : 0, w->replicas,
                                    w->replica_timeout_ms)));
            };
            p->follower = w;
        }
        for (auto* q : {&p, &wait}) {
            if (*q == nullptr) {
                continue;
            }
            c.out += (*q)->wire;
            c.appended += (*q)->wire.size();
            (*q)->wire_end = c.appended;
            (*q)->sent_at = absl::Now();
            c.inflight.push_back(std::move(*q));
        }
        if (c.connecting) {
            return;
        }
        if (driven_) {
            // Written at the end of the turn: the commands of every session served in it go
            // out in one send.
            if (!c.dirty) {
                c.dirty = true;
                dirty_.push_back(&c);
            }
        } else {
            Flush(c);
        }
    }

    void FlushDirty() {
        for (Conn* c : dirty_) {
            c->dirty = false;
            if (c->fd >= 0 && !c->connecting) {
                Flush(*c);
            }
        }
        dirty_.clear();
    }

    // The command goes out again: the WAIT queued behind its earlier attempt answers nobody.
    static void DropFollower(Pending& p) {
        if (p.follower != nullptr) {
            p.follower->orphan = true;
            p.follower = nullptr;
        }
    }

    absl::Status OpenConn(Conn& c, const SocketAddress& address) {
        Count(&Counters::reconnects);
        int fd = ::socket(address.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return absl::UnavailableError(absl::StrFormat("socket: %s", strerror(errno)));
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.len) != 0 &&
            errno != EINPROGRESS) {
            int err = errno;
            ::close(fd);
            return absl::UnavailableError(absl::StrFormat("Redis %s: connect: %s", c.ep.ToString(), strerror(err)));
        }
        c.fd = fd;
        c.connecting = true;
        c.connect_started = absl::Now();
        c.reader = redisReaderCreateWithFunctions(&kReplyFunctions);
        c.out.clear();
        c.appended = c.written = 0;
        epoll_event ev = {};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.ptr = &c;
        c.want_write = true;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        // The handshake goes first on the wire: AUTH, SELECT. A refusal closes the
        // connection with PermissionDenied for everything on it.
        auto check = [this, &c](const char* what) {
            return [this, &c, what](absl::StatusOr<Reply> r) {
                if (r.ok() && r->is_error()) {
                    std::string kind(ErrorKind(*r));
                    absl::Status s = kind == "WRONGPASS" || kind == "NOAUTH" || kind == "NOPERM" ||
                                             absl::StrContains(r->str, "invalid password") ||
                                             absl::StrContains(r->str, "invalid username-password")
                                         ? absl::PermissionDeniedError(
                                               absl::StrFormat("Redis %s refused %s: %s", c.ep.ToString(), what, r->str))
                                         : absl::FailedPreconditionError(
                                               absl::StrFormat("Redis %s: %s failed: %s", c.ep.ToString(), what, r->str));
                    fatal_ = s;
                    pending_close_.push_back({&c, s});
                }
            };
        };
        if (!options_.password.empty()) {
            auto auth = std::make_unique<Pending>();
            auth->wire = options_.user.empty() ? Format({"AUTH", options_.password})
                                               : Format({"AUTH", options_.user, options_.password});
            auth->internal = check("the credentials");
            Queue(c, std::move(auth));
        }
        if (options_.database != 0 && !cluster_.load()) {
            auto select = std::make_unique<Pending>();
            select->wire = Format({"SELECT", std::to_string(options_.database)});
            select->internal = check("SELECT");
            Queue(c, std::move(select));
        }
        return absl::OkStatus();
    }

    void NodeFailed(Node& node) {
        node.failures = std::min(node.failures + 1, 6);
        node.retry_after = absl::Now() + absl::Milliseconds(25) * (1 << node.failures);
        if (cluster_.load()) {
            refresh_wanted_ = true;
        }
    }

    // Closes `c`: what was in flight on it is retried or failed.
    void CloseConn(Conn& c, const absl::Status& why, bool retry = true) {
        if (c.fd < 0) {
            return;
        }
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
        c.connecting = false;
        if (c.reader != nullptr) {
            redisReaderFree(c.reader);
            c.reader = nullptr;
        }
        auto inflight = std::move(c.inflight);
        c.inflight.clear();
        c.out.clear();
        for (auto& p : inflight) {
            if (!retry || absl::IsPermissionDenied(why)) {
                Fail(*p, why);
                continue;
            }
            bool sent_whole = p->wire_end <= c.written;
            RetryOrFail(std::move(p), sent_whole, why);
        }
    }

    void Flush(Conn& c) {
        while (c.fd >= 0 && !c.out.empty()) {
            ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN) {
                    break;
                }
                pending_close_.push_back(
                    {&c, absl::UnavailableError(absl::StrFormat("Redis %s: %s", c.ep.ToString(), strerror(errno)))});
                return;
            }
            c.out.erase(0, static_cast<size_t>(n));
            c.written += static_cast<uint64_t>(n);
        }
        bool want = !c.out.empty();
        if (c.fd >= 0 && want != c.want_write) {
            epoll_event ev = {};
            ev.events = EPOLLIN | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
            ev.data.ptr = &c;
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
            c.want_write = want;
        }
    }

    void OnReadable(Conn& c) {
        char buf[64 << 10];
        while (c.fd >= 0) {
            ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && errno == EAGAIN) {
                break;
            }
            if (n <= 0) {
                pending_close_.push_back({&c, absl::UnavailableError(absl::StrFormat(
                                                  "Redis %s closed the connection%s", c.ep.ToString(),
                                                  n < 0 ? absl::StrCat(" (", strerror(errno), ")") : ""))});
                return;
            }
            redisReaderFeed(c.reader, buf, static_cast<size_t>(n));
            while (true) {
                void* raw = nullptr;
                tls_refused_elements = 0;
                if (redisReaderGetReply(c.reader, &raw) != REDIS_OK) {
                    std::string what = tls_refused_elements != 0
                                           ? absl::StrFormat("an array of %d elements (at most %d are accepted)",
                                                             tls_refused_elements, kMaxReplyElements)
                                           : absl::StrCat("what is not RESP: ", c.reader->errstr);
                    pending_close_.push_back(
                        {&c, absl::DataLossError(absl::StrFormat("Redis %s sent %s", c.ep.ToString(), what))});
                    return;
                }
                if (raw == nullptr) {
                    break;
                }
                std::unique_ptr<Reply> root(static_cast<Reply*>(raw));
                Reply r = std::move(*root);
                if (c.inflight.empty()) {
                    pending_close_.push_back(
                        {&c, absl::DataLossError(absl::StrFormat("Redis %s sent a reply nobody asked for",
                                                                 c.ep.ToString()))});
                    return;
                }
                std::unique_ptr<Pending> p = std::move(c.inflight.front());
                c.inflight.pop_front();
                OnReply(std::move(p), std::move(r));
            }
            if (static_cast<size_t>(n) < sizeof buf) {
                break;
            }
        }
    }

    void OnReply(std::unique_ptr<Pending> p, Reply r) {
        if (p->internal) {
            return Deliver(*p, std::move(r));
        }
        if (r.is_error()) {
            std::string_view kind = ErrorKind(r);
            if (kind == "MOVED" || kind == "ASK") {
                // "MOVED 3999 127.0.0.1:6381": not executed; it lives there now.
                std::vector<std::string> parts = absl::StrSplit(r.str, ' ');
                int slot = -1;
                // An empty host ("MOVED 3999 :6381") is the host of the node that answered.
                std::string addr = parts.size() == 3 ? parts[2] : std::string();
                if (absl::StartsWith(addr, ":")) {
                    addr = default_.host + addr;
                }
                auto where = parts.size() == 3 ? ParseRedisUrl(addr)
                                               : absl::StatusOr<std::vector<Endpoint>>(absl::InvalidArgumentError("bad"));
                if (where.ok() && absl::SimpleAtoi(parts[1], &slot) && slot >= 0 && slot < 16384 &&
                    ++p->redirects <= 8) {
                    Count(&Counters::redirects);
                    Endpoint ep = (*where)[0];
                    if (kind == "MOVED") {
                        slots_[slot] = NodeFor(ep).ep.ToString();
                        refresh_wanted_ = true;
                    } else {
                        p->ask_to = ep;
                    }
                    DropFollower(*p);
                    return Dispatch(std::move(p));
                }
            } else if (kind == "TRYAGAIN" || kind == "CLUSTERDOWN" || kind == "LOADING" || kind == "MASTERDOWN") {
                // Not executed: the slot is moving, the cluster or the server is not ready.
                if (kind == "CLUSTERDOWN") {
                    refresh_wanted_ = true;
                }
                if (absl::Now() < p->deadline) {
                    Count(&Counters::retries);
                    DropFollower(*p);
                    return Park(std::move(p), absl::Milliseconds(100));
                }
            }
        }
        if (p->follower != nullptr && !r.is_error()) {
            // Held until the WAIT behind it says the replicas have it.
            p->follower->held = std::move(r);
            p->follower->done = std::move(p->done);
            p->follower = nullptr;
            return;
        }
        DropFollower(*p);
        Deliver(*p, std::move(r));
    }

    // Asks a reachable node for the slot map (CLUSTER SLOTS) and installs it.
    void RefreshTopology() {
        if (refresh_in_flight_ || absl::Now() < next_refresh_) {
            return;
        }
        refresh_wanted_ = false;
        refresh_in_flight_ = true;
        next_refresh_ = absl::Now() + absl::Milliseconds(100);
        Count(&Counters::topology_refreshes);
        // Candidates: every node known that is not backing off, then the seeds.
        std::vector<Endpoint> candidates;
        for (auto& [k, n] : nodes_) {
            if (absl::Now() >= n->retry_after) {
                candidates.push_back(n->ep);
            }
        }
        for (const Endpoint& s : options_.seeds) {
            candidates.push_back(s);
        }
        AskSlots(std::move(candidates), 0);
    }

    void AskSlots(std::vector<Endpoint> candidates, size_t i) {
        if (i >= candidates.size()) {
            refresh_in_flight_ = false;
            refresh_wanted_ = true;  // nobody answered: try again later
            return;
        }
        auto p = std::make_unique<Pending>();
        p->wire = Format({"CLUSTER", "SLOTS"});
        p->pinned = candidates[i];
        p->deadline = absl::Now();
        Endpoint asked = candidates[i];
        p->internal = [this, candidates = std::move(candidates), i, asked](absl::StatusOr<Reply> r) mutable {
            if (!r.ok() || r->is_error() || r->type != Reply::Type::kArray || r->elements.empty()) {
                return AskSlots(std::move(candidates), i + 1);
            }
            InstallSlots(*r, asked);
            refresh_in_flight_ = false;
        };
        Dispatch(std::move(p));
    }

    void InstallSlots(const Reply& r, const Endpoint& asked) {
        for (const Reply& range : r.elements) {
            if (range.type != Reply::Type::kArray || range.elements.size() < 3 ||
                range.elements[2].type != Reply::Type::kArray || range.elements[2].elements.size() < 2) {
                continue;
            }
            int64_t from = range.elements[0].integer, to = range.elements[1].integer;
            const Reply& primary = range.elements[2];
            Endpoint ep{primary.elements[0].str, static_cast<int>(primary.elements[1].integer)};
            if (ep.host.empty()) {
                ep.host = asked.host;  // "" means: the address you asked me on
            }
            std::string owner = NodeFor(ep).ep.ToString();
            for (int64_t s = std::max<int64_t>(from, 0); s <= std::min<int64_t>(to, 16383); ++s) {
                slots_[s] = owner;
            }
        }
    }

    void CheckTimers() {
        absl::Time now = absl::Now();
        for (auto& [k, node] : nodes_) {
            for (auto& c : node->conns) {
                if (c->fd < 0) {
                    continue;
                }
                if (c->connecting && now - c->connect_started > options_.connect_timeout) {
                    pending_close_.push_back({c.get(), absl::UnavailableError(absl::StrFormat(
                                                           "Redis %s: no connection within %s", c->ep.ToString(),
                                                           absl::FormatDuration(options_.connect_timeout)))});
                } else if (!c->inflight.empty() && now - c->inflight.front()->sent_at > options_.command_timeout) {
                    pending_close_.push_back({c.get(), absl::DeadlineExceededError(absl::StrFormat(
                                                           "Redis %s: no reply within %s", c->ep.ToString(),
                                                           absl::FormatDuration(options_.command_timeout)))});
                }
            }
        }
        // Parked commands whose backoff is over go out again.
        std::deque<std::unique_ptr<Pending>> due;
        for (auto it = parked_.begin(); it != parked_.end();) {
            if ((*it)->not_before <= now) {
                due.push_back(std::move(*it));
                it = parked_.erase(it);
            } else {
                ++it;
            }
        }
        for (auto& p : due) {
            Dispatch(std::move(p));
        }
    }

    void ClosePending() {
        while (!pending_close_.empty()) {
            auto [c, why] = pending_close_.front();
            pending_close_.pop_front();
            if (c->fd < 0) {
                continue;
            }
            bool was_connecting = c->connecting;
            Node& node = NodeFor(c->ep);
            CloseConn(*c, why);
            if (!absl::IsPermissionDenied(why) && (was_connecting || !absl::IsDeadlineExceeded(why))) {
                NodeFailed(node);
            }
        }
    }

    void TakeIncoming() {
        std::deque<std::unique_ptr<Pending>> batch;
        {
            absl::MutexLock lock(&mu_);
            batch.swap(incoming_);
        }
        for (auto& p : batch) {
            Count(&Counters::commands);
            ++dispatched_;
            Dispatch(std::move(p));
        }
    }

    void HandleEvents(const epoll_event* events, int n) {
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == nullptr) {
                uint64_t v;
                while (::read(wake_fd_, &v, sizeof v) > 0) {
                }
                continue;
            }
            Conn& c = *static_cast<Conn*>(events[i].data.ptr);
            if (c.fd < 0) {
                continue;
            }
            if (c.connecting && (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t len = sizeof err;
                ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    pending_close_.push_back({&c, absl::UnavailableError(absl::StrFormat(
                                                      "Redis %s: connect: %s", c.ep.ToString(), strerror(err)))});
                    continue;
                }
                c.connecting = false;
                NodeFor(c.ep).failures = 0;
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                OnReadable(c);
            }
            if (c.fd >= 0 && !c.connecting) {
                Flush(c);
            }
        }
    }

public:
    // Anything to wait for or to do: commands in flight or parked, connections opening, a
    // topology refresh, bytes to write.
    bool Busy() const {
        if (!parked_.empty() || refresh_wanted_ || !dirty_.empty()) {
            return true;
        }
        for (const auto& [k, n] : nodes_) {
            for (const auto& c : n->conns) {
                if (c->fd >= 0 && (!c->inflight.empty() || c->connecting)) {
                    return true;
                }
            }
        }
        return false;
    }

    // One turn of the loop: commands queued from other threads go out, what is ready is read
    // (waiting up to `timeout_ms`, 0: only look), timers run. True when a command went out
    // or a reply was delivered.
    bool Turn(int timeout_ms) {
        uint64_t before = dispatched_ + delivered_;
        TakeIncoming();
        ClosePending();
        if (refresh_wanted_ && cluster_.load()) {
            RefreshTopology();
        }
        FlushDirty();
        epoll_event events[64];
        int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
        HandleEvents(events, std::max(n, 0));
        ClosePending();
        CheckTimers();
        ClosePending();
        FlushDirty();
        return dispatched_ + delivered_ != before;
    }

    // On the loop's thread: commands go to the first seed, and a cluster's slots are asked
    // for at the next turn (and again until a node answers).
    void StartFromSeed(bool cluster) {
        default_ = options_.seeds.front();
        cluster_.store(cluster);
        refresh_wanted_ = cluster;
    }

    int fd() const { return epoll_fd_; }
    // A driven lane's loop announces its sleeps, so that other threads' commands wake it.
    void Sleeping(bool asleep) { sleeping_.store(asleep, std::memory_order_seq_cst); }

private:
    void Loop() {
        while (true) {
            sleeping_.store(true, std::memory_order_seq_cst);
            bool queued;
            {
                absl::MutexLock lock(&mu_);
                if (stopping_ || handing_over_) {
                    break;
                }
                queued = !incoming_.empty();
            }
            // A command queued after the check above wakes the wait through the eventfd.
            Turn(queued ? 0 : Busy() ? 10 : 1000);
            sleeping_.store(false, std::memory_order_relaxed);
        }
    }

public:
    // Start-up: probes one seed (bounded by connect_timeout); learns cluster or not.
    absl::Status Probe(const Endpoint& seed) {
        auto call = [&](std::vector<std::string> argv) -> absl::StatusOr<Reply> {
            absl::Notification done;
            absl::StatusOr<Reply> out;
            auto p = MakePending(Format(argv), {}, [&](absl::StatusOr<Reply> r) {
                out = std::move(r);
                done.Notify();
            });
            p->pinned = seed;
            p->safe = true;
            p->deadline = absl::Now() + options_.connect_timeout;
            Submit(std::move(p));
            done.WaitForNotification();
            return out;
        };
        ZH_ASSIGN_OR_RETURN(auto ping, call({"PING"}));
        ZH_RETURN_IF_ERROR(fatal_);
        if (ping.is_error()) {
            std::string_view kind = ErrorKind(ping);
            if (kind == "NOAUTH" || kind == "WRONGPASS") {
                return absl::PermissionDeniedError(
                    absl::StrFormat("Redis %s wants credentials: %s", seed.ToString(), ping.str));
            }
            return absl::UnavailableError(absl::StrFormat("Redis %s: %s", seed.ToString(), ping.str));
        }
        ZH_ASSIGN_OR_RETURN(auto slots, call({"CLUSTER", "SLOTS"}));
        if (slots.type == Reply::Type::kArray) {
            absl::Notification installed;
            auto p = std::make_unique<Pending>();
            p->wire = Format({"PING"});
            p->pinned = seed;
            Reply copy = slots;
            p->internal = [this, copy, seed, &installed](absl::StatusOr<Reply>) {
                InstallSlots(copy, seed);
                installed.Notify();
            };
            cluster_.store(true);
            if (options_.database != 0) {
                return absl::InvalidArgumentError("a Redis Cluster has only database 0");
            }
            Submit(std::move(p));
            installed.WaitForNotification();
        }
        default_ = seed;
        return absl::OkStatus();
    }

private:
    std::thread::id loop_thread_;  // the thread that runs the loop (set before others send)

    absl::Mutex mu_;
    bool stopping_ ABSL_GUARDED_BY(mu_) = false;
    bool handing_over_ ABSL_GUARDED_BY(mu_) = false;
    bool driven_ = false;  // the loop runs on a thread that called HandOver
    std::atomic<bool> sleeping_{true};  // the I/O thread is in (or entering) epoll_wait
    std::deque<std::unique_ptr<Pending>> incoming_ ABSL_GUARDED_BY(mu_);
    // Everything below belongs to the I/O thread.
    bool closing_ = false;  // the destructor is failing what is left
    std::map<std::string, std::unique_ptr<Node>> nodes_;
    std::string slots_[16384];
    Endpoint default_;
    std::deque<std::unique_ptr<Pending>> parked_;
    std::deque<std::pair<Conn*, absl::Status>> pending_close_;
    std::vector<Conn*> dirty_;
    uint64_t dispatched_ = 0;
    uint64_t delivered_ = 0;
    bool refresh_wanted_ = false;
    bool refresh_in_flight_ = false;
    absl::Time next_refresh_ = absl::InfinitePast();
    absl::Status fatal_;  // a refused handshake
    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::thread thread_;
};

RedisClient::RedisClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RedisClient::~RedisClient() = default;

namespace {

// The lanes attached on this thread: (client's home lane, the lane).
thread_local std::vector<std::pair<const RedisClient::Impl*, RedisClient::Impl*>> tls_lanes;

// Probes the seeds in turn until one answers.
absl::Status ProbeSeeds(RedisClient::Impl& impl, const std::vector<Endpoint>& seeds) {
    std::vector<std::string> errors;
    for (const Endpoint& seed : seeds) {
        absl::Status s = impl.Probe(seed);
        if (s.ok()) {
            return s;
        }
        if (absl::IsPermissionDenied(s) || absl::IsInvalidArgument(s)) {
            return s;  // the same credentials fail everywhere
        }
        errors.push_back(std::string(s.message()));
    }
    return absl::UnavailableError(absl::StrCat("no Redis server answered: ", absl::StrJoin(errors, "; ")));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Connect(ClientOptions options) {
    if (options.seeds.empty()) {
        return absl::InvalidArgumentError("no Redis server given");
    }
    auto impl = std::make_unique<Impl>(options);
    ZH_RETURN_IF_ERROR(impl->Start());
    ZH_RETURN_IF_ERROR(ProbeSeeds(*impl, options.seeds));
    return std::unique_ptr<RedisClient>(new RedisClient(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<LoopLane>> RedisClient::Attach() {
    for (const auto& [home, lane] : tls_lanes) {
        if (home == impl_.get()) {
            return absl::FailedPreconditionError("this thread already runs a lane of this Redis client");
        }
    }
    ClientOptions o = impl_->options_;
    o.connections_per_node = 1;  // one thread: one pipelined connection per server is enough
    auto lane = std::make_unique<Impl>(o);
    lane->counters_ = impl_->counters_;
    lane->resolver_ = impl_->resolver_;
    ZH_RETURN_IF_ERROR(lane->Start());
    // Learned on the lane's own thread, then handed over to this one.
    absl::Status probed = ProbeSeeds(*lane, o.seeds);
    if (!probed.ok() && !absl::IsUnavailable(probed)) {
        return probed;  // refused credentials, a bad database: the same everywhere
    }
    lane->HandOver();
    if (!probed.ok()) {
        // Redis answered the client at Connect and is down now: the lane starts from what
        // the client knows (a cluster?) and a seed, and learns the rest once one answers.
        lane->StartFromSeed(impl_->cluster_.load());
    }
    tls_lanes.emplace_back(impl_.get(), lane.get());
    return std::unique_ptr<LoopLane>(new LoopLane(std::move(lane)));
}

RedisClient::Impl& RedisClient::LaneHere() const {
    for (const auto& [home, lane] : tls_lanes) {
        if (home == impl_.get()) {
            return *lane;
        }
    }
    return *impl_;
}

LoopLane::LoopLane(std::unique_ptr<RedisClient::Impl> lane) : lane_(std::move(lane)) {}

LoopLane::~LoopLane() {
    // Commands sent from here on go to the client's own thread.
    std::erase_if(tls_lanes, [this](const auto& e) { return e.second == lane_.get(); });
}

int LoopLane::fd() const { return lane_->fd(); }
bool LoopLane::Poll() { return lane_->Turn(0); }
bool LoopLane::Busy() const { return lane_->Busy(); }
int LoopLane::TimeoutMs() const { return lane_->Busy() ? 10 : -1; }
void LoopLane::Sleeping(bool asleep) { lane_->Sleeping(asleep); }

void RedisClient::Send(const std::vector<std::string>& argv, CommandOptions options, Callback done) {
    Impl& lane = LaneHere();
    lane.Submit(lane.MakePending(Format(argv), options, std::move(done)));
}

void RedisClient::SendArgs(absl::Span<const std::string_view> argv, CommandOptions options, Callback done) {
    Impl& lane = LaneHere();
    lane.Submit(lane.MakePending(Format(argv), options, std::move(done)));
}

absl::StatusOr<Reply> RedisClient::Call(const std::vector<std::string>& argv, CommandOptions options) {
    absl::Notification done;
    absl::StatusOr<Reply> out;
    // Always on the client's own thread: a lane's thread waiting here could not run its loop.
    impl_->Submit(impl_->MakePending(Format(argv), options, [&](absl::StatusOr<Reply> r) {
        out = std::move(r);
        done.Notify();
    }));
    done.WaitForNotification();
    return out;
}

bool RedisClient::cluster() const { return impl_->cluster_.load(); }

ClientStats RedisClient::stats() const {
    const auto& c = *impl_->counters_;
    return ClientStats{c.commands.load(std::memory_order_relaxed), c.redirects.load(std::memory_order_relaxed),
                       c.retries.load(std::memory_order_relaxed), c.reconnects.load(std::memory_order_relaxed),
                       c.topology_refreshes.load(std::memory_order_relaxed)};
}

}  // namespace zerohop::redis

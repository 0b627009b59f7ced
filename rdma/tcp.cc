#include "rdma/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "rdma/frame.h"
#include "shmring/unique_fd.h"

namespace zerohop::peer {

namespace {

// What a completion is about: the top byte of its user data; the rest names the connection
// (or the listener).
enum Tag : uint64_t { kWake = 1, kAccept = 2, kRecv = 3, kSend = 4, kConnect = 5 };
constexpr int kTagShift = 56;
uint64_t UserData(Tag tag, uint64_t id) { return (static_cast<uint64_t>(tag) << kTagShift) | id; }

// The buffers the kernel receives into: kBuffers of kBufferSize, lent to multishot receives.
constexpr unsigned kBuffers = 64;
constexpr unsigned kBufferSize = 64 << 10;
constexpr uint16_t kBufferGroup = 0;
// A handshake frame is small; until the terms are agreed no larger body is taken.
constexpr uint32_t kHandshakeMaxBody = 1024;
// Pieces (headers and bodies) gathered into one sendmsg.
constexpr size_t kMaxIov = 128;
// Unfinished messages a connection may hold in all (a peer sending pieces of many large
// messages at once is closed past it).
constexpr size_t kMaxGathering = 2 * kMaxMessage;
// How long a peer may leave us unanswered (data unacknowledged, or keepalive probes) before
// its connection is given up: idle 3 s, then 7 probes a second apart.
constexpr int kKeepIdleSeconds = 3;
constexpr int kKeepProbes = 7;
constexpr absl::Duration kDeadPeer = absl::Seconds(kKeepIdleSeconds + kKeepProbes);

uint64_t NowNs() { return static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())); }

// Marks the errors of calls whose connection broke or was down (IsConnectionLoss).
constexpr char kLossPayload[] = "zerohop.peer/connection-loss";

absl::Status Lost(std::string message) {
    absl::Status s = absl::UnavailableError(std::move(message));
    s.SetPayload(kLossPayload, absl::Cord("1"));
    return s;
}

std::string EncodeError(const absl::Status& s) {
    std::string out(4, '\0');
    uint32_t code = static_cast<uint32_t>(s.code());
    std::memcpy(out.data(), &code, 4);
    out.append(s.message().data(), s.message().size());
    return out;
}

absl::Status DecodeError(std::string_view body) {
    if (body.size() < 4) {
        return absl::DataLossError("peer: an error response without a status");
    }
    uint32_t code;
    std::memcpy(&code, body.data(), 4);
    if (code == 0 || code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)) {
        code = static_cast<uint32_t>(absl::StatusCode::kUnknown);
    }
    return absl::Status(static_cast<absl::StatusCode>(code), "peer: " + std::string(body.substr(4)));
}

}  // namespace

bool IsConnectionLoss(const absl::Status& s) { return s.GetPayload(kLossPayload).has_value(); }

// A frame ready for the socket: its header in place (no allocation), its body as given
// (no copy); they leave as two pieces of one sendmsg.
struct OutFrame {
    char header[kFrameHeaderSize];
    std::string body;
    size_t size() const { return kFrameHeaderSize + body.size(); }
};

struct PendingCall {
    absl::Time deadline;
    PeerClient::Done done;
};

struct Connection {
    enum class State { kConnecting, kHandshake, kOpen, kClosed };

    uint64_t id = 0;
    shmring::UniqueFd fd;
    bool dialer = false;
    State state = State::kConnecting;
    absl::Status why;  // once closed
    std::atomic<bool> up{false};
    absl::Time handshake_deadline;
    std::optional<DialerHandshake> dialer_hs;
    std::optional<ListenerHandshake> listener_hs;
    std::function<void(absl::Status)> handshaken;  // the dialer waiting in Dial
    std::function<void(PeerRequest)> on_request;   // a listener's
    Agreed agreed;
    FrameReader reader{kHandshakeMaxBody};
    SendCredits send{0};
    ReceiveCredits receive{0, 1};
    // Frames that need a credit, waiting for one; then frames ready for the socket.
    std::deque<std::pair<FrameHeader, std::string>> waiting;
    std::deque<OutFrame> out;  // ready for the socket
    size_t out_sent = 0;       // bytes of out.front() already sent
    bool sending = false;
    std::vector<iovec> iov;
    msghdr msg = {};
    int ops = 0;  // submissions in flight on this connection (its fd stays open until 0)
    bool receiving = false;
    absl::flat_hash_map<uint64_t, PendingCall> calls;
    // Messages arriving in pieces, by request id and direction, and their bytes in all.
    absl::flat_hash_map<uint64_t, std::string> gathering;
    size_t gathering_bytes = 0;
    uint64_t next_request = 1;
    sockaddr_storage peer_addr = {};
    socklen_t peer_addr_len = 0;
};

struct PeerLoop::Impl {
    PeerOptions options;
    io_uring ring = {};
    bool ring_ready = false;
    io_uring_buf_ring* buf_ring = nullptr;
    void* buf_ring_mem = nullptr;
    std::vector<char> buffers;
    shmring::UniqueFd wake;
    uint64_t wake_value = 0;
    std::thread thread;
    std::atomic<std::thread::id> loop_thread{};
    std::atomic<bool> stopping{false};

    std::mutex posted_mu;
    std::vector<absl::AnyInvocable<void() &&>> posted;

    // Loop thread only.
    std::multimap<absl::Time, absl::AnyInvocable<void() &&>> timers;
    absl::flat_hash_map<uint64_t, std::shared_ptr<Connection>> conns;
    struct Listener {
        shmring::UniqueFd fd;
        ListenerHandshake::SecretOf secret_of;
        std::function<void(PeerRequest)> on_request;
    };
    absl::flat_hash_map<uint64_t, Listener> listeners;
    uint64_t next_id = 1;
    std::atomic<size_t> open_count{0};

    ~Impl() {
        if (ring_ready) {
            io_uring_queue_exit(&ring);
        }
        if (buf_ring_mem != nullptr) {
            munmap(buf_ring_mem, kBuffers * sizeof(io_uring_buf));
        }
    }

    absl::Status Init() {
        int r = io_uring_queue_init(512, &ring, 0);
        if (r < 0) {
            return absl::UnavailableError(absl::StrFormat("peer: io_uring_queue_init: %s", strerror(-r)));
        }
        ring_ready = true;
        buf_ring_mem = mmap(nullptr, kBuffers * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                            MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (buf_ring_mem == MAP_FAILED) {
            buf_ring_mem = nullptr;
            return absl::ResourceExhaustedError("peer: cannot map the receive buffer ring");
        }
        buf_ring = static_cast<io_uring_buf_ring*>(buf_ring_mem);
        io_uring_buf_reg reg = {};
        reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_mem);
        reg.ring_entries = kBuffers;
        reg.bgid = kBufferGroup;
        if ((r = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
            return absl::UnavailableError(
                absl::StrFormat("peer: io_uring_register_buf_ring: %s (kernel 5.19 or later needed)", strerror(-r)));
        }
        io_uring_buf_ring_init(buf_ring);
        buffers.resize(size_t{kBuffers} * kBufferSize);
        for (unsigned i = 0; i < kBuffers; ++i) {
            io_uring_buf_ring_add(buf_ring, buffers.data() + size_t{i} * kBufferSize, kBufferSize, i,
                                  io_uring_buf_ring_mask(kBuffers), static_cast<int>(i));
        }
        io_uring_buf_ring_advance(buf_ring, kBuffers);
        wake.reset(::eventfd(0, EFD_CLOEXEC));
        if (!wake.valid()) {
            return absl::InternalError(absl::StrFormat("peer: eventfd: %s", strerror(errno)));
        }
        ArmWake();
        return absl::OkStatus();
    }

    io_uring_sqe* Sqe() {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        if (sqe == nullptr) {
            io_uring_submit(&ring);
            sqe = io_uring_get_sqe(&ring);
        }
        return sqe;
    }

    void ArmWake() {
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_read(sqe, wake.get(), &wake_value, sizeof wake_value, 0);
        io_uring_sqe_set_data64(sqe, UserData(kWake, 0));
    }

    // Runs `fn` on the loop's thread.
    void Post(absl::AnyInvocable<void() &&> fn) {
        {
            std::lock_guard<std::mutex> lock(posted_mu);
            posted.push_back(std::move(fn));
        }
        uint64_t one = 1;
        (void)!::write(wake.get(), &one, sizeof one);
    }

    bool OnLoop() const { return std::this_thread::get_id() == loop_thread.load(std::memory_order_relaxed); }

    void Run() {
        loop_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
        while (!stopping.load(std::memory_order_acquire)) {
            // Deadlines are looked at every 10 ms while any is pending. (The loop sleeps: a
            // 50 us spin for answers before sleeping halved the throughput of synchronous
            // calls on a 2-core machine, where the spinning thread takes the core the answer
            // needs; zh-bench --suite peer.)
            bool pending = !timers.empty();
            for (auto& [id, c] : conns) {
                pending |= c->state == Connection::State::kHandshake ||
                           c->state == Connection::State::kConnecting || !c->calls.empty();
            }
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10'000'000};
            int r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, pending ? &ts : nullptr, nullptr);
            if (r < 0 && r != -ETIME && r != -EINTR) {
                continue;
            }
            unsigned head;
            unsigned seen = 0;
            io_uring_for_each_cqe(&ring, head, cqe) {
                ++seen;
                Complete(cqe->user_data, cqe->res, cqe->flags);
            }
            io_uring_cq_advance(&ring, seen);
            Expire();
        }
        std::vector<std::shared_ptr<Connection>> all;
        for (auto& [id, c] : conns) {
            all.push_back(c);
        }
        for (auto& c : all) {
            Close(*c, absl::UnavailableError("peer: the daemon's peer loop stopped"));
        }
    }

    void Complete(uint64_t data, int res, uint32_t flags) {
        Tag tag = static_cast<Tag>(data >> kTagShift);
        uint64_t id = data & ((uint64_t{1} << kTagShift) - 1);
        if (tag == kWake) {
            std::vector<absl::AnyInvocable<void() &&>> fns;
            {
                std::lock_guard<std::mutex> lock(posted_mu);
                fns.swap(posted);
            }
            for (auto& fn : fns) {
                std::move(fn)();
            }
            ArmWake();
            return;
        }
        if (tag == kAccept) {
            Accepted(id, res, flags);
            return;
        }
        auto it = conns.find(id);
        if (it == conns.end()) {
            return;
        }
        std::shared_ptr<Connection> c = it->second;
        --c->ops;
        switch (tag) {
            case kConnect: Connected(*c, res); break;
            case kRecv: Received(*c, res, flags); break;
            case kSend: Sent(*c, res); break;
            default: break;
        }
        Reap(c);
    }

    // A closed connection leaves once nothing of the kernel's refers to it.
    void Reap(std::shared_ptr<Connection> c) {  // a copy: the map's may be the one erased
        if (c->state == Connection::State::kClosed && c->ops == 0) {
            conns.erase(c->id);
            c->fd.reset();
        }
    }

    std::shared_ptr<Connection> NewConnection(shmring::UniqueFd fd, bool dialer) {
        auto c = std::make_shared<Connection>();
        c->id = next_id++;
        c->fd = std::move(fd);
        c->dialer = dialer;
        c->handshake_deadline = absl::Now() + options.handshake_timeout;
        // Small frames go at once; a peer that stops answering (dead, or the link cut with
        // no reset) is given up after kDeadPeer: unacknowledged data (TCP_USER_TIMEOUT) or
        // keepalive probes on an idle connection. Its calls then fail as outcome unknown and
        // the caller dials again.
        int one = 1, idle = kKeepIdleSeconds, interval = 1, probes = kKeepProbes;
        unsigned int user_timeout = static_cast<unsigned int>(absl::ToInt64Milliseconds(kDeadPeer));
        setsockopt(c->fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c->fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(c->fd.get(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(c->fd.get(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        setsockopt(c->fd.get(), IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
        setsockopt(c->fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
        conns[c->id] = c;
        open_count.fetch_add(1);
        return c;
    }

    void ArmAccept(uint64_t listener_id) {
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_multishot_accept(sqe, listeners[listener_id].fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, UserData(kAccept, listener_id));
    }

    void Accepted(uint64_t listener_id, int res, uint32_t flags) {
        auto l = listeners.find(listener_id);
        if (l == listeners.end()) {
            if (res >= 0) {
                ::close(res);
            }
            return;
        }
        if (res >= 0) {
            auto c = NewConnection(shmring::UniqueFd(res), false);
            c->state = Connection::State::kHandshake;
            c->listener_hs.emplace(l->second.secret_of, options.terms);
            c->on_request = l->second.on_request;
            ArmRecv(*c);
        }
        if (!(flags & IORING_CQE_F_MORE) && !stopping.load()) {
            ArmAccept(listener_id);  // the kernel ended the multishot (an error, or overflow)
        }
    }

    void ArmRecv(Connection& c) {
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_recv_multishot(sqe, c.fd.get(), nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kBufferGroup;
        io_uring_sqe_set_data64(sqe, UserData(kRecv, c.id));
        ++c.ops;
        c.receiving = true;
    }

    void Connected(Connection& c, int res) {
        if (res < 0) {
            return Close(c, absl::UnavailableError(absl::StrFormat("peer: cannot connect: %s", strerror(-res))));
        }
        if (c.state == Connection::State::kClosed) {
            return;
        }
        c.state = Connection::State::kHandshake;
        SendRaw(c, FrameHeader{.kind = FrameKind::kHello}, c.dialer_hs->Hello());
        ArmRecv(c);
    }

    void Received(Connection& c, int res, uint32_t flags) {
        if (!(flags & IORING_CQE_F_MORE)) {
            c.receiving = false;
        }
        if (res == -ENOBUFS) {
            // Every buffer is lent out; ours come back as soon as this round is handled.
            if (!c.receiving && c.state != Connection::State::kClosed) {
                ArmRecv(c);
            }
            return;
        }
        if (res <= 0) {
            return Close(c, res == 0 ? absl::UnavailableError("peer: the connection was closed by the peer")
                                     : absl::UnavailableError(absl::StrFormat("peer: receive: %s", strerror(-res))));
        }
        unsigned buffer = flags >> IORING_CQE_BUFFER_SHIFT;
        char* data = buffers.data() + size_t{buffer} * kBufferSize;
        if (c.state != Connection::State::kClosed) {
            OnBytes(c, std::string_view(data, static_cast<size_t>(res)));
        }
        io_uring_buf_ring_add(buf_ring, data, kBufferSize, static_cast<unsigned short>(buffer),
                              io_uring_buf_ring_mask(kBuffers), 0);
        io_uring_buf_ring_advance(buf_ring, 1);
        if (!c.receiving && c.state != Connection::State::kClosed) {
            ArmRecv(c);
        }
    }

    void OnBytes(Connection& c, std::string_view bytes) {
        c.reader.Feed(bytes);
        while (auto f = c.reader.Next()) {
            if (absl::Status s = OnFrame(c, *f); !s.ok()) {
                return Close(c, s);
            }
            if (c.state == Connection::State::kClosed) {
                return;
            }
        }
        if (!c.reader.status().ok()) {
            return Close(c, c.reader.status());
        }
        if (c.state == Connection::State::kOpen && c.receive.ShouldReturn()) {
            SendRaw(c, FrameHeader{.kind = FrameKind::kCredit}, "");
        }
    }

    absl::Status OnFrame(Connection& c, const Frame& f) {
        const FrameHeader& h = f.header;
        if (c.state == Connection::State::kHandshake) {
            return OnHandshake(c, h.kind, f.body);
        }
        if (h.kind == FrameKind::kHello || h.kind == FrameKind::kChallenge || h.kind == FrameKind::kProof) {
            return absl::InvalidArgumentError(
                absl::StrFormat("peer: a %s after the handshake", FrameKindName(h.kind)));
        }
        if (absl::Status granted = c.send.Grant(h.credits); !granted.ok()) {
            return granted;
        }
        FlushWaiting(c);
        if (IsRequestLevel(h.kind)) {
            if (absl::Status s = c.receive.Received(); !s.ok()) {
                return s;
            }
            std::string body = c.reader.TakeBody(f);
            if (!Gather(c, h, &body)) {
                return c.gathering_bytes > kMaxGathering
                           ? absl::ResourceExhaustedError(absl::StrFormat(
                                 "peer: more than %d bytes of unfinished messages", kMaxGathering))
                           : absl::OkStatus();
            }
            return h.kind == FrameKind::kRequest ? OnRequest(c, h, std::move(body)) : OnResponse(c, h, std::move(body));
        }
        switch (h.kind) {
            case FrameKind::kPing: SendRaw(c, FrameHeader{.kind = FrameKind::kPong}, ""); return absl::OkStatus();
            case FrameKind::kGoaway:
                return absl::UnavailableError("peer: the peer is going away");
            default: return absl::OkStatus();  // credit, pong
        }
    }

    absl::Status OnHandshake(Connection& c, FrameKind kind, std::string_view body) {
        if (!c.dialer && kind == FrameKind::kHello) {
            auto challenge = c.listener_hs->Challenge(body);
            if (!challenge.ok()) {
                return challenge.status();
            }
            SendRaw(c, FrameHeader{.kind = FrameKind::kChallenge}, *challenge);
            return absl::OkStatus();
        }
        if (!c.dialer && kind == FrameKind::kProof) {
            if (absl::Status s = c.listener_hs->Verify(body); !s.ok()) {
                return s;
            }
            Open(c, c.listener_hs->agreed());
            return absl::OkStatus();
        }
        if (c.dialer && kind == FrameKind::kChallenge) {
            auto proof = c.dialer_hs->Answer(body);
            if (!proof.ok()) {
                return proof.status();
            }
            SendRaw(c, FrameHeader{.kind = FrameKind::kProof}, *proof);
            Open(c, c.dialer_hs->agreed());
            return absl::OkStatus();
        }
        return absl::InvalidArgumentError(
            absl::StrFormat("peer: a %s during the handshake, out of turn", FrameKindName(kind)));
    }

    void Open(Connection& c, Agreed agreed) {
        c.agreed = std::move(agreed);
        c.reader.set_max_body(c.agreed.max_body);
        c.send = SendCredits(c.agreed.send_credits);
        c.receive = ReceiveCredits(c.agreed.receive_window, std::max<uint32_t>(1, c.agreed.receive_window / 2));
        c.state = Connection::State::kOpen;
        c.up.store(true);
        c.listener_hs.reset();
        c.dialer_hs.reset();
        if (c.handshaken) {
            auto done = std::move(c.handshaken);
            c.handshaken = nullptr;
            done(absl::OkStatus());
        }
    }

    // Adds a piece of a message to what came before of it; true when `body` is now the whole
    // message. A piece's buffer is free again at once (only a whole request holds one).
    bool Gather(Connection& c, const FrameHeader& h, std::string* body) {
        uint64_t key = h.request_id * 2 + (h.kind == FrameKind::kRequest ? 1 : 0);
        auto it = c.gathering.find(key);
        if (h.flags & kFrameMore) {
            c.receive.Reposted();
            c.gathering_bytes += body->size();
            if (it == c.gathering.end()) {
                c.gathering.emplace(key, std::move(*body));
            } else {
                it->second.append(*body);
            }
            return false;
        }
        if (it != c.gathering.end()) {
            c.gathering_bytes -= it->second.size();
            it->second.append(*body);
            *body = std::move(it->second);
            c.gathering.erase(it);
        }
        return true;
    }

    absl::Status OnRequest(Connection& c, const FrameHeader& h, std::string body) {
        if (!c.on_request) {
            return absl::InvalidArgumentError("peer: a request to the side that dialed (requests go to listeners)");
        }
        if (h.deadline_ns != 0 && h.deadline_ns <= NowNs()) {
            // Expired on the way: answered, never done.
            c.receive.Reposted();
            Enqueue(c, FrameHeader{.kind = FrameKind::kResponse, .request_id = h.request_id, .flags = kFrameError},
                    EncodeError(absl::DeadlineExceededError("peer: the request's deadline passed before it was served")));
            return absl::OkStatus();
        }
        c.on_request(PeerRequest(conns[c.id], owner, h.request_id, h.deadline_ns, std::move(body)));
        return absl::OkStatus();
    }

    absl::Status OnResponse(Connection& c, const FrameHeader& h, std::string body) {
        c.receive.Reposted();  // handled here and now: its buffer is free again
        auto it = c.calls.find(h.request_id);
        if (it == c.calls.end()) {
            return absl::OkStatus();  // its caller gave up (deadline): dropped
        }
        auto done = std::move(it->second.done);
        c.calls.erase(it);
        if (h.flags & kFrameError) {
            std::move(done)(DecodeError(body));
        } else {
            std::move(done)(std::move(body));
        }
        return absl::OkStatus();
    }

    // A frame that needs no credit (handshake, credit, ping), straight to the socket.
    void SendRaw(Connection& c, FrameHeader h, std::string_view body) {
        if (c.state == Connection::State::kOpen) {
            h.credits = c.receive.TakeOwed();
        }
        Push(c, h, std::string(body));
        Kick(c);
    }

    void Push(Connection& c, FrameHeader h, std::string body) {
        h.length = static_cast<uint32_t>(body.size());
        OutFrame& f = c.out.emplace_back();
        EncodeHeader(h, f.header);
        f.body = std::move(body);
    }

    // A request or response: waits for a credit; one larger than a frame, in pieces, each
    // waiting for one.
    bool Enqueue(Connection& c, FrameHeader h, std::string body) {
        if (c.waiting.size() + c.out.size() >= options.max_queued) {
            return false;
        }
        size_t max = c.agreed.max_body, at = 0;
        for (; body.size() - at > max; at += max) {
            FrameHeader piece = h;
            piece.flags |= kFrameMore;
            c.waiting.emplace_back(piece, body.substr(at, max));
        }
        c.waiting.emplace_back(h, at == 0 ? std::move(body) : body.substr(at));
        FlushWaiting(c);
        return true;
    }

    void FlushWaiting(Connection& c) {
        bool any = false;
        while (!c.waiting.empty() && c.send.TryTake()) {
            auto& [h, body] = c.waiting.front();
            h.credits = c.receive.TakeOwed();
            Push(c, h, std::move(body));
            c.waiting.pop_front();
            any = true;
        }
        if (any) {
            Kick(c);
        }
    }

    void Kick(Connection& c) {
        if (c.sending || c.out.empty() || c.state == Connection::State::kClosed ||
            c.state == Connection::State::kConnecting) {
            return;
        }
        c.iov.clear();
        for (size_t i = 0; i < c.out.size() && c.iov.size() + 2 <= kMaxIov; ++i) {
            OutFrame& f = c.out[i];
            size_t skip = i == 0 ? c.out_sent : 0;
            if (skip < kFrameHeaderSize) {
                c.iov.push_back(iovec{f.header + skip, kFrameHeaderSize - skip});
                skip = kFrameHeaderSize;
            }
            if (skip < f.size()) {
                c.iov.push_back(iovec{f.body.data() + (skip - kFrameHeaderSize), f.size() - skip});
            }
        }
        c.msg = {};
        c.msg.msg_iov = c.iov.data();
        c.msg.msg_iovlen = c.iov.size();
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_sendmsg(sqe, c.fd.get(), &c.msg, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, UserData(kSend, c.id));
        ++c.ops;
        c.sending = true;
    }

    void Sent(Connection& c, int res) {
        c.sending = false;
        if (res < 0) {
            return Close(c, absl::UnavailableError(absl::StrFormat("peer: send: %s", strerror(-res))));
        }
        size_t n = static_cast<size_t>(res);
        while (n > 0 && !c.out.empty()) {
            size_t left = c.out.front().size() - c.out_sent;
            if (n < left) {
                c.out_sent += n;
                break;
            }
            n -= left;
            c.out.pop_front();
            c.out_sent = 0;
        }
        Kick(c);
    }

    void Close(Connection& c, absl::Status why) {
        if (c.state == Connection::State::kClosed) {
            return;
        }
        c.state = Connection::State::kClosed;
        c.why = why;
        c.up.store(false);
        open_count.fetch_sub(1);
        ::shutdown(c.fd.get(), SHUT_RDWR);  // ends the receive and any send in flight
        c.waiting.clear();
        c.out.clear();
        if (c.handshaken) {
            auto done = std::move(c.handshaken);
            c.handshaken = nullptr;
            done(why);
        }
        auto calls = std::move(c.calls);
        c.calls.clear();
        for (auto& [id, call] : calls) {
            std::move(call.done)(Lost(absl::StrFormat(
                "peer: the connection broke with the call in flight (it may or may not have been done): %s",
                why.message())));
        }
        auto it = conns.find(c.id);
        if (it != conns.end()) {
            Reap(it->second);
        }
    }

    void Expire() {
        absl::Time now = absl::Now();
        while (!timers.empty() && timers.begin()->first <= now) {
            auto fn = std::move(timers.begin()->second);
            timers.erase(timers.begin());
            std::move(fn)();
        }
        std::vector<std::shared_ptr<Connection>> late;
        for (auto& [id, c] : conns) {
            if ((c->state == Connection::State::kHandshake || c->state == Connection::State::kConnecting) &&
                now > c->handshake_deadline) {
                late.push_back(c);
            }
            for (auto it = c->calls.begin(); it != c->calls.end();) {
                if (now >= it->second.deadline) {
                    auto done = std::move(it->second.done);
                    c->calls.erase(it++);
                    std::move(done)(absl::DeadlineExceededError("peer: no answer before the call's deadline"));
                } else {
                    ++it;
                }
            }
        }
        for (auto& c : late) {
            Close(*c, absl::DeadlineExceededError("peer: the handshake took too long"));
        }
    }

    PeerLoop* owner = nullptr;
};

PeerRequest::PeerRequest(std::shared_ptr<Connection> c, PeerLoop* loop, uint64_t id, uint64_t deadline_ns,
                         std::string body)
    : conn_(std::move(c)), loop_(loop), id_(id), deadline_ns_(deadline_ns), body_(std::move(body)) {}

const std::string& PeerRequest::key_id() const { return conn_->agreed.key_id; }

absl::Time PeerRequest::deadline() const {
    return deadline_ns_ == 0 ? absl::InfiniteFuture() : absl::FromUnixNanos(static_cast<int64_t>(deadline_ns_));
}

void PeerRequest::Respond(const absl::Status& status, std::string body) {
    PeerLoop::Impl* impl = loop_->impl_.get();
    auto respond = [impl, c = conn_, id = id_, status, body = std::move(body)]() mutable {
        if (c->state != Connection::State::kOpen) {
            return;  // the connection broke: the caller was told the outcome is unknown
        }
        c->receive.Reposted();  // the request's buffer is free again: the peer may send another
        FrameHeader h{.kind = FrameKind::kResponse, .request_id = id};
        if (!status.ok()) {
            h.flags = kFrameError;
            body = EncodeError(status);
        }
        if (body.size() > kMaxMessage) {
            h.flags = kFrameError;
            body = EncodeError(absl::ResourceExhaustedError(
                absl::StrFormat("peer: an answer of %d bytes; a peer message carries at most %d", body.size(), kMaxMessage)));
        }
        // Within the peer's window by construction: it sent this request with a credit of
        // ours, and we grant ours only as its answers are read.
        impl->Enqueue(*c, h, std::move(body));
    };
    if (impl->OnLoop()) {
        respond();  // answered while served (a quick backend): no wake-up to pay
    } else {
        impl->Post(std::move(respond));
    }
}

PeerClient::~PeerClient() {
    PeerLoop::Impl* impl = loop_->impl_.get();
    impl->Post([impl, c = conn_] { impl->Close(*c, absl::CancelledError("peer: the client was closed")); });
}

bool PeerClient::open() const { return conn_->up.load(); }

void PeerClient::Call(std::string body, absl::Time deadline, Done done) {
    PeerLoop::Impl* impl = loop_->impl_.get();
    impl->Post([impl, c = conn_, body = std::move(body), deadline, done = std::move(done)]() mutable {
        if (c->state != Connection::State::kOpen) {
            return std::move(done)(Lost(absl::StrFormat("peer: the connection is down: %s", c->why.message())));
        }
        if (body.size() > kMaxMessage) {
            return std::move(done)(absl::InvalidArgumentError(
                absl::StrFormat("peer: a request of %d bytes; a peer message carries at most %d", body.size(), kMaxMessage)));
        }
        uint64_t id = c->next_request++;
        FrameHeader h{.kind = FrameKind::kRequest,
                      .request_id = id,
                      .deadline_ns = deadline == absl::InfiniteFuture()
                                         ? 0
                                         : static_cast<uint64_t>(absl::ToUnixNanos(deadline))};
        if (!impl->Enqueue(*c, h, std::move(body))) {
            return std::move(done)(absl::ResourceExhaustedError(
                absl::StrFormat("peer: %d frames already wait to go to this peer", impl->options.max_queued)));
        }
        c->calls[id] = PendingCall{deadline, std::move(done)};
    });
}

PeerLoop::PeerLoop(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<PeerLoop>> PeerLoop::Create(PeerOptions options) {
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    if (absl::Status s = impl->Init(); !s.ok()) {
        return s;
    }
    std::unique_ptr<PeerLoop> loop(new PeerLoop(std::move(impl)));
    loop->impl_->owner = loop.get();
    Impl* i = loop->impl_.get();
    i->thread = std::thread([i] { i->Run(); });
    return loop;
}

PeerLoop::~PeerLoop() {
    impl_->Post([i = impl_.get()] { i->stopping.store(true); });
    impl_->thread.join();
}

size_t PeerLoop::connections() const { return impl_->open_count.load(); }

absl::StatusOr<uint16_t> PeerLoop::Listen(const std::string& address, uint16_t port,
                                          ListenerHandshake::SecretOf secret_of,
                                          std::function<void(PeerRequest)> on_request) {
    sockaddr_in6 a6 = {};
    sockaddr_in a4 = {};
    sockaddr* sa;
    socklen_t len;
    int family;
    if (inet_pton(AF_INET, address.c_str(), &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons(port);
        sa = reinterpret_cast<sockaddr*>(&a4);
        len = sizeof a4;
        family = AF_INET;
    } else if (inet_pton(AF_INET6, address.c_str(), &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons(port);
        sa = reinterpret_cast<sockaddr*>(&a6);
        len = sizeof a6;
        family = AF_INET6;
    } else {
        return absl::InvalidArgumentError(absl::StrFormat("peer_listen: \"%s\" is not an IPv4 or IPv6 address", address));
    }
    shmring::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!fd.valid() || ::bind(fd.get(), sa, len) != 0 || ::listen(fd.get(), 128) != 0) {
        return absl::UnavailableError(
            absl::StrFormat("peer_listen: cannot listen on %s port %d: %s", address, port, strerror(errno)));
    }
    sockaddr_storage bound = {};
    socklen_t bound_len = sizeof bound;
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len);
    uint16_t got = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                     : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    std::promise<void> armed;
    impl_->Post([i = impl_.get(), fd = std::make_shared<shmring::UniqueFd>(std::move(fd)), secret_of = std::move(secret_of),
                 on_request = std::move(on_request), &armed]() mutable {
        uint64_t id = i->next_id++;
        i->listeners[id] = Impl::Listener{std::move(*fd), std::move(secret_of), std::move(on_request)};
        i->ArmAccept(id);
        armed.set_value();
    });
    armed.get_future().wait();
    return got;
}

absl::StatusOr<std::unique_ptr<PeerClient>> PeerLoop::Dial(const std::string& host, uint16_t port, PeerKey key) {
    std::promise<absl::StatusOr<std::unique_ptr<PeerClient>>> dialed;
    auto got = dialed.get_future();
    DialAsync(host, port, std::move(key), [&dialed](absl::StatusOr<std::unique_ptr<PeerClient>> c) {
        dialed.set_value(std::move(c));
    });
    return got.get();
}

void PeerLoop::RunAfter(absl::Duration delay, absl::AnyInvocable<void() &&> fn) {
    impl_->Post([i = impl_.get(), at = absl::Now() + delay, fn = std::move(fn)]() mutable {
        i->timers.emplace(at, std::move(fn));
    });
}

void PeerLoop::DialAsync(const std::string& host, uint16_t port, PeerKey key, Dialed done) {
    auto fail = [&](absl::Status s) {
        impl_->Post([s, done = std::move(done)]() mutable { std::move(done)(s); });
    };
    if (absl::Status s = CheckPeerKey(key); !s.ok()) {
        return fail(s);
    }
    addrinfo hints = {};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int r = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); r != 0) {
        return fail(absl::UnavailableError(absl::StrFormat("peer %s:%d: %s", host, port, gai_strerror(r))));
    }
    sockaddr_storage addr = {};
    socklen_t addr_len = static_cast<socklen_t>(found->ai_addrlen);
    std::memcpy(&addr, found->ai_addr, found->ai_addrlen);
    int family = found->ai_family;
    freeaddrinfo(found);
    shmring::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return fail(absl::UnavailableError(absl::StrFormat("peer: socket: %s", strerror(errno))));
    }
    auto waiting = std::make_shared<Dialed>(std::move(done));
    impl_->Post([this, i = impl_.get(), fd = std::make_shared<shmring::UniqueFd>(std::move(fd)), addr, addr_len,
                 key = std::move(key), waiting, where = absl::StrFormat("peer %s:%d", host, port)]() mutable {
        auto c = i->NewConnection(std::move(*fd), true);
        c->dialer_hs.emplace(std::move(key), i->options.terms);
        c->peer_addr = addr;
        c->peer_addr_len = addr_len;
        c->handshaken = [this, waiting, c, where](absl::Status s) {
            if (!s.ok()) {
                absl::Status named(s.code(), absl::StrFormat("%s: %s", where, s.message()));
                if (s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded) {
                    named = Lost(std::string(named.message()));
                }
                return std::move(*waiting)(named);
            }
            std::move(*waiting)(std::make_unique<PeerClient>(c, this));
        };
        io_uring_sqe* sqe = i->Sqe();
        io_uring_prep_connect(sqe, c->fd.get(), reinterpret_cast<sockaddr*>(&c->peer_addr), c->peer_addr_len);
        io_uring_sqe_set_data64(sqe, UserData(kConnect, c->id));
        ++c->ops;
    });
}

}  // namespace zerohop::peer

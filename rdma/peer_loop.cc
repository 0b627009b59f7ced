#include "rdma/peer_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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
#include "rdma/rc_path.h"
#include "shmring/unique_fd.h"

namespace zerohop::peer {

namespace {

// What a completion is about: the top byte of its user data; the rest names the connection
// (or the listener).
enum Tag : uint64_t {
    kWake = 1,
    kAccept = 2,
    kRecv = 3,
    kSend = 4,
    kConnect = 5,
    kRc = 6,
    kIgnored = 7,
    kRecvInto = 8,
    kRecvHeader = 9,
};
constexpr int kTagShift = 56;
uint64_t UserData(Tag tag, uint64_t id) { return (static_cast<uint64_t>(tag) << kTagShift) | id; }

// The buffers the kernel receives into: kBuffers of kBufferSize, lent to multishot receives.
constexpr unsigned kBuffers = 64;
constexpr unsigned kBufferSize = 64 << 10;
constexpr uint16_t kBufferGroup = 0;
// A placed piece with at least this much still to come is received straight into its landing
// by a receive of its own (the multishot receive into the buffers above is stopped for it);
// less is copied there from those buffers.
constexpr size_t kReceiveIntoMin = 16 << 10;
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
// RDMA has no keepalive: a connection with calls waiting pings its peer this often, and a
// peer that is gone fails the ping's send after the device's retries (closing the
// connection, its calls failing as outcome unknown) instead of leaving them to their deadline.
constexpr absl::Duration kRcPingInterval = absl::Seconds(1);

uint64_t NowNs() { return static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())); }

// What the registration caches may keep registered (and so pinned) per device.
constexpr size_t kRegistrationBudget = size_t{1} << 30;

template <typename T>
void PutLe(std::string* out, T v) {
    char b[sizeof v];
    std::memcpy(b, &v, sizeof v);
    out->append(b, sizeof v);
}

template <typename T>
T GetLe(const char* in) {
    T v;
    std::memcpy(&v, in, sizeof v);
    return v;
}

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

namespace {

// Why a receive that ended with `res` (0 or a negated errno) ends its connection.
absl::Status ReceiveError(int res) {
    return res == 0 ? absl::UnavailableError("peer: the connection was closed by the peer")
                    : absl::UnavailableError(absl::StrFormat("peer: receive: %s", strerror(-res)));
}

}  // namespace

// A frame's body: a message that fits one frame, held as given (no allocation, no copy);
// or a slice of a message that several frames share (one larger than a frame, or an answer
// whose landed bytes go ahead of the rest), whose buffer lives until its last frame is sent.
struct Slice {
    std::string own;
    std::shared_ptr<const std::string> shared;
    size_t at = 0, size = 0;  // of `shared`
    std::string_view bytes() const {
        return shared != nullptr ? std::string_view(*shared).substr(at, size) : std::string_view(own);
    }
};

// A frame ready for the socket: its header in place (no allocation), its body as given
// (no copy); they leave as two pieces of one sendmsg.
struct OutFrame {
    char header[kFrameHeaderSize];
    Slice body;
    size_t size() const { return kFrameHeaderSize + body.bytes().size(); }
};

struct PendingCall {
    absl::Time deadline;
    PeerClient::Done done;              // a call
    PeerClient::LandedDone landed_done;  // or a call with a landing
    Landing landing;
    size_t placed = 0;            // TCP: bytes of the answer received into the landing so far
    int* landed_calls = nullptr;  // TCP: its connection's count of such calls, while it counts
    // On RDMA, what lets the peer write into the landing: the region pinned in a cache, or
    // a registration of the landing made for this call alone.
    RegistrationCache* cache = nullptr;
    verbs::Device* device = nullptr;
    std::optional<verbs::MemoryRegion> own_mr;
};

// An answer being written into a caller's landing: its bytes, registered, until the write
// completes.
struct PendingWrite {
    std::string body;
    verbs::MemoryRegion mr;
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
    std::deque<std::pair<FrameHeader, Slice>> waiting;
    std::deque<OutFrame> out;  // ready for the socket
    size_t out_sent = 0;       // bytes of out.front() already sent
    bool sending = false;
    std::vector<iovec> iov;
    msghdr msg = {};
    int ops = 0;  // submissions in flight on this connection (its fd stays open until 0)
    bool receiving = false;
    bool multishot = false;  // the receive in flight is the multishot one
    // Calls with a landing waiting for their answers: while there are any, receives into the
    // buffers are single-shot, so that no more than one buffer of a placed piece is taken
    // before the rest of it is received into its landing.
    int landed_calls = 0;
    absl::flat_hash_map<uint64_t, PendingCall> calls;
    uint64_t placing = 0;          // the call whose landing the frame being read is placed in (0: none)
    bool stopping_recv = false;    // the multishot receive is being cancelled for a receive into a landing
    bool receiving_into = false;   // a receive into placing's landing is in flight
    bool cancelling_into = false;  // and is being cancelled (its call passed its deadline)
    // After a receive into a landing, the next header is received alone (the next piece of
    // the answer then goes straight into the landing too, none of it through the buffers).
    bool header_next = false;
    bool receiving_header = false;
    char header[kFrameHeaderSize];
    // A call whose landing a receive was in flight into when the connection closed: failed
    // once that receive is over, not before (the kernel may be writing its memory).
    std::optional<PendingCall> held;
    // Messages arriving in pieces, by request id and direction, and their bytes in all.
    absl::flat_hash_map<uint64_t, std::string> gathering;
    size_t gathering_bytes = 0;
    uint64_t next_request = 1;
    sockaddr_storage peer_addr = {};
    socklen_t peer_addr_len = 0;

    // RDMA (null on TCP): the queue pair's data path, watched by a multishot poll.
    std::unique_ptr<RcPath> rc;
    bool rdma = false;
    bool rc_polling = false;
    uint32_t max_body = kHandshakeMaxBody;  // what a frame received on RDMA may carry
    absl::flat_hash_map<uint64_t, PendingWrite> writes;
    uint64_t next_write = 1;
    absl::Time last_ping = absl::InfinitePast();
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
    std::atomic<size_t> rdma_open_count{0};
    std::atomic<uint64_t> received_into{0};
    // One registration cache per RDMA device (landing regions), made at its first use.
    mutable std::mutex caches_mu;
    absl::flat_hash_map<verbs::Device*, std::unique_ptr<RegistrationCache>> caches;

    RegistrationCache* CacheFor(verbs::Device* device) {
        std::lock_guard<std::mutex> lock(caches_mu);
        auto& cache = caches[device];
        if (cache == nullptr) {
            cache = std::make_unique<RegistrationCache>(device, kRegistrationBudget);
        }
        return cache.get();
    }

    // The terms an RDMA connection offers: its receive slots are registered and posted for
    // the whole connection, so its frames are small (larger messages go in pieces, large
    // answers by RDMA WRITE).
    ConnectionTerms RcTerms() const {
        return {.max_body = std::min(options.terms.max_body, kRcMaxBody), .window = options.terms.window};
    }

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
            if (c->held) {  // (its receive ended with the socket's shutdown)
                Fail(*c->held, Lost("peer: the daemon's peer loop stopped with the call in flight"));
                c->held.reset();
            }
            // What the connection holds of the kernel's and the device's goes with the loop,
            // not with the last PeerRequest that may outlive it (the device may be gone by then).
            c->rc.reset();
            c->fd.reset();
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
        if (tag == kIgnored) {
            return;
        }
        auto it = conns.find(id);
        if (it == conns.end()) {
            return;
        }
        std::shared_ptr<Connection> c = it->second;
        if ((tag != kRecv && tag != kRc) || !(flags & IORING_CQE_F_MORE)) {
            --c->ops;  // (a multishot receive or poll is in flight until its last completion)
        }
        switch (tag) {
            case kConnect: Connected(*c, res); break;
            case kRecv: Received(*c, res, flags); break;
            case kRecvInto: ReceivedInto(*c, res); break;
            case kRecvHeader: ReceivedHeader(*c, res); break;
            case kSend: Sent(*c, res); break;
            case kRc: Polled(*c, res, flags); break;
            default: break;
        }
        Reap(c);
    }

    // A closed connection leaves once nothing of the kernel's refers to it.
    void Reap(std::shared_ptr<Connection> c) {  // a copy: the map's may be the one erased
        if (c->state == Connection::State::kClosed && c->ops == 0) {
            conns.erase(c->id);
            c->fd.reset();
            c->rc.reset();
        }
    }

    std::shared_ptr<Connection> NewConnection(shmring::UniqueFd fd, bool dialer) {
        auto c = std::make_shared<Connection>();
        c->id = next_id++;
        c->fd = std::move(fd);
        c->dialer = dialer;
        c->handshake_deadline = absl::Now() + options.handshake_timeout;
        if (!c->fd.valid()) {  // RDMA: no socket
            conns[c->id] = c;
            open_count.fetch_add(1);
            return c;
        }
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
        c->reader.set_placement([this, conn = c.get()](const FrameHeader& h) { return PlaceOf(*conn, h); });
        conns[c->id] = c;
        open_count.fetch_add(1);
        return c;
    }

    // A connection over a queue pair: its path made (slabs registered, receives posted) and
    // its completion channel watched. Receives are posted before anything is sent.
    absl::StatusOr<std::shared_ptr<Connection>> NewRcConnection(verbs::Device* device,
                                                                std::unique_ptr<verbs::QueuePair> qp, bool dialer) {
        uint32_t slots = RcSlots(options.terms.window);
        auto path = RcPath::Create(device, std::move(qp),
                                   {.receives = slots, .sends = slots, .max_body = RcTerms().max_body});
        if (!path.ok()) {
            return path.status();
        }
        auto c = NewConnection(shmring::UniqueFd(), dialer);
        c->rc = std::move(*path);
        c->rdma = true;
        rdma_open_count.fetch_add(1);
        c->state = Connection::State::kHandshake;
        ArmRc(*c);
        return c;
    }

    void ArmRc(Connection& c) {
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_poll_multishot(sqe, c.rc->completion_fd(), POLLIN);
        io_uring_sqe_set_data64(sqe, UserData(kRc, c.id));
        ++c.ops;
        c.rc_polling = true;
    }

    // What a queue pair's completions bring, handed to this loop's frame logic.
    struct RcEvents : RcPath::Handler {
        Impl* impl;
        Connection* c;
        RcEvents(Impl* i, Connection* conn) : impl(i), c(conn) {}
        absl::Status OnMessage(std::string_view bytes) override {
            auto h = DecodeHeader(bytes, c->max_body);
            if (!h.ok()) {
                return h.status();
            }
            if (h->length != bytes.size() - kFrameHeaderSize) {
                return absl::InvalidArgumentError(absl::StrFormat(
                    "peer: an RDMA message of %d bytes carries a frame of %d", bytes.size(), h->length));
            }
            return impl->OnFrame(*c, Frame{*h, bytes.substr(kFrameHeaderSize)});
        }
        void OnSent() override { impl->Kick(*c); }
        void OnWritten(uint64_t cookie) override {
            auto it = c->writes.find(cookie);
            if (it != c->writes.end()) {
                c->rc->device()->Deregister(it->second.mr);
                c->writes.erase(it);
            }
        }
    };

    void Polled(Connection& c, int res, uint32_t flags) {
        if (!(flags & IORING_CQE_F_MORE)) {
            c.rc_polling = false;
        }
        if (c.state == Connection::State::kClosed || c.rc == nullptr || res < 0) {
            return;
        }
        RcEvents events(this, &c);
        if (absl::Status s = c.rc->Poll(events); !s.ok()) {
            return Close(c, s);
        }
        AfterFrames(c);
        if (!c.rc_polling && c.state != Connection::State::kClosed) {
            ArmRc(c);
        }
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
        c.multishot = c.landed_calls == 0;
        if (c.multishot) {
            io_uring_prep_recv_multishot(sqe, c.fd.get(), nullptr, 0, 0);
        } else {
            io_uring_prep_recv(sqe, c.fd.get(), nullptr, 0, 0);
        }
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
        if (!c.receiving) {
            c.stopping_recv = false;
        }
        if (res == -ENOBUFS || (res == -ECANCELED && !c.receiving)) {
            // Every buffer is lent out (ours come back as soon as this round is handled), or
            // we stopped it for a receive into a landing.
            if (!c.receiving && c.state != Connection::State::kClosed) {
                Rearm(c);
            }
            return;
        }
        if (res <= 0) {
            return Close(c, ReceiveError(res));
        }
        unsigned buffer = flags >> IORING_CQE_BUFFER_SHIFT;
        char* data = buffers.data() + size_t{buffer} * kBufferSize;
        if (c.state != Connection::State::kClosed) {
            OnBytes(c, std::string_view(data, static_cast<size_t>(res)));
        }
        io_uring_buf_ring_add(buf_ring, data, kBufferSize, static_cast<unsigned short>(buffer),
                              io_uring_buf_ring_mask(kBuffers), 0);
        io_uring_buf_ring_advance(buf_ring, 1);
        if (c.state == Connection::State::kClosed) {
            return;
        }
        if (!c.receiving) {
            Rearm(c);
        } else if (!c.stopping_recv && c.reader.placing().left >= kReceiveIntoMin) {
            // The rest of a large placed piece goes straight into its landing: the multishot
            // receive stops first (its last completion re-arms, with a receive into it).
            StopMultishot(c);
        }
    }

    void StopMultishot(Connection& c) {
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_cancel64(sqe, UserData(kRecv, c.id), 0);
        io_uring_sqe_set_data64(sqe, UserData(kIgnored, c.id));
        c.stopping_recv = true;
    }

    // Receives again: into the landing of the piece being placed when enough of it is still to
    // come, else into the buffer ring.
    void Rearm(Connection& c) {
        if (c.receiving_into || c.receiving_header) {
            return;
        }
        FrameReader::Placing p = c.reader.placing();
        if (p.left < kReceiveIntoMin && std::exchange(c.header_next, false)) {
            io_uring_sqe* sqe = Sqe();
            io_uring_prep_recv(sqe, c.fd.get(), c.header, kFrameHeaderSize, MSG_WAITALL);
            io_uring_sqe_set_data64(sqe, UserData(kRecvHeader, c.id));
            ++c.ops;
            c.receiving_header = true;
            return;
        }
        if (p.left < kReceiveIntoMin) {
            return ArmRecv(c);
        }
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_recv(sqe, c.fd.get(), p.at, p.left, MSG_WAITALL);
        io_uring_sqe_set_data64(sqe, UserData(kRecvInto, c.id));
        ++c.ops;
        c.receiving_into = true;
    }

    // The header after a receive into a landing arrived (alone).
    void ReceivedHeader(Connection& c, int res) {
        c.receiving_header = false;
        if (c.state == Connection::State::kClosed) {
            return;
        }
        if (res <= 0) {
            return Close(c, ReceiveError(res));
        }
        OnBytes(c, std::string_view(c.header, static_cast<size_t>(res)));
        if (c.state != Connection::State::kClosed) {
            Rearm(c);
        }
    }

    // A receive into a landing ended: the kernel put `res` bytes there.
    void ReceivedInto(Connection& c, int res) {
        c.receiving_into = false;
        bool cancelled = std::exchange(c.cancelling_into, false);
        if (c.state == Connection::State::kClosed) {
            if (c.held) {
                PendingCall call = std::move(*c.held);
                c.held.reset();
                Fail(call,
                     Lost(absl::StrFormat(
                         "peer: the connection broke with the call in flight (it may or may not have been done): %s",
                         c.why.message())));
            }
            return;
        }
        if (res > 0) {
            c.reader.Placed(static_cast<size_t>(res));
            received_into.fetch_add(static_cast<uint64_t>(res), std::memory_order_relaxed);
            c.header_next = true;
        } else if (res != -ECANCELED) {
            return Close(c, ReceiveError(res));
        }
        OnBytes(c, {});  // the piece, if it is whole now
        if (c.state == Connection::State::kClosed) {
            return;
        }
        if (cancelled && c.placing != 0) {
            // Stopped because its call passed its deadline: the rest of the piece goes
            // elsewhere, and the call fails now that nothing writes into its landing.
            c.reader.Unplace();
            auto it = c.calls.find(std::exchange(c.placing, 0));
            if (it != c.calls.end()) {
                PendingCall call = std::move(it->second);
                c.calls.erase(it);
                Fail(call, absl::DeadlineExceededError("peer: no answer before the call's deadline"));
            }
        }
        Rearm(c);
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
        AfterFrames(c);
    }

    // After a round of frames: credits owed go back on their own once enough are.
    void AfterFrames(Connection& c) {
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
            if (h.flags & kFramePlaced) {
                return OnPlaced(c, h, f.body);
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
        c.max_body = c.agreed.max_body;
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
        std::optional<RemoteLanding> landing;
        if (h.flags & kFrameLanding) {
            if (body.size() < kLandingSize) {
                return absl::InvalidArgumentError("peer: a request with a landing too short to say where");
            }
            landing = RemoteLanding{.addr = GetLe<uint64_t>(body.data()),
                                    .rkey = GetLe<uint32_t>(body.data() + 8),
                                    .capacity = GetLe<uint32_t>(body.data() + 12)};
            body.erase(0, kLandingSize);
        }
        c.on_request(PeerRequest(conns[c.id], owner, h.request_id, h.deadline_ns, std::move(body), landing));
        return absl::OkStatus();
    }

    // Where a frame's body goes (the reader asks once its header is read): a placed piece of
    // an answer, straight into its call's landing at the next byte; anything else, and a
    // piece that does not fit or whose call is gone, into the reader's own buffer.
    char* PlaceOf(Connection& c, const FrameHeader& h) {
        if (!(h.flags & kFramePlaced) || c.state != Connection::State::kOpen) {
            return nullptr;
        }
        auto it = c.calls.find(h.request_id);
        if (it == c.calls.end() || !it->second.landed_done ||
            h.length > it->second.landing.capacity - it->second.placed) {
            return nullptr;
        }
        c.placing = h.request_id;
        return it->second.landing.addr + it->second.placed;
    }

    // A placed piece of an answer: its bytes are in the landing already (TCP), or copied there
    // from the frame (a frame that came whole, as on RDMA).
    absl::Status OnPlaced(Connection& c, const FrameHeader& h, std::string_view body) {
        c.placing = 0;
        c.receive.Reposted();  // handled here and now: its buffer is free again
        auto it = c.calls.find(h.request_id);
        if (it == c.calls.end()) {
            return absl::OkStatus();  // its caller gave up (deadline): dropped
        }
        PendingCall& call = it->second;
        if (!call.landed_done || body.size() > call.landing.capacity - call.placed) {
            return absl::InvalidArgumentError(
                absl::StrFormat("peer: %d bytes of an answer to place for a call whose landing takes %d more",
                                body.size(), call.landed_done ? call.landing.capacity - call.placed : 0));
        }
        char* at = call.landing.addr + call.placed;
        if (body.data() != at) {
            std::memcpy(at, body.data(), body.size());
        }
        call.placed += body.size();
        return absl::OkStatus();
    }

    absl::Status OnResponse(Connection& c, const FrameHeader& h, std::string body) {
        c.receive.Reposted();  // handled here and now: its buffer is free again
        auto it = c.calls.find(h.request_id);
        if (it == c.calls.end()) {
            return absl::OkStatus();  // its caller gave up (deadline): dropped
        }
        PendingCall call = std::move(it->second);
        c.calls.erase(it);
        bool landed = h.flags & (kFrameLanded | kFrameWritten);
        if (!call.landed_done) {
            if (landed) {
                return absl::InvalidArgumentError("peer: a landed answer to a call that gave no landing");
            }
            if (h.flags & kFrameError) {
                std::move(call.done)(DecodeError(body));
            } else {
                std::move(call.done)(std::move(body));
            }
            return absl::OkStatus();
        }
        ReleaseLanding(call);
        if (h.flags & kFrameError) {
            std::move(call.landed_done)(DecodeError(body));
            return absl::OkStatus();
        }
        uint64_t n = call.placed;  // kLanded: what came before in placed pieces
        if (h.flags & kFrameWritten) {
            if (!c.rdma || n != 0 || body.size() < 8 ||
                (n = GetLe<uint64_t>(body.data() + body.size() - 8)) > call.landing.capacity) {
                return absl::InvalidArgumentError(
                    absl::StrFormat("peer: a malformed answer written into a landing (%d bytes%s)", body.size(),
                                    c.rdma ? "" : ", on TCP"));
            }
            body.resize(body.size() - 8);
        } else if (!landed) {
            return absl::InvalidArgumentError("peer: an answer to a call with a landing that says nothing of it");
        }
        std::move(call.landed_done)(
            LandedAnswer{.landed = n, .rest = std::move(body), .written = (h.flags & kFrameWritten) != 0});
        return absl::OkStatus();
    }

    // A call is over: what let the peer write into its landing goes.
    static void ReleaseLanding(PendingCall& call) {
        if (call.landed_calls != nullptr) {
            --*call.landed_calls;
            call.landed_calls = nullptr;
        }
        if (call.cache != nullptr) {
            call.cache->Release(call.landing.region);
            call.cache = nullptr;
        }
        if (call.own_mr) {
            call.device->Deregister(*call.own_mr);
            call.own_mr.reset();
        }
    }

    static void Fail(PendingCall& call, absl::Status why) {
        ReleaseLanding(call);
        if (call.landed_done) {
            std::move(call.landed_done)(std::move(why));
        } else {
            std::move(call.done)(std::move(why));
        }
    }

    // A frame that needs no credit (handshake, credit, ping), straight to the socket.
    void SendRaw(Connection& c, FrameHeader h, std::string_view body) {
        if (c.state == Connection::State::kOpen) {
            h.credits = c.receive.TakeOwed();
        }
        Push(c, h, Slice{.own = std::string(body)});
        Kick(c);
    }

    void Push(Connection& c, FrameHeader h, Slice body) {
        h.length = static_cast<uint32_t>(body.bytes().size());
        OutFrame& f = c.out.emplace_back();
        EncodeHeader(h, f.header);
        f.body = std::move(body);
    }

    // A request or response: waits for a credit; one larger than a frame, in pieces, each
    // waiting for one.
    bool Enqueue(Connection& c, FrameHeader h, std::string body) {
        if (body.size() <= c.agreed.max_body) {
            if (c.waiting.size() + c.out.size() >= options.max_queued) {
                return false;
            }
            c.waiting.emplace_back(h, Slice{.own = std::move(body)});
            FlushWaiting(c);
            return true;
        }
        size_t size = body.size();
        return Enqueue(c, h, std::make_shared<const std::string>(std::move(body)), 0, size);
    }

    // Bytes [at, at + size) of `message`, in as many frames as they take.
    bool Enqueue(Connection& c, FrameHeader h, const std::shared_ptr<const std::string>& message, size_t at,
                 size_t size) {
        if (c.waiting.size() + c.out.size() >= options.max_queued) {
            return false;
        }
        size_t max = c.agreed.max_body, end = at + size;
        for (; end - at > max; at += max) {
            FrameHeader piece = h;
            piece.flags |= kFrameMore;
            c.waiting.emplace_back(piece, Slice{.shared = message, .at = at, .size = max});
        }
        c.waiting.emplace_back(h, Slice{.shared = message, .at = at, .size = end - at});
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
        if (c.rc != nullptr) {
            return KickRc(c);
        }
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
                c.iov.push_back(
                    iovec{const_cast<char*>(f.body.bytes().data()) + (skip - kFrameHeaderSize), f.size() - skip});
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

    // RDMA: each frame into a send slot of its own, as many as are free (the rest go as
    // sends complete).
    void KickRc(Connection& c) {
        while (c.state != Connection::State::kClosed && !c.out.empty() && c.rc->CanSend()) {
            OutFrame& f = c.out.front();
            if (absl::Status s = c.rc->Send(f.header, f.body.bytes()); !s.ok()) {
                return Close(c, s);
            }
            c.out.pop_front();
        }
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
        if (c.rdma) {
            rdma_open_count.fetch_sub(1);
        }
        if (c.rc != nullptr) {
            // The queue pair goes first: nothing the peer writes can land in a caller's
            // memory once its call is told it failed.
            c.rc->Disconnect();
            for (auto& [cookie, w] : c.writes) {
                c.rc->device()->Deregister(w.mr);
            }
            c.writes.clear();
            if (c.rc_polling) {
                io_uring_sqe* sqe = Sqe();
                io_uring_prep_poll_remove(sqe, UserData(kRc, c.id));
                io_uring_sqe_set_data64(sqe, UserData(kIgnored, c.id));
            }
        } else {
            ::shutdown(c.fd.get(), SHUT_RDWR);  // ends the receive and any send in flight
        }
        c.waiting.clear();
        c.out.clear();
        if (c.handshaken) {
            auto done = std::move(c.handshaken);
            c.handshaken = nullptr;
            done(why);
        }
        auto calls = std::move(c.calls);
        c.calls.clear();
        if (c.receiving_into) {
            if (auto it = calls.find(c.placing); it != calls.end()) {
                c.held = std::move(it->second);  // failed when the receive into it ends
                calls.erase(it);
            }
        }
        for (auto& [id, call] : calls) {
            Fail(call, Lost(absl::StrFormat(
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
        std::vector<std::shared_ptr<Connection>> late, late_landing;
        for (auto& [id, c] : conns) {
            if (c->rdma && c->state == Connection::State::kOpen && !c->calls.empty() &&
                now - c->last_ping >= kRcPingInterval) {
                c->last_ping = now;
                SendRaw(*c, FrameHeader{.kind = FrameKind::kPing}, "");
            }
            if ((c->state == Connection::State::kHandshake || c->state == Connection::State::kConnecting) &&
                now > c->handshake_deadline) {
                late.push_back(c);
            }
            for (auto it = c->calls.begin(); it != c->calls.end();) {
                if (now < it->second.deadline) {
                    ++it;
                    continue;
                }
                if (c->rdma && it->second.landed_done && c->rc->connected()) {
                    // The peer may still write the answer into a landing its caller is about
                    // to use for something else: only the queue pair's end stops that.
                    c->rc->Disconnect();
                    late_landing.push_back(c);
                }
                if (c->placing == it->first) {
                    if (c->receiving_into) {
                        // The kernel is writing into its landing: the call fails once that
                        // receive is stopped (next round), not while it may still write.
                        if (!c->cancelling_into) {
                            io_uring_sqe* sqe = Sqe();
                            io_uring_prep_cancel64(sqe, UserData(kRecvInto, c->id), 0);
                            io_uring_sqe_set_data64(sqe, UserData(kIgnored, c->id));
                            c->cancelling_into = true;
                        }
                        ++it;
                        continue;
                    }
                    // The rest of the piece goes elsewhere: the caller has its memory back.
                    c->reader.Unplace();
                    c->placing = 0;
                }
                PendingCall call = std::move(it->second);
                c->calls.erase(it++);
                Fail(call, absl::DeadlineExceededError("peer: no answer before the call's deadline"));
            }
        }
        for (auto& c : late) {
            Close(*c, absl::DeadlineExceededError("peer: the handshake took too long"));
        }
        for (auto& c : late_landing) {
            Close(*c, absl::DeadlineExceededError(
                          "peer: a call whose answer lands by RDMA passed its deadline (the connection is closed so "
                          "that no late answer lands)"));
        }
    }

    // Sends a call's request (with its landing, if it gave one) and waits for the answer.
    void StartCall(Connection& c, std::string body, PendingCall call) {
        if (c.state != Connection::State::kOpen) {
            return Fail(call, Lost(absl::StrFormat("peer: the connection is down: %s", c.why.message())));
        }
        if (body.size() > kMaxMessage - kLandingSize) {
            return Fail(call, absl::InvalidArgumentError(absl::StrFormat(
                                  "peer: a request of %d bytes; a peer message carries at most %d", body.size(),
                                  kMaxMessage - kLandingSize)));
        }
        uint64_t id = c.next_request++;
        FrameHeader h{.kind = FrameKind::kRequest,
                      .request_id = id,
                      .deadline_ns = call.deadline == absl::InfiniteFuture()
                                         ? 0
                                         : static_cast<uint64_t>(absl::ToUnixNanos(call.deadline))};
        if (call.landed_done) {
            const Landing& l = call.landing;
            if (l.addr == nullptr || l.capacity > UINT32_MAX ||
                (l.region != nullptr && (l.addr < l.region || l.capacity > l.region_size ||
                                         static_cast<size_t>(l.addr - l.region) > l.region_size - l.capacity))) {
                return Fail(call, absl::InvalidArgumentError(
                                      "peer: a landing that is empty, larger than 4 GiB or outside its region"));
            }
            uint32_t rkey = 0;
            if (c.rdma) {
                absl::StatusOr<verbs::MemoryRegion> mr;
                call.device = c.rc->device();
                if (l.region != nullptr) {
                    call.cache = CacheFor(call.device);
                    mr = call.cache->Acquire(l.region, l.region_size, l.region_id);
                    if (!mr.ok()) {
                        call.cache = nullptr;
                    }
                } else if ((mr = call.device->Register(l.addr, l.capacity, verbs::kLocalWrite | verbs::kRemoteWrite))
                               .ok()) {
                    call.own_mr = *mr;
                }
                if (!mr.ok()) {
                    return Fail(call, mr.status());
                }
                rkey = mr->rkey;
            }
            std::string with;
            with.reserve(kLandingSize + body.size());
            PutLe<uint64_t>(&with, reinterpret_cast<uint64_t>(l.addr));
            PutLe<uint32_t>(&with, rkey);
            PutLe<uint32_t>(&with, static_cast<uint32_t>(l.capacity));
            with.append(body);
            body = std::move(with);
            h.flags = kFrameLanding;
        }
        if (!Enqueue(c, h, std::move(body))) {
            return Fail(call, absl::ResourceExhaustedError(
                                  absl::StrFormat("peer: %d frames already wait to go to this peer", options.max_queued)));
        }
        if (call.landed_done && !c.rdma) {
            call.landed_calls = &c.landed_calls;
            if (++c.landed_calls == 1 && c.receiving && c.multishot && !c.stopping_recv) {
                StopMultishot(c);  // its answer's pieces are to be received into the landing
            }
        }
        c.calls[id] = std::move(call);
    }

    // An answer to a call with a landing: its first `land` bytes written into the landing by
    // RDMA (the frame then carries the rest, and their count at its end), or sent ahead in
    // placed frames that the caller's side receives straight into it (frame.h, "Landing").
    void Land(Connection& c, const RemoteLanding& landing, size_t land, FrameHeader* h, std::string* body) {
        if (land > landing.capacity) {
            h->flags = kFrameError;
            *body = EncodeError(absl::ResourceExhaustedError(absl::StrFormat(
                "peer: %d bytes of an answer for a landing of %d", land, landing.capacity)));
            return;
        }
        h->flags = kFrameLanded;
        if (c.rdma && land > 0) {
            // The answer's bytes are registered for the write (one registration per answer:
            // a backend answering into registered memory would save it) and kept until the
            // write completes.
            auto mr = c.rc->device()->Register(body->data(), land, 0);
            if (mr.ok()) {
                uint64_t cookie = c.next_write++;
                if (absl::Status s = c.rc->Write(*mr, 0, land, landing.addr, landing.rkey, cookie); !s.ok()) {
                    c.rc->device()->Deregister(*mr);
                    return Close(c, s);
                }
                std::string rest = body->substr(land);
                c.writes[cookie] = PendingWrite{std::move(*body), *mr};
                *body = std::move(rest);
                h->flags = kFrameWritten;
                PutLe<uint64_t>(body, land);
                return;
            }
        }
        if (land > 0) {
            // Slices of the answer itself (no copy of the landing's bytes); the rest follows.
            auto all = std::make_shared<const std::string>(std::move(*body));
            Enqueue(c,
                    FrameHeader{
                        .kind = FrameKind::kResponse, .request_id = h->request_id, .flags = kFramePlaced | kFrameMore},
                    all, 0, land);
            *body = all->substr(land);
        }
    }

    // What a dialer's connection does when its handshake ends: hands the client (or why not)
    // to whoever dialed, naming `where`.
    static std::function<void(absl::Status)> WhenHandshaken(PeerLoop* loop, std::shared_ptr<Connection> c,
                                                            std::string where, std::shared_ptr<PeerLoop::Dialed> waiting) {
        return [loop, waiting, c, where](absl::Status s) {
            if (!s.ok()) {
                absl::Status named(s.code(), absl::StrFormat("%s: %s", where, s.message()));
                if (s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded) {
                    named = Lost(std::string(named.message()));
                }
                return std::move(*waiting)(named);
            }
            std::move(*waiting)(std::make_unique<PeerClient>(c, loop));
        };
    }

    PeerLoop* owner = nullptr;
};

PeerRequest::PeerRequest(std::shared_ptr<Connection> c, PeerLoop* loop, uint64_t id, uint64_t deadline_ns,
                         std::string body, std::optional<RemoteLanding> landing)
    : conn_(std::move(c)),
      loop_(loop),
      id_(id),
      deadline_ns_(deadline_ns),
      body_(std::move(body)),
      landing_(landing) {}

const std::string& PeerRequest::key_id() const { return conn_->agreed.key_id; }

absl::Time PeerRequest::deadline() const {
    return deadline_ns_ == 0 ? absl::InfiniteFuture() : absl::FromUnixNanos(static_cast<int64_t>(deadline_ns_));
}

void PeerRequest::Respond(const absl::Status& status, std::string body, size_t land) {
    PeerLoop::Impl* impl = loop_->impl_.get();
    auto respond = [impl, c = conn_, id = id_, status, body = std::move(body), land, landing = landing_]() mutable {
        if (c->state != Connection::State::kOpen) {
            return;  // the connection broke: the caller was told the outcome is unknown
        }
        c->receive.Reposted();  // the request's buffer is free again: the peer may send another
        FrameHeader h{.kind = FrameKind::kResponse, .request_id = id};
        if (!status.ok()) {
            h.flags = kFrameError;
            body = EncodeError(status);
        }
        if (h.flags == 0 && landing) {
            impl->Land(*c, *landing, std::min(land, body.size()), &h, &body);
            if (c->state != Connection::State::kOpen) {
                return;  // the write could not be posted: the connection is closed
            }
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

std::string_view PeerClient::transport() const { return conn_->rdma ? "rdma" : "tcp"; }

void PeerClient::Call(std::string body, absl::Time deadline, Done done) {
    PeerLoop::Impl* impl = loop_->impl_.get();
    impl->Post([impl, c = conn_, body = std::move(body), deadline, done = std::move(done)]() mutable {
        impl->StartCall(*c, std::move(body), PendingCall{.deadline = deadline, .done = std::move(done)});
    });
}

void PeerClient::CallInto(std::string body, absl::Time deadline, Landing landing, LandedDone done) {
    PeerLoop::Impl* impl = loop_->impl_.get();
    impl->Post([impl, c = conn_, body = std::move(body), deadline, landing, done = std::move(done)]() mutable {
        impl->StartCall(*c, std::move(body),
                        PendingCall{.deadline = deadline, .landed_done = std::move(done), .landing = landing});
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

size_t PeerLoop::rdma_connections() const { return impl_->rdma_open_count.load(); }

uint64_t PeerLoop::received_into_landings() const { return impl_->received_into.load(); }

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

absl::StatusOr<std::unique_ptr<PeerClient>> PeerLoop::DialRc(verbs::Device* device,
                                                             std::unique_ptr<verbs::QueuePair> qp, PeerKey key) {
    std::promise<absl::StatusOr<std::unique_ptr<PeerClient>>> dialed;
    auto got = dialed.get_future();
    DialRcAsync(device, std::move(qp), std::move(key), [&dialed](absl::StatusOr<std::unique_ptr<PeerClient>> c) {
        dialed.set_value(std::move(c));
    });
    return got.get();
}

void PeerLoop::DialRcAsync(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp, PeerKey key, Dialed done) {
    if (absl::Status s = CheckPeerKey(key); !s.ok()) {
        return impl_->Post([s, done = std::move(done)]() mutable { std::move(done)(s); });
    }
    impl_->Post([this, i = impl_.get(), device, qp = std::move(qp), key = std::move(key),
                 done = std::move(done)]() mutable {
        auto c = i->NewRcConnection(device, std::move(qp), true);
        if (!c.ok()) {
            return std::move(done)(c.status());
        }
        (*c)->dialer_hs.emplace(std::move(key), i->RcTerms());
        (*c)->handshaken = i->WhenHandshaken(this, *c, absl::StrFormat("peer over %s", device->name()),
                                             std::make_shared<Dialed>(std::move(done)));
        i->SendRaw(**c, FrameHeader{.kind = FrameKind::kHello}, (*c)->dialer_hs->Hello());
    });
}

void PeerLoop::ServeRc(verbs::Device* device, std::unique_ptr<verbs::QueuePair> qp,
                       ListenerHandshake::SecretOf secret_of, std::function<void(PeerRequest)> on_request) {
    impl_->Post([i = impl_.get(), device, qp = std::move(qp), secret_of = std::move(secret_of),
                 on_request = std::move(on_request)]() mutable {
        auto c = i->NewRcConnection(device, std::move(qp), false);
        if (!c.ok()) {
            return;  // (the dialer's handshake fails: its hello finds no receive)
        }
        (*c)->listener_hs.emplace(std::move(secret_of), i->RcTerms());
        (*c)->on_request = std::move(on_request);
    });
}

void PeerLoop::ForgetRegion(char* region) {
    std::lock_guard<std::mutex> lock(impl_->caches_mu);
    for (auto& [device, cache] : impl_->caches) {
        cache->Forget(region);
    }
}

RegistrationCache::Counts PeerLoop::registrations(verbs::Device* device) const {
    std::lock_guard<std::mutex> lock(impl_->caches_mu);
    auto it = impl_->caches.find(device);
    return it == impl_->caches.end() ? RegistrationCache::Counts{} : it->second->counts();
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
        c->handshaken = i->WhenHandshaken(this, c, std::move(where), std::move(waiting));
        io_uring_sqe* sqe = i->Sqe();
        io_uring_prep_connect(sqe, c->fd.get(), reinterpret_cast<sockaddr*>(&c->peer_addr), c->peer_addr_len);
        io_uring_sqe_set_data64(sqe, UserData(kConnect, c->id));
        ++c->ops;
    });
}

}  // namespace zerohop::peer

// zerohopd's core: listener, workers, sessions and request dispatch.

#include "server/server.h"

#include <errno.h>
#include <immintrin.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "backend/backend.h"
#include "embedded/embedded_backend.h"
#include "redis/redis_backend.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/poller.h"
#include "shmring/arena.h"
#include "shmring/doorbell.h"
#include "shmring/fd_passing.h"
#include "shmring/segment.h"
#include "wire/protocol.h"

namespace zerohop {

using protocol::Descriptor;
using protocol::Op;

namespace {

constexpr size_t kMaxHelloBytes = 4096;
constexpr int kDescriptorsPerTurn = 64;       // per session per worker turn: fairness
constexpr uint32_t kMaxBadDescriptors = 1000;  // then the session is closed
constexpr absl::Duration kSpinBeforeSleep = absl::Microseconds(50);

uint32_t ClampEntries(uint32_t want) {
    uint32_t e = 16;
    while (e < want && e < 4096) {
        e <<= 1;
    }
    return e;
}

absl::Status Errno(std::string_view what) {
    return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
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

// ---- sessions -------------------------------------------------------------------------------

// A put streaming in chunks: the worker queues the bytes it copies out of the ring, a
// thread of its own feeds them to the backend (which may block on disk), so the worker
// never waits.
struct Upload {
    absl::Mutex mu;
    std::deque<std::pair<std::string, std::optional<Descriptor>>> chunks ABSL_GUARDED_BY(mu);  // bytes, ack
    bool finished ABSL_GUARDED_BY(mu) = false;   // the last chunk is queued
    bool cancelled ABSL_GUARDED_BY(mu) = false;  // the session or the client gave up
    bool ended ABSL_GUARDED_BY(mu) = false;      // the backend took its last byte, or failed
    size_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
};

struct Session {
    uint64_t id = 0;
    shmring::UniqueFd sock;
    shmring::Segment segment;
    shmring::EventFd doorbell;
    uint32_t uid = 0, gid = 0;
    pid_t pid = 0;
    const CredentialConfig* credential = nullptr;
    uint32_t max_in_flight = 0;

    // Private state of the owning worker: never read back from shared memory.
    shmring::RingSlots submit;
    shmring::RingSlots complete;
    uint64_t submit_head = 0;
    uint64_t complete_tail = 0;
    uint64_t client_bytes = 0;
    std::deque<Descriptor> overflow;  // completions waiting for room in the ring
    absl::flat_hash_map<uint64_t, std::shared_ptr<Upload>> uploads;  // by the first request id
    uint32_t in_flight = 0;
    uint32_t bad_descriptors = 0;
    bool closed = false;

    Session(shmring::Segment seg, shmring::EventFd bell)
        : segment(std::move(seg)),
          doorbell(std::move(bell)),
          submit(segment.submit_ring()),
          complete(segment.complete_ring()),
          client_bytes(segment.layout().client_region.size),
          daemon_alloc_(segment.layout().daemon_region.size) {}

    // Result buffers in the daemon region: backends fill them from their own threads too.
    std::optional<uint64_t> AllocateResult(uint64_t bytes) {
        absl::MutexLock lock(&alloc_mu_);
        return daemon_alloc_.Allocate(bytes);
    }
    bool FreeResult(uint64_t offset) {
        absl::MutexLock lock(&alloc_mu_);
        return daemon_alloc_.Free(offset).has_value();
    }
    uint64_t results_held() {
        absl::MutexLock lock(&alloc_mu_);
        return daemon_alloc_.used();
    }
    uint64_t daemon_bytes() const { return segment.layout().daemon_region.size; }

private:
    absl::Mutex alloc_mu_;
    shmring::RegionAllocator daemon_alloc_ ABSL_GUARDED_BY(alloc_mu_);
};

// A get's bytes, written straight into a buffer of the session's daemon region after
// room for the result header.
class RegionSink : public DataSink {
public:
    explicit RegionSink(std::shared_ptr<Session> s) : s_(std::move(s)) {}
    ~RegionSink() override { Abandon(); }
    absl::Status Expect(uint64_t bytes) override {
        auto off = s_->AllocateResult(kHeaderRoom + bytes);
        if (!off) {
            return absl::ResourceExhaustedError(absl::StrFormat(
                "session %d: no room for %d bytes in the daemon buffer region (%d of %d held by "
                "unreleased results)",
                s_->id, bytes, s_->results_held(), s_->daemon_bytes()));
        }
        buffer_ = *off;
        cursor_ = *off + kHeaderRoom;
        end_ = cursor_ + bytes;
        return absl::OkStatus();
    }
    absl::Status Write(std::string_view chunk) override {
        if (!buffer_ || chunk.size() > end_ - cursor_) {
            return absl::InternalError("backend wrote more than it announced");
        }
        std::memcpy(s_->segment.daemon_region() + cursor_, chunk.data(), chunk.size());
        cursor_ += chunk.size();
        return absl::OkStatus();
    }
    char* Placement() override { return buffer_ ? s_->segment.daemon_region() + *buffer_ + kHeaderRoom : nullptr; }
    // Frees the buffer unless Handed over to a completion.
    void Abandon() {
        if (buffer_) {
            s_->FreeResult(*buffer_);
            buffer_.reset();
        }
    }
    std::optional<uint64_t> Handover() { return std::exchange(buffer_, std::nullopt); }

    static constexpr uint64_t kHeaderRoom = 256;

private:
    std::shared_ptr<Session> s_;
    std::optional<uint64_t> buffer_;
    uint64_t cursor_ = 0, end_ = 0;
};

class Worker;

class Server::Impl {
public:
    explicit Impl(DaemonConfig config) : config_(std::move(config)) {}
    ~Impl() { Stop(); }

    absl::Status Open();
    void Stop();
    DaemonStatus stats() const;
    const std::string& socket_path() const { return config_.listen; }

    // Routing and rights.
    absl::StatusOr<Backend*> Route(const Path& path) const;
    const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }
    absl::Status Allow(const Session& s, const Path& path, bool write) const;
    std::vector<std::string> GrantedContainers(const Session& s) const;

    std::atomic<uint64_t> requests{0}, request_errors{0}, bad_descriptors{0};

private:
    void AcceptLoop();
    static bool HelloArrived(int sock);
    void Handshake(shmring::UniqueFd sock);

    DaemonConfig config_;
    std::vector<std::unique_ptr<Backend>> backends_;
    absl::flat_hash_map<std::string, Backend*> mounts_;
    absl::flat_hash_map<std::string, const CredentialConfig*> keys_;
    shmring::UniqueFd listener_;
    std::optional<shmring::EventFd> stop_bell_;
    std::thread acceptor_;
    std::vector<std::unique_ptr<Worker>> workers_;
    MetricsEndpoint metrics_endpoint_;
    std::atomic<uint64_t> next_session_{1};
    std::atomic<uint64_t> sessions_total_{0}, sessions_refused_{0};
    std::atomic<bool> stopped_{false};
    std::atomic<size_t> next_worker_{0};
    // Hellos run on threads of their own, so a client that never says hello delays nobody.
    std::atomic<int> handshakes_{0};
    static constexpr int kMaxHandshakes = 64;
};

// ---- workers --------------------------------------------------------------------------------

// One request being served: where its answer goes and when it started.
struct Call {
    std::shared_ptr<Session> s;
    Descriptor d;
    std::chrono::steady_clock::time_point start;
};

class Worker {
public:
    explicit Worker(Server::Impl* server) : server_(server) {}

    absl::Status Start(Poller::Kind wait_with) {
        auto poller = Poller::Create(wait_with);
        if (!poller.ok()) {
            return poller.status();
        }
        poller_ = std::move(*poller);
        auto bell = shmring::EventFd::Create();
        if (!bell.ok()) {
            return bell.status();
        }
        wake_.emplace(std::move(*bell));
        if (absl::Status s = poller_->Add(wake_->fd(), kWakeKey); !s.ok()) {
            return s;
        }
        thread_ = std::thread([this] { Loop(); });
        return absl::OkStatus();
    }

    std::string_view poller_name() const { return poller_ ? poller_->name() : "none"; }

    void Add(std::shared_ptr<Session> s) {
        {
            absl::MutexLock lock(&mu_);
            incoming_.push_back(std::move(s));
        }
        has_incoming_.store(true, std::memory_order_release);
        wake_->Signal();
    }

    // Runs `task` on the worker's thread (for work finished elsewhere: backends' own
    // threads, uploads).
    void Post(absl::AnyInvocable<void() &&> task) {
        {
            absl::MutexLock lock(&mu_);
            posted_.push_back(std::move(task));
        }
        has_posted_.store(true, std::memory_order_release);
        wake_->Signal();
    }

    // Stops taking requests, lets those in flight finish and answers them (for at most
    // kDrainTime), then closes every session and returns.
    void Stop() {
        stopping_.store(true, std::memory_order_release);
        if (wake_) {
            wake_->Signal();
        }
        if (thread_.joinable()) {
            thread_.join();
        }
        // Uploads were cancelled when their sessions closed; wait for their threads to end.
        while (live_uploads_.load(std::memory_order_acquire) > 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }

    size_t open_sessions() const { return open_.load(); }
    const Metrics& metrics() const { return metrics_; }

    // Runs `fn` on the worker's thread: at once when called there, else posted to it.
    template <typename Fn>
    void OnWorker(Fn&& fn) {
        if (tls_worker_ == this) {
            return std::forward<Fn>(fn)();
        }
        Post(std::forward<Fn>(fn));
    }

    // Completes a call from any thread.
    void Finish(Call call, absl::Status status, std::string body) {
        OnWorker([this, call = std::move(call), status = std::move(status), body = std::move(body)]() mutable {
            Complete(call, status, body);
        });
    }

    template <typename T>
    Done<T> Reply(const Call& call) {
        return [this, call](absl::StatusOr<T> r) {
            if (!r.ok()) {
                return Finish(call, r.status(), {});
            }
            Finish(call, absl::OkStatus(), protocol::Encode(*r));
        };
    }
    DoneStatus ReplyStatus(const Call& call) {
        return [this, call](absl::Status st) { Finish(call, std::move(st), {}); };
    }

private:
    static constexpr uint64_t kWakeKey = 1;
    // Poller keys of the backends' hooks (sessions' keys are small).
    static constexpr uint64_t kHookKeyBase = uint64_t{1} << 62;
    // How long a worker spins for answers its backends' hooks are waiting for (a Redis
    // round trip) before it sleeps: an answer found spinning costs no wake-up.
    static constexpr absl::Duration kSpinForBackend = absl::Microseconds(300);
    static constexpr absl::Duration kDrainTime = absl::Seconds(10);
    static constexpr absl::Duration kSpinAfterAdopt = absl::Microseconds(300);
    // Poller keys: two per session (doorbell, socket), never reused.
    static uint64_t DoorbellKey(const Session& s) { return s.id * 2; }
    static uint64_t SocketKey(const Session& s) { return s.id * 2 + 1; }

    void Loop();
    void JoinBackends();
    bool PollHooks(bool all);
    void Adopt();
    bool Serve(const std::shared_ptr<Session>& s);
    void Close(Session& s, std::string_view why);
    void CancelUploads(Session& s);
    void Woken(uint64_t key);
    void Dispatch(const std::shared_ptr<Session>& s, const Descriptor& d);
    void Reject(const Call& call, std::string_view why);
    void Complete(const Call& call, const absl::Status& status, std::string_view body);
    // Completes with a result already placed in the daemon region: [payload, +length) inside
    // the allocation at `buffer`.
    void CompleteInPlace(const Call& call, uint64_t buffer, uint64_t payload, uint32_t length);
    void Push(Session& s, const Descriptor& c);
    void Record(const Call& call, int code, uint64_t out_bytes);
    void GetObject(const Call& call, GetObjectRequest req, Backend* b);
    void StartUpload(const Call& call, const std::string& body);
    void AddChunk(const Call& call);
    bool FlushOverflow(Session& s);

    static thread_local Worker* tls_worker_;

    Server::Impl* server_;
    std::unique_ptr<Poller> poller_;
    std::vector<std::unique_ptr<LoopHook>> hooks_;  // backends' I/O on this thread
    std::vector<bool> hook_woken_;
    std::optional<shmring::EventFd> wake_;
    std::thread thread_;
    absl::Mutex mu_;
    std::vector<std::shared_ptr<Session>> incoming_ ABSL_GUARDED_BY(mu_);
    // Checked on every turn of the loop: atomics, so that a spinning worker takes no lock.
    std::atomic<bool> has_incoming_{false};
    std::atomic<bool> stopping_{false};
    std::vector<absl::AnyInvocable<void() &&>> posted_ ABSL_GUARDED_BY(mu_);
    std::atomic<bool> has_posted_{false};
    std::atomic<int> live_uploads_{0};
    std::vector<std::shared_ptr<Session>> sessions_;
    absl::flat_hash_map<uint64_t, Session*> by_key_;  // poller key -> session
    std::atomic<size_t> open_{0};
    Metrics metrics_;  // this worker's requests; it is the only writer
};

thread_local Worker* Worker::tls_worker_ = nullptr;

void Worker::Adopt() {
    std::vector<std::shared_ptr<Session>> fresh;
    {
        absl::MutexLock lock(&mu_);
        fresh.swap(incoming_);
        has_incoming_.store(false, std::memory_order_release);
    }
    for (auto& s : fresh) {
        absl::Status a = poller_->Add(s->doorbell.fd(), DoorbellKey(*s));
        absl::Status b = a.ok() ? poller_->Add(s->sock.get(), SocketKey(*s)) : a;
        if (!b.ok()) {
            poller_->Remove(s->doorbell.fd(), DoorbellKey(*s));
            Log(LogLevel::kError, "cannot watch a session", "session", s->id, "error", std::string(b.message()));
            continue;  // dropping it closes its socket: the client sees the daemon go
        }
        by_key_[DoorbellKey(*s)] = s.get();
        by_key_[SocketKey(*s)] = s.get();
        // Awake now; until this point the client rang the doorbell for everything it sent.
        std::atomic_ref<uint32_t>(s->segment.header()->creator_sleeping).store(0, std::memory_order_seq_cst);
        sessions_.push_back(std::move(s));
        open_.fetch_add(1);
    }
}

void Worker::CancelUploads(Session& s) {
    for (auto& [id, up] : s.uploads) {
        absl::MutexLock lock(&up->mu);
        up->cancelled = true;
    }
}

void Worker::Close(Session& s, std::string_view why) {
    if (s.closed) {
        return;
    }
    s.closed = true;
    CancelUploads(s);
    s.uploads.clear();
    poller_->Remove(s.doorbell.fd(), DoorbellKey(s));
    poller_->Remove(s.sock.get(), SocketKey(s));
    by_key_.erase(DoorbellKey(s));
    by_key_.erase(SocketKey(s));
    Log(LogLevel::kInfo, "session closed", "session", s.id, "pid", s.pid, "why", why);
}

// The doorbell or the socket of a session woke the worker: drain the one, and check the
// other, where bytes after the hello are a protocol error and EOF is the end.
void Worker::Woken(uint64_t key) {
    if (key == kWakeKey) {
        wake_->Drain();
        return;
    }
    if (key >= kHookKeyBase) {
        hook_woken_[key - kHookKeyBase] = true;
        return;
    }
    auto it = by_key_.find(key);
    if (it == by_key_.end()) {
        return;  // a session closed meanwhile
    }
    Session& s = *it->second;
    s.doorbell.Drain();
    char junk[64];
    ssize_t r = ::recv(s.sock.get(), junk, sizeof junk, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        Close(s, "the client closed its socket");
    } else if (r > 0) {
        Close(s, "unexpected bytes on the session socket");
    }
}

void Worker::JoinBackends() {
    for (const auto& b : server_->backends()) {
        auto hook = b->JoinLoop();
        if (!hook.ok()) {
            // This worker's operations on it then go through the backend's own threads.
            Log(LogLevel::kWarning, "a backend cannot run on this worker's loop", "backend", b->kind(), "error",
                std::string(hook.status().message()));
            continue;
        }
        if (*hook == nullptr) {
            continue;
        }
        uint64_t key = kHookKeyBase + hooks_.size();
        if (absl::Status st = poller_->Add((*hook)->fd(), key); !st.ok()) {
            Log(LogLevel::kWarning, "cannot watch a backend's hook", "error", std::string(st.message()));
            continue;
        }
        hooks_.push_back(std::move(*hook));
        hook_woken_.push_back(false);
    }
}

// Runs the hooks that have work or answers coming (`all`: every one, after a sleep).
bool Worker::PollHooks(bool all) {
    bool progress = false;
    for (size_t i = 0; i < hooks_.size(); ++i) {
        if (all || hook_woken_[i] || hooks_[i]->Busy()) {
            hook_woken_[i] = false;
            progress |= hooks_[i]->Poll();
        }
    }
    return progress;
}

void Worker::Loop() {
    tls_worker_ = this;
    JoinBackends();
    absl::Time idle_since = absl::Now();
    std::optional<absl::Time> drain_until;
    absl::Time stay_awake_until = absl::InfinitePast();
    std::vector<uint64_t> ready;
    for (;;) {
        bool stopping = stopping_.load(std::memory_order_acquire);
        if (stopping && !drain_until) {
            drain_until = absl::Now() + kDrainTime;
            for (auto& s : sessions_) {
                CancelUploads(*s);  // they fail and change nothing; their requests drain below
            }
        }
        if (stopping) {
            uint32_t in_flight = 0;
            for (auto& s : sessions_) {
                in_flight += s->closed ? 0 : s->in_flight;
            }
            if (in_flight == 0 || absl::Now() >= *drain_until) {
                break;
            }
        }
        if (has_incoming_.load(std::memory_order_acquire)) {
            Adopt();
            // A new client sends its first request right away: be awake for it, rather than
            // fall asleep and cost it a wake-up.
            stay_awake_until = absl::Now() + kSpinAfterAdopt;
        }
        if (has_posted_.load(std::memory_order_acquire)) {
            std::vector<absl::AnyInvocable<void() &&>> tasks;
            {
                absl::MutexLock lock(&mu_);
                tasks.swap(posted_);
                has_posted_.store(false, std::memory_order_release);
            }
            for (auto& t : tasks) {
                std::move(t)();
            }
            idle_since = absl::Now();
        }
        bool progress = false;
        for (auto& s : sessions_) {
            if (!s->closed) {
                // While stopping, only answers go out: no new request is taken.
                progress |= stopping ? FlushOverflow(*s) : Serve(s);
            }
        }
        // What the requests above sent goes out now, and whatever answers came complete.
        progress |= PollHooks(false);
        // Closed sessions leave the list; calls still running elsewhere hold their own
        // reference, and their answers are dropped.
        size_t before = sessions_.size();
        sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                       [](const std::shared_ptr<Session>& s) { return s->closed; }),
                        sessions_.end());
        open_.fetch_sub(before - sessions_.size());
        if (progress) {
            idle_since = absl::Now();
            continue;
        }
        absl::Time now = absl::Now();
        bool awaited = std::any_of(hooks_.begin(), hooks_.end(), [](const auto& h) { return h->Busy(); });
        if (now - idle_since < kSpinBeforeSleep || now < stay_awake_until ||
            (awaited && now - idle_since < kSpinForBackend)) {
            if (awaited) {
                // The answer may need this core (Redis on the same machine): offer it.
                sched_yield();
            } else {
                _mm_pause();
            }
            continue;
        }
        // Sleep: announce it on every session, look once more, then block.
        for (auto& s : sessions_) {
            std::atomic_ref<uint32_t>(s->segment.header()->creator_sleeping).store(1, std::memory_order_seq_cst);
        }
        bool pending = has_posted_.load(std::memory_order_acquire) || has_incoming_.load(std::memory_order_acquire);
        for (auto& s : sessions_) {
            pending |= s->submit.ReadyAt(s->submit_head);
        }
        // No timeout: a new session, a posted completion, a stop, a doorbell or a hook's
        // descriptor wakes us; idle sessions cost nothing. While draining, look again every
        // millisecond; a hook with timers sets its own limit.
        int timeout = pending ? 0 : (stopping ? 1 : -1);
        for (auto& h : hooks_) {
            h->Sleeping(true);
            int t = h->TimeoutMs();
            if (t >= 0 && (timeout < 0 || t < timeout)) {
                timeout = t;
            }
        }
        ready.clear();
        poller_->Wait(&ready, timeout);
        for (auto& h : hooks_) {
            h->Sleeping(false);
        }
        for (auto& s : sessions_) {
            std::atomic_ref<uint32_t>(s->segment.header()->creator_sleeping).store(0, std::memory_order_seq_cst);
        }
        for (uint64_t key : ready) {
            Woken(key);
        }
        PollHooks(/*all=*/ready.empty());  // a timeout: the hooks' timers are due
        idle_since = absl::Now();  // woke up: serve, then spin again briefly before sleeping
    }
    for (auto& s : sessions_) {
        Close(*s, "the daemon is stopping");
    }
    open_.store(0);
    sessions_.clear();
    // What the hooks still wait for fails now, on this thread (its sessions are closed).
    for (size_t i = 0; i < hooks_.size(); ++i) {
        poller_->Remove(hooks_[i]->fd(), kHookKeyBase + i);
    }
    hooks_.clear();
    tls_worker_ = nullptr;
}

bool Worker::Serve(const std::shared_ptr<Session>& s) {
    bool progress = FlushOverflow(*s);
    for (int i = 0; i < kDescriptorsPerTurn; ++i) {
        Descriptor d;
        if (!s->submit.PopPrivate(&s->submit_head, &d)) {  // copied out of shared memory, once
            break;
        }
        progress = true;
        Dispatch(s, d);
        if (s->closed) {
            break;
        }
    }
    return progress;
}

void Worker::Record(const Call& call, int code, uint64_t out_bytes) {
    metrics_.Record(
        call.d.op, code,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - call.start).count(), call.d.length,
        out_bytes);
}

void Worker::Reject(const Call& call, std::string_view why) {
    server_->bad_descriptors.fetch_add(1, std::memory_order_relaxed);
    ++call.s->in_flight;  // answered like any request: Push counts it out again
    if (++call.s->bad_descriptors > kMaxBadDescriptors) {
        Close(*call.s, "too many malformed descriptors");
        return;
    }
    Complete(call, absl::InvalidArgumentError(std::string(why)), {});
}

bool Worker::FlushOverflow(Session& s) {
    bool pushed = false;
    while (!s.overflow.empty() && s.complete.PushPrivate(&s.complete_tail, &s.overflow.front())) {
        s.overflow.pop_front();
        pushed = true;
    }
    if (pushed) {
        shmring::NotifyPeer(s.segment.header());
    }
    return pushed;
}

void Worker::Complete(const Call& call, const absl::Status& status, std::string_view body) {
    Session& s = *call.s;
    Descriptor c;
    c.op = call.d.op;
    c.request_id = call.d.request_id;
    c.status = static_cast<int32_t>(status.code());
    std::string err;
    if (!status.ok()) {
        err = protocol::Encode(protocol::WireStatus{status});
        body = err;
        server_->request_errors.fetch_add(1, std::memory_order_relaxed);
    }
    if (!body.empty() && !s.closed) {
        auto off = s.AllocateResult(body.size());
        if (!off) {
            // The client holds too many results: it must release some.
            err = protocol::Encode(protocol::WireStatus{absl::ResourceExhaustedError(absl::StrFormat(
                "session %d: the daemon buffer region is full (%d of %d bytes held by unreleased results)", s.id,
                s.results_held(), s.daemon_bytes()))});
            c.status = static_cast<int32_t>(absl::StatusCode::kResourceExhausted);
            off = s.AllocateResult(err.size());
            body = off ? std::string_view(err) : std::string_view();
        }
        if (off) {
            std::memcpy(s.segment.daemon_region() + *off, body.data(), body.size());
            c.offset = *off;
            c.length = static_cast<uint32_t>(body.size());
            c.arg0 = *off;  // the buffer the client releases
        }
    }
    Record(call, c.status, c.length);
    Push(s, c);
}

void Worker::CompleteInPlace(const Call& call, uint64_t buffer, uint64_t payload, uint32_t length) {
    Descriptor c;
    c.op = call.d.op;
    c.request_id = call.d.request_id;
    c.offset = payload;
    c.length = length;
    c.arg0 = buffer;
    Record(call, 0, length);
    Push(*call.s, c);
}

void Worker::Push(Session& s, const Descriptor& c) {
    if (s.closed) {
        if (c.length > 0) {
            s.FreeResult(c.arg0);  // nobody will release it
        }
        return;  // a completion finished after its session went away
    }
    if (s.in_flight > 0) {
        --s.in_flight;
    }
    if (!s.overflow.empty() || !s.complete.PushPrivate(&s.complete_tail, &c)) {
        s.overflow.push_back(c);  // bounded by max_in_flight
        return;
    }
    shmring::NotifyPeer(s.segment.header());
}

void Worker::GetObject(const Call& call, GetObjectRequest req, Backend* b) {
    // The bytes go straight into a daemon-region buffer, after room for the result header;
    // libzerohop reads objects larger than half the region in ranges.
    req.length = std::min(req.length, call.s->daemon_bytes() / 2);
    auto sink = std::make_shared<RegionSink>(call.s);
    // The completion may run on a backend thread: it fills in the header there (the buffer
    // is this call's alone) and hands the answer to the worker.
    b->GetObject(std::move(req), sink.get(), [this, call, sink](absl::StatusOr<GetObjectResult> res) {
        std::string header = res.ok() ? protocol::Encode(*res) : std::string();
        std::optional<uint64_t> buffer = res.ok() && header.size() <= RegionSink::kHeaderRoom ? sink->Handover()
                                                                                               : std::nullopt;
        if (!buffer) {
            return Finish(call, res.ok() ? absl::InternalError("get: no result buffer") : res.status(), {});
        }
        uint64_t payload = *buffer + RegionSink::kHeaderRoom - header.size();
        std::memcpy(call.s->segment.daemon_region() + payload, header.data(), header.size());
        auto length = static_cast<uint32_t>(header.size() + res->bytes);
        OnWorker([this, call, b = *buffer, payload, length] { CompleteInPlace(call, b, payload, length); });
    });
}

void Worker::Dispatch(const std::shared_ptr<Session>& sp, const Descriptor& d) {
    Session& s = *sp;
    Call call{sp, d, std::chrono::steady_clock::now()};
    if (d.version != protocol::kProtocolVersion) {
        return Reject(call, absl::StrFormat("descriptor version %d; this daemon speaks %d", d.version,
                                            protocol::kProtocolVersion));
    }
    if (!protocol::IsKnownOp(d.op)) {
        return Reject(call, absl::StrFormat("unknown operation %d", d.op));
    }
    Op op = static_cast<Op>(d.op);
    if (op == Op::kRelease) {
        if (!s.FreeResult(d.offset)) {
            server_->bad_descriptors.fetch_add(1, std::memory_order_relaxed);
            if (++s.bad_descriptors > kMaxBadDescriptors) {
                Close(s, "too many bad releases");
            }
        }
        return;  // releases are not answered
    }
    if (d.offset > s.client_bytes || d.length > s.client_bytes - d.offset) {
        return Reject(call, absl::StrFormat("payload [%d, +%d) lies outside the %d-byte client region", d.offset,
                                            d.length, s.client_bytes));
    }
    if (s.in_flight >= s.max_in_flight) {
        ++s.in_flight;  // Complete counts the answer out again
        return Complete(call,
                        absl::ResourceExhaustedError(
                            absl::StrFormat("session %d: %d requests in flight, the limit", s.id, s.max_in_flight)),
                        {});
    }
    ++s.in_flight;
    server_->requests.fetch_add(1, std::memory_order_relaxed);
    if (op == Op::kNop) {
        return Complete(call, absl::OkStatus(), {});
    }
    // Copy the body out once: nothing below reads shared memory again.
    std::string body(s.segment.client_region() + d.offset, d.length);
    Caller caller{s.uid, s.gid};

    auto fail = [&](const absl::Status& st) { Complete(call, st, {}); };
    // One path, checked and routed.
    auto routed = [&](const Path& p, bool write) -> absl::StatusOr<Backend*> {
        if (absl::Status a = server_->Allow(s, p, write); !a.ok()) {
            return a;
        }
        return server_->Route(p);
    };

#define ZH_DECODE(Type, var)                                \
    auto var##_or = protocol::Decode<Type>(body);           \
    if (!var##_or.ok()) {                                   \
        return fail(var##_or.status());                     \
    }                                                       \
    Type var = std::move(*var##_or)
#define ZH_ROUTE(var, path, write)       \
    auto var##_or = routed(path, write); \
    if (!var##_or.ok()) {                \
        return fail(var##_or.status());  \
    }                                    \
    Backend* var = *var##_or

    switch (op) {
        case Op::kListContainers:
            return Complete(call, absl::OkStatus(), protocol::Encode(server_->GrantedContainers(s)));
        case Op::kStat: {
            ZH_DECODE(Path, p);
            if (p.is_root()) {
                ObjectInfo root;
                root.type = ObjectType::kDirectory;
                root.mode = 0555;
                return Complete(call, absl::OkStatus(), protocol::Encode(root));
            }
            ZH_ROUTE(b, p, false);
            return b->Stat(p, Reply<ObjectInfo>(call));
        }
        case Op::kList: {
            ZH_DECODE(ListRequest, r);
            if (r.path.is_root()) {
                ListResult out;
                for (const std::string& c : server_->GrantedContainers(s)) {
                    if (c.compare(0, r.prefix.size(), r.prefix) == 0 && (r.marker.empty() || c > r.marker)) {
                        DirEntry e;
                        e.name = c;
                        e.info.type = ObjectType::kDirectory;
                        e.info.mode = 0755;
                        out.entries.push_back(std::move(e));
                    }
                }
                return Complete(call, absl::OkStatus(), protocol::Encode(out));
            }
            ZH_ROUTE(b, r.path, false);
            return b->List(std::move(r), Reply<ListResult>(call));
        }
        case Op::kMkdir: {
            ZH_DECODE(MkdirRequest, r);
            ZH_ROUTE(b, r.path, true);
            r.caller = caller;
            return b->Mkdir(std::move(r), Reply<ObjectInfo>(call));
        }
        case Op::kRmdir: {
            ZH_DECODE(Path, p);
            ZH_ROUTE(b, p, true);
            return b->Rmdir(p, ReplyStatus(call));
        }
        case Op::kRename: {
            ZH_DECODE(RenameRequest, r);
            ZH_ROUTE(from, r.from, true);
            ZH_ROUTE(to, r.to, true);
            if (from != to) {
                return fail(absl::UnimplementedError(absl::StrFormat(
                    "rename %s -> %s: the containers live on different backends", r.from.str(), r.to.str())));
            }
            return from->Rename(std::move(r), ReplyStatus(call));
        }
        case Op::kSymlink: {
            ZH_DECODE(SymlinkRequest, r);
            ZH_ROUTE(b, r.path, true);
            r.caller = caller;
            return b->Symlink(std::move(r), Reply<ObjectInfo>(call));
        }
        case Op::kReadlink: {
            ZH_DECODE(Path, p);
            ZH_ROUTE(b, p, false);
            return b->Readlink(p, Reply<std::string>(call));
        }
        case Op::kDelete: {
            ZH_DECODE(DeleteRequest, r);
            ZH_ROUTE(b, r.path, true);
            return b->Delete(std::move(r), ReplyStatus(call));
        }
        case Op::kSetMetadata: {
            ZH_DECODE(SetMetadataRequest, r);
            ZH_ROUTE(b, r.path, true);
            return b->SetMetadata(std::move(r), Reply<ObjectInfo>(call));
        }
        case Op::kGetObject: {
            ZH_DECODE(GetObjectRequest, r);
            ZH_ROUTE(b, r.path, false);
            return GetObject(call, std::move(r), b);
        }
        case Op::kPutObject: {
            if (d.flags & protocol::kFlagChunk) {
                return AddChunk(call);
            }
            if (d.flags & protocol::kFlagMore) {
                return StartUpload(call, body);
            }
            // The request's bytes stay in `owned` until the backend is done with them.
            auto owned = std::make_shared<std::string>(std::move(body));
            std::string_view rest;
            auto r = protocol::DecodePrefix<PutObjectRequest>(*owned, &rest);
            if (!r.ok()) {
                return fail(r.status());
            }
            ZH_ROUTE(b, r->path, true);
            r->caller = caller;
            auto source = std::make_shared<StringSource>(rest);
            return b->PutObject(std::move(*r), source.get(),
                                [reply = Reply<ObjectInfo>(call), owned, source](absl::StatusOr<ObjectInfo> r) mutable {
                                    std::move(reply)(std::move(r));
                                });
        }
        case Op::kWriteObject:
        case Op::kAppend: {
            // Both name their bytes inside the body: it lives until the backend is done.
            auto owned = std::make_shared<std::string>(std::move(body));
            auto reply = [reply = Reply<ObjectInfo>(call), owned](absl::StatusOr<ObjectInfo> r) mutable {
                std::move(reply)(std::move(r));
            };
            if (op == Op::kWriteObject) {
                auto r = protocol::Decode<WriteObjectRequest>(*owned);
                if (!r.ok()) {
                    return fail(r.status());
                }
                ZH_ROUTE(b, r->path, true);
                return b->WriteObject(std::move(*r), std::move(reply));
            }
            auto r = protocol::Decode<AppendRequest>(*owned);
            if (!r.ok()) {
                return fail(r.status());
            }
            ZH_ROUTE(b, r->path, true);
            return b->Append(std::move(*r), std::move(reply));
        }
        case Op::kTruncate: {
            ZH_DECODE(TruncateRequest, r);
            ZH_ROUTE(b, r.path, true);
            return b->Truncate(std::move(r), Reply<ObjectInfo>(call));
        }
        case Op::kGetItem: {
            ZH_DECODE(GetItemRequest, r);
            ZH_ROUTE(b, r.path, false);
            return b->GetItem(std::move(r), Reply<Item>(call));
        }
        case Op::kGetItems: {
            ZH_DECODE(GetItemsRequest, r);
            ZH_ROUTE(b, r.path, false);
            return b->GetItems(std::move(r), Reply<GetItemsResult>(call));
        }
        case Op::kPutItem: {
            ZH_DECODE(PutItemRequest, r);
            ZH_ROUTE(b, r.path, true);
            r.caller = caller;
            return b->PutItem(std::move(r), Reply<ObjectInfo>(call));
        }
        case Op::kPutItems: {
            ZH_DECODE(std::vector<PutItemRequest>, items);
            // Each item is checked and routed on its own and gets its own status; the answer
            // goes when the last one is done, wherever that is.
            struct Batch {
                std::vector<absl::Status> results;
                std::atomic<size_t> left;
                Done<std::vector<absl::Status>> reply;
            };
            auto batch = std::make_shared<Batch>();
            batch->results.resize(items.size());
            batch->left = items.size() + 1;  // + this loop
            batch->reply = Reply<std::vector<absl::Status>>(call);
            auto one_done = [batch] {
                if (batch->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                    std::move(batch->reply)(std::move(batch->results));
                }
            };
            for (size_t i = 0; i < items.size(); ++i) {
                auto b = routed(items[i].path, true);
                if (!b.ok()) {
                    batch->results[i] = b.status();
                    one_done();
                    continue;
                }
                items[i].caller = caller;
                (*b)->PutItem(std::move(items[i]), [batch, i, one_done](absl::StatusOr<ObjectInfo> r) {
                    batch->results[i] = r.status();
                    one_done();
                });
            }
            return one_done();
        }
        case Op::kUpdateItem: {
            ZH_DECODE(UpdateItemRequest, r);
            ZH_ROUTE(b, r.path, true);
            r.caller = caller;
            return b->UpdateItem(std::move(r), Reply<ObjectInfo>(call));
        }
        case Op::kCreateStream: {
            ZH_DECODE(CreateStreamRequest, r);
            ZH_ROUTE(b, r.path, true);
            r.caller = caller;
            return b->CreateStream(std::move(r), Reply<ObjectInfo>(call));
        }
        case Op::kDescribeStream: {
            ZH_DECODE(Path, p);
            ZH_ROUTE(b, p, false);
            return b->DescribeStream(p, Reply<StreamDescription>(call));
        }
        case Op::kDeleteStream: {
            ZH_DECODE(Path, p);
            ZH_ROUTE(b, p, true);
            return b->DeleteStream(p, ReplyStatus(call));
        }
        case Op::kPutRecords: {
            ZH_DECODE(PutRecordsRequest, r);
            ZH_ROUTE(b, r.path, true);
            return b->PutRecords(std::move(r), Reply<std::vector<RecordResult>>(call));
        }
        case Op::kSeek: {
            ZH_DECODE(SeekRequest, r);
            ZH_ROUTE(b, r.path, false);
            return b->Seek(std::move(r), Reply<StreamLocation>(call));
        }
        case Op::kGetRecords: {
            ZH_DECODE(GetRecordsRequest, r);
            ZH_ROUTE(b, r.path, false);
            r.max_bytes = std::min<uint64_t>(r.max_bytes, s.daemon_bytes() / 4);
            return b->GetRecords(std::move(r), Reply<GetRecordsResult>(call));
        }
        case Op::kSync: {
            // Every backend the session may write to; the answer carries the first error.
            std::vector<Backend*> targets;
            for (const std::string& c : server_->GrantedContainers(s)) {
                auto b = server_->Route(*Path().Child(c));
                if (b.ok() && std::find(targets.begin(), targets.end(), *b) == targets.end()) {
                    targets.push_back(*b);
                }
            }
            struct Syncs {
                absl::Mutex mu;
                absl::Status first ABSL_GUARDED_BY(mu);
                std::atomic<size_t> left;
                DoneStatus reply;
            };
            auto syncs = std::make_shared<Syncs>();
            syncs->left = targets.size() + 1;
            syncs->reply = ReplyStatus(call);
            auto one_done = [syncs](absl::Status st) {
                if (!st.ok()) {
                    absl::MutexLock lock(&syncs->mu);
                    syncs->first.Update(st);
                }
                if (syncs->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                    absl::Status result;
                    {
                        absl::MutexLock lock(&syncs->mu);
                        result = syncs->first;
                    }
                    std::move(syncs->reply)(result);
                }
            };
            for (Backend* b : targets) {
                b->Sync(one_done);
            }
            return one_done(absl::OkStatus());
        }
        case Op::kStatus: {
            DaemonStatus out = server_->stats();
            out.containers = server_->GrantedContainers(s);
            return Complete(call, absl::OkStatus(), protocol::Encode(out));
        }
        case Op::kNop:
        case Op::kRelease:
            break;
    }
#undef ZH_DECODE
#undef ZH_ROUTE
    fail(absl::InternalError("unhandled operation"));
}

constexpr size_t kMaxUploadsPerSession = 4;

void Worker::StartUpload(const Call& call, const std::string& body) {
    Session& s = *call.s;
    std::string_view rest;
    auto req = protocol::DecodePrefix<PutObjectRequest>(body, &rest);
    if (!req.ok()) {
        return Complete(call, req.status(), {});
    }
    if (absl::Status a = server_->Allow(s, req->path, true); !a.ok()) {
        return Complete(call, a, {});
    }
    auto backend = server_->Route(req->path);
    if (!backend.ok()) {
        return Complete(call, backend.status(), {});
    }
    if (s.uploads.size() >= kMaxUploadsPerSession || s.uploads.contains(call.d.request_id)) {
        return Complete(call,
                        absl::ResourceExhaustedError(absl::StrFormat(
                            "session %d: %d streamed puts at once is the limit", s.id, kMaxUploadsPerSession)),
                        {});
    }
    req->caller = Caller{s.uid, s.gid};
    auto up = std::make_shared<Upload>();
    {
        absl::MutexLock lock(&up->mu);
        up->chunks.emplace_back(std::string(rest), std::nullopt);  // answered by the result
        up->queued_bytes = rest.size();
    }
    s.uploads[call.d.request_id] = up;
    live_uploads_.fetch_add(1, std::memory_order_acq_rel);
    std::thread([this, call, up, req = std::move(*req), b = *backend]() mutable {
        // Feeds the backend from the queue; blocks this thread, never the worker.
        class QueueSource : public DataSource {
        public:
            QueueSource(Worker* w, const Call& call, std::shared_ptr<Upload> up)
                : w_(w), call_(call), up_(std::move(up)) {}
            absl::StatusOr<size_t> Read(char* buf, size_t cap) override {
                absl::MutexLock lock(&up_->mu);
                up_->mu.Await(absl::Condition(
                    +[](Upload* u) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                        return !u->chunks.empty() || u->finished || u->cancelled;
                    },
                    up_.get()));
                if (up_->cancelled) {
                    return absl::CancelledError("the client went away during the put");
                }
                if (up_->chunks.empty()) {
                    return 0;  // finished
                }
                auto& [bytes, ack] = up_->chunks.front();
                size_t n = std::min(cap, bytes.size() - offset_);
                std::memcpy(buf, bytes.data() + offset_, n);
                offset_ += n;
                if (offset_ == bytes.size()) {
                    if (ack) {
                        w_->Finish(Call{call_.s, *ack, std::chrono::steady_clock::now()}, absl::OkStatus(), {});
                    }
                    up_->queued_bytes -= bytes.size();
                    up_->chunks.pop_front();
                    offset_ = 0;
                }
                return n;
            }

        private:
            Worker* w_;
            Call call_;
            std::shared_ptr<Upload> up_;
            size_t offset_ = 0;
        } source(this, call, up);
        // The source has no size: the backend runs the put on this thread.
        absl::StatusOr<ObjectInfo> result = Await<ObjectInfo>(
            [&](auto done) { b->PutObject(std::move(req), &source, std::move(done)); });
        {
            // Chunks the backend never took (the put failed or was abandoned) are answered
            // too, so that none stays in flight; later ones are answered by AddChunk.
            absl::MutexLock lock(&up->mu);
            up->ended = true;
            for (auto& [bytes, ack] : up->chunks) {
                if (ack) {
                    Finish(Call{call.s, *ack, std::chrono::steady_clock::now()},
                           absl::CancelledError("the put ended before this chunk was used"), {});
                }
            }
            up->chunks.clear();
        }
        std::string out = result.ok() ? protocol::Encode(*result) : std::string();
        Post([this, call, st = result.status(), out = std::move(out)] {
            call.s->uploads.erase(call.d.request_id);
            Complete(call, st, out);
        });
        live_uploads_.fetch_sub(1, std::memory_order_acq_rel);
    }).detach();
}

void Worker::AddChunk(const Call& call) {
    Session& s = *call.s;
    const Descriptor& d = call.d;
    auto it = s.uploads.find(d.arg0);
    if (it == s.uploads.end()) {
        return Reject(call, absl::StrFormat("put chunk for unknown upload %d", d.arg0));
    }
    std::shared_ptr<Upload> up = it->second;
    absl::MutexLock lock(&up->mu);
    if (d.arg1 == protocol::kAbortUpload) {
        up->cancelled = true;  // the client gave up: the put fails and changes nothing
        return Complete(call, absl::OkStatus(), {});
    }
    if (up->finished) {
        return Reject(call, absl::StrFormat("put chunk after the last one of upload %d", d.arg0));
    }
    if (up->cancelled || up->ended) {
        return Complete(call, absl::CancelledError("the put already ended"), {});
    }
    // Copied out of the ring; acknowledged once the backend has taken it, which paces the client.
    up->chunks.emplace_back(std::string(s.segment.client_region() + d.offset, d.length), d);
    up->queued_bytes += d.length;
    up->finished = (d.flags & protocol::kFlagMore) == 0;
}

// ---- the server -----------------------------------------------------------------------------

absl::StatusOr<Backend*> Server::Impl::Route(const Path& path) const {
    auto it = mounts_.find(absl::string_view(path.container().data(), path.container().size()));
    if (it == mounts_.end()) {
        return absl::NotFoundError(absl::StrFormat("%s: container \"%s\" is not mounted", path.str(), path.container()));
    }
    return it->second;
}

absl::Status Server::Impl::Allow(const Session& s, const Path& path, bool write) const {
    auto it = s.credential->containers.find(std::string(path.container()));
    uint32_t need = write ? kRightWrite : kRightRead;
    if (path.is_root() || it == s.credential->containers.end() || (it->second & need) == 0) {
        return absl::PermissionDeniedError(absl::StrFormat("%s: this access key does not grant %s on container \"%s\"",
                                                           path.str(), write ? "write" : "read", path.container()));
    }
    return absl::OkStatus();
}

std::vector<std::string> Server::Impl::GrantedContainers(const Session& s) const {
    std::vector<std::string> out;
    for (const auto& [name, rights] : s.credential->containers) {
        if (rights & kRightRead) {
            out.push_back(name);
        }
    }
    return out;
}

absl::Status Server::Impl::Open() {
    SetLogLevel(config_.log_level);
    // One embedded store per directory, serving every container mounted on it.
    std::map<std::string, EmbeddedOptions> stores;
    for (const MountConfig& m : config_.mounts) {
        if (m.backend != "embedded") {
            continue;
        }
        EmbeddedOptions& o = stores[m.options.at("dir")];
        o.dir = m.options.at("dir");
        o.containers.push_back(m.container);
        if (auto it = m.options.find("sync_writes"); it != m.options.end()) {
            o.sync_writes = it->second == "true";
        }
        // Numbers were checked with the configuration.
        if (auto it = m.options.find("inline_max_bytes"); it != m.options.end()) {
            (void)absl::SimpleAtoi(it->second, &o.inline_max_bytes);
        }
        if (auto it = m.options.find("io_threads"); it != m.options.end()) {
            (void)absl::SimpleAtoi(it->second, &o.io_threads);
        }
    }
    for (auto& [dir, opts] : stores) {
        auto b = EmbeddedBackend::Open(opts);
        if (!b.ok()) {
            return b.status();
        }
        for (const std::string& c : opts.containers) {
            mounts_[c] = b->get();
        }
        backends_.push_back(std::move(*b));
    }
    // One Redis backend (one set of connections) per distinct server and settings.
    std::map<std::map<std::string, std::string>, RedisBackendOptions> redis;
    for (const MountConfig& m : config_.mounts) {
        if (m.backend != "redis") {
            continue;
        }
        auto [it, fresh] = redis.try_emplace(m.options);
        RedisBackendOptions& o = it->second;
        o.containers.push_back(m.container);
        if (!fresh) {
            continue;
        }
        auto seeds = redis::ParseRedisUrl(m.options.at("url"));
        if (!seeds.ok()) {
            return absl::InvalidArgumentError(absl::StrFormat("container %s: %s", m.container, seeds.status().message()));
        }
        o.client.seeds = *seeds;
        auto text = [&](const char* k, std::string* out) {
            if (auto f = m.options.find(k); f != m.options.end()) {
                *out = f->second;
            }
        };
        auto number = [&](const char* k, auto* out) {
            if (auto f = m.options.find(k); f != m.options.end()) {
                (void)absl::SimpleAtoi(f->second, out);  // checked with the configuration
            }
        };
        text("prefix", &o.key_prefix);
        text("user", &o.client.user);
        text("password", &o.client.password);
        if (auto f = m.options.find("password_file"); f != m.options.end()) {
            std::ifstream in(f->second);
            if (!in) {
                return absl::FailedPreconditionError(
                    absl::StrFormat("container %s: cannot read the Redis password file %s", m.container, f->second));
            }
            std::getline(in, o.client.password);
        }
        number("database", &o.client.database);
        number("connections", &o.client.connections_per_node);
        number("replicas", &o.replicas);
        number("threads", &o.threads);
        number("inline_max_bytes", &o.inline_max_bytes);
        for (auto [k, d] : {std::pair{"connect_timeout_ms", &o.client.connect_timeout},
                            std::pair{"command_timeout_ms", &o.client.command_timeout},
                            std::pair{"retry_window_ms", &o.client.retry_window},
                            std::pair{"replica_timeout_ms", &o.replica_timeout}}) {
            int64_t ms = 0;
            number(k, &ms);
            if (ms > 0) {
                *d = absl::Milliseconds(ms);
            }
        }
    }
    for (auto& [settings, opts] : redis) {
        std::vector<std::string> names = opts.containers;
        auto b = RedisBackend::Open(std::move(opts));
        if (!b.ok()) {
            return absl::Status(b.status().code(), absl::StrFormat("containers %s on %s: %s", absl::StrJoin(names, ", "),
                                                                   settings.at("url"), b.status().message()));
        }
        for (const std::string& c : names) {
            mounts_[c] = b->get();
        }
        backends_.push_back(std::move(*b));
    }
    for (const CredentialConfig& c : config_.credentials) {
        keys_[c.key] = &c;
    }
    // The socket: a stale one from a dead daemon is replaced; a live one is an error.
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, config_.listen.data(), config_.listen.size());
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener_.valid()) {
        return Errno("socket");
    }
    {
        shmring::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
            return absl::AlreadyExistsError(
                absl::StrFormat("%s: another zerohopd is serving this socket", config_.listen));
        }
    }
    ::unlink(config_.listen.c_str());
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return absl::FailedPreconditionError(
            absl::StrFormat("cannot listen on %s: %s (does its directory exist?)", config_.listen, strerror(errno)));
    }
    ::chmod(config_.listen.c_str(), 0666);  // access is decided by the key and the peer's uid
    if (::listen(listener_.get(), 1024) != 0) {
        return Errno("listen");
    }
    auto bell = shmring::EventFd::Create();
    if (!bell.ok()) {
        return bell.status();
    }
    stop_bell_.emplace(std::move(*bell));
    for (uint32_t i = 0; i < config_.workers; ++i) {
        auto w = std::make_unique<Worker>(this);
        Poller::Kind kind = config_.wait_with == "io_uring" ? Poller::Kind::kUring
                            : config_.wait_with == "epoll"  ? Poller::Kind::kEpoll
                                                            : Poller::Kind::kAuto;
        if (absl::Status s = w->Start(kind); !s.ok()) {
            return s;
        }
        workers_.push_back(std::move(w));
    }
    if (config_.metrics_port != 0) {
        absl::Status st = metrics_endpoint_.Start(config_.metrics_port, [this] {
            DaemonStatus st = stats();
            std::vector<const Metrics*> shards;
            for (const auto& w : workers_) {
                shards.push_back(&w->metrics());
            }
            return Metrics::Render(shards, {st.sessions_open, st.sessions_total, st.sessions_refused, st.bad_descriptors},
                                   "embedded");
        });
        if (!st.ok()) {
            return st;
        }
    }
    acceptor_ = std::thread([this] { AcceptLoop(); });
    Log(LogLevel::kInfo, "zerohopd listening", "socket", config_.listen, "workers", config_.workers, "waiting_with",
        workers_.front()->poller_name(), "containers", mounts_.size());
    return absl::OkStatus();
}

void Server::Impl::AcceptLoop() {
    for (;;) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(listener_.get(), &set);
        FD_SET(stop_bell_->fd(), &set);
        int maxfd = std::max(listener_.get(), stop_bell_->fd());
        if (::select(maxfd + 1, &set, nullptr, nullptr, nullptr) < 0) {
            if (errno == EINTR) {
                continue;
            }
            Log(LogLevel::kError, "accept loop failed", "error", strerror(errno));
            return;
        }
        if (stopped_.load()) {
            return;
        }
        if (FD_ISSET(listener_.get(), &set)) {
            shmring::UniqueFd sock(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (sock.valid()) {
                if (HelloArrived(sock.get())) {
                    Handshake(std::move(sock));  // nothing to wait for: no thread needed
                    continue;
                }
                if (handshakes_.load() >= kMaxHandshakes) {
                    sessions_refused_.fetch_add(1);  // too many half-open connections: shed this one
                    continue;
                }
                handshakes_.fetch_add(1);
                std::thread([this, sock = std::move(sock)]() mutable {
                    Handshake(std::move(sock));
                    handshakes_.fetch_sub(1);
                }).detach();
            }
        }
    }
}

// Whether the client's whole hello is already in the socket (a client sends it right after
// connecting, so it usually is by the time the connection is accepted).
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

void Server::Impl::Handshake(shmring::UniqueFd sock) {
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
    if (::recv(sock.get(), &len, 4, MSG_WAITALL) != 4 || len == 0 || len > kMaxHelloBytes) {
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
    auto key = keys_.find(hello->access_key);
    if (key == keys_.end()) {
        return refuse(absl::PermissionDeniedError("unknown access key"));
    }
    const CredentialConfig* credential = key->second;
    if (!credential->uids.empty() &&
        std::find(credential->uids.begin(), credential->uids.end(), cred.uid) == credential->uids.end()) {
        return refuse(absl::PermissionDeniedError(
            absl::StrFormat("this access key may not be used by uid %d", cred.uid)));
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
    s->max_in_flight = std::min<uint32_t>(config_.limits.max_in_flight, layout->complete.capacity);
    protocol::Welcome w;
    w.session_id = s->id;
    w.max_in_flight = s->max_in_flight;
    if (absl::Status st = SendFramed(sock.get(), protocol::Encode(w), {s->segment.fd(), s->doorbell.fd()}); !st.ok()) {
        Log(LogLevel::kWarning, "hello answer failed", "error", std::string(st.message()));
        return;
    }
    s->sock = std::move(sock);
    sessions_total_.fetch_add(1);
    Log(LogLevel::kInfo, "session opened", "session", s->id, "pid", cred.pid, "uid", cred.uid);
    workers_[next_worker_.fetch_add(1) % workers_.size()]->Add(std::move(s));
}

void Server::Impl::Stop() {
    if (stopped_.exchange(true)) {
        return;
    }
    if (stop_bell_) {
        stop_bell_->Signal();
    }
    if (acceptor_.joinable()) {
        acceptor_.join();
    }
    while (handshakes_.load() > 0) {  // each ends within its 2 s socket timeout
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    metrics_endpoint_.Stop();
    for (auto& w : workers_) {
        w->Stop();  // answers what is in flight, then closes its sessions
    }
    if (listener_.valid()) {
        ::unlink(config_.listen.c_str());
    }
    // Closes the stores (everything acknowledged is in their logs). Their threads finish
    // what they hold first; answers still posted to the workers are dropped with them.
    backends_.clear();
    workers_.clear();
}

DaemonStatus Server::Impl::stats() const {
    DaemonStatus st;
    st.version = protocol::kProtocolVersion;
    st.workers = config_.workers;
    for (const auto& w : workers_) {
        st.sessions_open += w->open_sessions();
    }
    st.sessions_total = sessions_total_.load();
    st.sessions_refused = sessions_refused_.load();
    st.requests = requests.load();
    st.request_errors = request_errors.load();
    st.bad_descriptors = bad_descriptors.load();
    return st;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const DaemonConfig& config) {
    auto impl = std::make_unique<Impl>(config);
    if (absl::Status s = impl->Open(); !s.ok()) {
        return s;
    }
    return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }
void Server::Stop() { impl_->Stop(); }
DaemonStatus Server::stats() const { return impl_->stats(); }
const std::string& Server::socket_path() const { return impl_->socket_path(); }

}  // namespace zerohop

// A worker's loop: adopting sessions, serving their rings in turn, running what other
// threads post back, pushing answers, and sleeping when there is nothing to do.

#include "server/internal/worker.h"

#include <errno.h>
#include <immintrin.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "server/internal/server_impl.h"

namespace zerohop {

using protocol::Descriptor;

namespace {

constexpr int kDescriptorsPerTurn = 64;  // per session per worker turn: fairness
constexpr absl::Duration kSpinBeforeSleep = absl::Microseconds(50);

}  // namespace

thread_local Worker* Worker::tls_worker_ = nullptr;

absl::Status Worker::Start(Poller::Kind wait_with) {
    ZH_ASSIGN_OR_RETURN(auto poller, Poller::Create(wait_with));
    poller_ = std::move(poller);
    ZH_ASSIGN_OR_RETURN(auto bell, shmring::EventFd::Create());
    wake_.emplace(std::move(bell));
    ZH_RETURN_IF_ERROR(poller_->Add(wake_->fd(), kWakeKey));
    thread_ = std::thread([this] { Loop(); });
    return absl::OkStatus();
}

void Worker::Add(std::shared_ptr<Session> s) {
    {
        absl::MutexLock lock(&mu_);
        incoming_.push_back(std::move(s));
    }
    has_incoming_.store(true, std::memory_order_release);
    wake_->Signal();
}

void Worker::Post(absl::AnyInvocable<void() &&> task) {
    {
        absl::MutexLock lock(&mu_);
        posted_.push_back(std::move(task));
    }
    has_posted_.store(true, std::memory_order_release);
    wake_->Signal();
}

void Worker::Stop() {
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

void Worker::CloseScope(const std::string& id) {
    Post([this, id] {
        for (auto& s : sessions_) {
            if (s->scope != nullptr && s->scope->id == id) {
                Close(*s, "its volume was unpublished");
            }
        }
    });
}

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
        // Its volume went while it was on its way here: CloseScope looked before it came.
        if (Session& adopted = *sessions_.back();
            adopted.scope != nullptr && adopted.scope->unpublished.load(std::memory_order_acquire)) {
            Close(adopted, "its volume was unpublished");
        }
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
        // millisecond; a hook with timers sets its own limit. So too while answers wait for
        // room in a completion ring: a client makes room without ringing (it rings only to
        // submit, and one waiting for those very answers submits nothing), so we look.
        bool overflowing = std::any_of(sessions_.begin(), sessions_.end(),
                                       [](const std::shared_ptr<Session>& s) { return !s->overflow.empty(); });
        int timeout = pending ? 0 : (stopping || overflowing ? 1 : -1);
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
        idle_since = absl::Now();          // woke up: serve, then spin again briefly before sleeping
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
    metrics_.Record(call.d.op, call.backend, code,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - call.start).count(), call.d.length,
                    out_bytes);
}

void Worker::Reject(const Call& call, absl::Status why) {
    metrics_.BadDescriptor();
    ++call.s->in_flight;  // answered like any request: Push counts it out again
    if (++call.s->bad_descriptors > kMaxBadDescriptors) {
        Close(*call.s, "too many malformed descriptors");
        return;
    }
    Complete(call, why, {});
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
        // A volume's session is told of its paths as it names them, never of the root.
        err = protocol::Encode(protocol::WireStatus{
            s.scope == nullptr ? status
                               : absl::Status(status.code(), s.scope->Unmap(std::string_view(
                                                                 status.message().data(), status.message().size())))});
        body = err;
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

}  // namespace zerohop

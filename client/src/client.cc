#include "zerohop/client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "shmring/arena.h"
#include "shmring/doorbell.h"
#include "shmring/fd_passing.h"
#include "shmring/segment.h"

namespace zerohop {

using protocol::Descriptor;
using protocol::Op;

namespace client_internal {

// A completion that may keep the result buffer (returns true): it must Release it later on
// the connection it is given.
using KeepingDone = absl::AnyInvocable<bool(absl::Status, std::string_view body, uint64_t buffer,
                                            const std::shared_ptr<Connection>& conn) &&>;

// A request sent and not yet answered, with what it takes to send it again.
struct Pending {
    KeepingDone done;
    std::optional<uint64_t> allocation;  // in the client region, freed on completion
    uint64_t payload = 0;                // the body: [payload, +length) in the client region
    uint32_t length = 0;
    Op op = Op::kNop;
    uint32_t flags = 0;
    uint64_t arg0 = 0;
};

// One session with zerohopd: its socket, segment, rings and requests in flight. A client
// replaces its connection when the daemon restarts; the old one stays mapped while results
// (ObjectViews) still point into it.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    static absl::StatusOr<std::shared_ptr<Connection>> Dial(const ClientOptions& options);

    Connection(shmring::UniqueFd sock, shmring::Segment seg, shmring::EventFd bell, uint64_t session,
               absl::Duration spin)
        : sock_(std::move(sock)),
          segment_(std::move(seg)),
          doorbell_(std::move(bell)),
          session_id_(session),
          spin_(spin),
          submit_(segment_.submit_ring()),
          complete_(segment_.complete_ring()),
          alloc_(segment_.layout().client_region.size) {}

    uint64_t session_id() const { return session_id_; }
    uint64_t daemon_bytes() const { return segment_.layout().daemon_region.size; }
    uint64_t client_bytes() const { return segment_.layout().client_region.size; }
    char* client_region() const { return segment_.client_region(); }
    char* daemon_region() const { return segment_.daemon_region(); }

    std::optional<uint64_t> Allocate(size_t bytes) {
        std::lock_guard<std::mutex> lock(alloc_mu_);
        return alloc_.Allocate(bytes);
    }
    void Free(uint64_t offset) {
        std::lock_guard<std::mutex> lock(alloc_mu_);
        alloc_.Free(offset);
    }

    // Registers a request before it is pushed; false if the connection is dead (then
    // nothing was registered and `p` is untouched).
    bool Track(uint64_t id, Pending& p) {
        std::lock_guard<std::mutex> lock(pending_mu_);
        if (dead_) {
            return false;
        }
        pending_.emplace(id, std::move(p));
        return true;
    }

    // Forgets a request whose caller gives up; false if its completion already ran or is
    // running on another thread.
    bool Abandon(uint64_t id) {
        std::lock_guard<std::mutex> lock(pending_mu_);
        return pending_.erase(id) == 1;
    }

    // Marks the connection dead and hands over every request still in flight.
    std::vector<std::pair<uint64_t, Pending>> Kill() {
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

    bool dead() const {
        std::lock_guard<std::mutex> lock(pending_mu_);
        return dead_;
    }

    // Pushes a descriptor; false if the daemon is gone (its ring may never drain).
    bool Push(const Descriptor& d) {
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

    // Hands a result buffer back to the daemon.
    void Release(uint64_t buffer) {
        Descriptor r;
        r.op = static_cast<uint16_t>(Op::kRelease);
        r.offset = buffer;
        (void)Push(r);
    }

    size_t Poll() {
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

    bool HasCompletion() const {
        shmring::SegmentHeader* h = segment_.header();
        return complete_.ReadyShared(&h->complete_head);
    }

    // Spins, then sleeps, until `ready()` or a completion arrives, or `timeout`; true if
    // either happened.
    // Spins (as long as shmring::AdaptiveSpin finds worth it, at most the options' spin),
    // then sleeps.
    template <typename Ready>
    bool Wait(Ready ready, absl::Duration timeout) {
        absl::Time start = absl::Now();
        bool got = shmring::WaitForCreator(
            segment_.header(), [&] { return ready() || HasCompletion(); }, spin_.budget(), timeout);
        if (got) {
            spin_.Record(absl::Now() - start);
        }
        return got;
    }

    // Whether the daemon's end of the session socket is gone. A syscall: slow paths only.
    bool Gone() const {
        struct pollfd p = {sock_.get(), POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
    }

private:
    shmring::UniqueFd sock_;
    shmring::Segment segment_;
    shmring::EventFd doorbell_;
    uint64_t session_id_;
    shmring::AdaptiveSpin spin_;
    shmring::RingSlots submit_;
    shmring::RingSlots complete_;
    // std::mutex on the per-request path: a distribution's absl::Mutex may be built with
    // deadlock detection on, which costs every lock tens of nanoseconds.
    std::mutex alloc_mu_;
    shmring::RegionAllocator alloc_;  // under alloc_mu_
    mutable std::mutex pending_mu_;
    absl::flat_hash_map<uint64_t, Pending> pending_;  // under pending_mu_
    bool dead_ = false;                               // under pending_mu_
};

}  // namespace client_internal

using client_internal::Connection;
using client_internal::KeepingDone;
using client_internal::Pending;

namespace {

// Requests whose repetition changes nothing: retried on a new session after a restart.
bool SafeToRepeat(Op op, uint32_t flags) {
    if (flags != 0) {
        return false;  // pieces of a streamed put
    }
    switch (op) {
        case Op::kNop:
        case Op::kListContainers:
        case Op::kStat:
        case Op::kList:
        case Op::kReadlink:
        case Op::kGetObject:
        case Op::kGetItem:
        case Op::kGetItems:
        case Op::kDescribeStream:
        case Op::kSeek:
        case Op::kGetRecords:
        case Op::kSync:
        case Op::kStatus:
            return true;
        default:
            return false;
    }
}

// Room before a put buffer's bytes for the encoded request (path, condition, attributes).
constexpr size_t kPutBufferRoom = 8192;

}  // namespace

class Client::Impl {
public:
    Impl(ClientOptions o, std::shared_ptr<Connection> conn) : options_(std::move(o)), conn_(std::move(conn)) {}

    std::shared_ptr<Connection> Current() const {
        std::lock_guard<std::mutex> lock(conn_mu_);
        return conn_;
    }
    uint64_t reconnects() const { return reconnects_.load(std::memory_order_relaxed); }

    // Sends a request on the current connection (reconnecting first if it is dead); `done`
    // runs exactly once. Returns the request id.
    uint64_t Submit(Op op, std::string_view body, KeepingDone done, uint32_t flags = 0, uint64_t arg0 = 0) {
        uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
        for (int attempt = 0;; ++attempt) {
            std::shared_ptr<Connection> c = Current();
            if (SubmitOn(c, id, op, body, done, flags, arg0) != Sent::kDead) {
                return id;
            }
            if (attempt == 0) {
                Recover(c);
                continue;
            }
            (void)std::move(done)(Unreachable(), {}, 0, nullptr);
            return id;
        }
    }

    enum class Sent { kSent, kFailed, kDead };

    // Copies `body` into the client region of `c` and sends it. kFailed: `done` ran with the
    // error. kDead: nothing was sent and `done` is untouched.
    Sent SubmitOn(const std::shared_ptr<Connection>& c, uint64_t id, Op op, std::string_view body, KeepingDone& done,
                  uint32_t flags, uint64_t arg0) {
        std::optional<uint64_t> off;
        if (!body.empty()) {
            if (body.size() > c->client_bytes()) {
                (void)std::move(done)(absl::ResourceExhaustedError(absl::StrFormat(
                                          "a %d-byte request does not fit the %d-byte client buffer region",
                                          body.size(), c->client_bytes())),
                                      {}, 0, nullptr);
                return Sent::kFailed;
            }
            auto placed = AllocateWaiting(c, body.size());
            if (!placed.ok()) {
                if (absl::IsUnavailable(placed.status())) {
                    return Sent::kDead;
                }
                (void)std::move(done)(placed.status(), {}, 0, nullptr);
                return Sent::kFailed;
            }
            off = *placed;
            std::memcpy(c->client_region() + *off, body.data(), body.size());
        }
        return SubmitPlaced(c, id, op, off, off.value_or(0), static_cast<uint32_t>(body.size()), done, flags, arg0);
    }

    // Sends a request whose body already lies at [payload, +length) of the client region,
    // inside `allocation` (freed on completion, or now if nothing is sent).
    Sent SubmitPlaced(const std::shared_ptr<Connection>& c, uint64_t id, Op op, std::optional<uint64_t> allocation,
                      uint64_t payload, uint32_t length, KeepingDone& done, uint32_t flags, uint64_t arg0) {
        Descriptor d;
        d.op = static_cast<uint16_t>(op);
        d.flags = flags;
        d.arg0 = arg0;
        d.request_id = id;
        d.offset = payload;
        d.length = length;
        Pending p{std::move(done), allocation, payload, length, op, flags, arg0};
        if (!c->Track(id, p)) {
            done = std::move(p.done);
            if (allocation) {
                c->Free(*allocation);
            }
            return Sent::kDead;
        }
        if (!c->Push(d)) {
            Recover(c);  // settles the request just registered, with the others in flight
        }
        return Sent::kSent;
    }

    // Room in the client region; waits (polling completions, which free room) while it is
    // full. Unavailable if the daemon is gone meanwhile.
    absl::StatusOr<uint64_t> AllocateWaiting(const std::shared_ptr<Connection>& c, size_t bytes) {
        for (int attempt = 1;; ++attempt) {
            if (auto off = c->Allocate(bytes)) {
                return *off;
            }
            if (c->Poll() == 0) {
                std::this_thread::yield();
            }
            if (attempt % 4096 == 0 && (c->dead() || c->Gone())) {
                return absl::UnavailableError("zerohopd closed the session");
            }
            if (attempt > 1000000) {
                return absl::ResourceExhaustedError(absl::StrFormat(
                    "no room for %d bytes in the %d-byte client buffer region (held by requests in flight)", bytes,
                    c->client_bytes()));
            }
        }
    }

    // After the daemon went away: a new session, then every request that was in flight on
    // `dead` is sent again if that is safe, or fails with Unavailable (outcome unknown).
    void Recover(const std::shared_ptr<Connection>& dead) {
        std::vector<std::pair<uint64_t, Pending>> orphans;
        std::shared_ptr<Connection> fresh;
        absl::Status why;
        {
            absl::MutexLock lock(&recover_mu_);
            if (Current() != dead) {
                return;  // recovered already; its orphans were settled then
            }
            orphans = dead->Kill();
            auto c = Redial();
            if (c.ok()) {
                fresh = std::move(*c);
                std::lock_guard<std::mutex> w(conn_mu_);
                conn_ = fresh;
                reconnects_.fetch_add(1, std::memory_order_relaxed);
            } else {
                why = c.status();
            }
        }
        // Completions run outside the lock: they may submit again.
        for (auto& [id, p] : orphans) {
            if (p.allocation) {
                dead->Free(*p.allocation);
            }
            if (fresh && SafeToRepeat(p.op, p.flags)) {
                // The old segment stays mapped while `dead` is held: the body is still there.
                std::string_view body(dead->client_region() + p.payload, p.length);
                if (SubmitOn(fresh, id, p.op, body, p.done, p.flags, p.arg0) != Sent::kDead) {
                    continue;
                }
            }
            absl::Status st = fresh ? absl::UnavailableError(absl::StrFormat(
                                          "zerohopd restarted while %s was in flight; its outcome is unknown "
                                          "(check before repeating it)",
                                          protocol::OpName(p.op)))
                                    : absl::UnavailableError(absl::StrFormat(
                                          "zerohopd went away while %s was in flight and %s; its outcome is unknown",
                                          protocol::OpName(p.op), why.message()));
            (void)std::move(p.done)(st, {}, 0, nullptr);
        }
    }

    // A new session with the daemon, trying for `reconnect_timeout` (once, if the last
    // attempt already waited that long in vain).
    absl::StatusOr<std::shared_ptr<Connection>> Redial() ABSL_EXCLUSIVE_LOCKS_REQUIRED(recover_mu_) {
        if (options_.reconnect_timeout <= absl::ZeroDuration()) {
            return absl::UnavailableError("reconnecting is disabled");
        }
        absl::Time now = absl::Now();
        bool patient = now - last_failed_redial_ > options_.reconnect_timeout;
        absl::Time deadline = now + (patient ? options_.reconnect_timeout : absl::ZeroDuration());
        absl::Duration pause = absl::Milliseconds(1);
        for (;;) {
            auto c = Connection::Dial(options_);
            // Only a daemon that is not there (yet) is worth waiting for; a refusal is final.
            if (c.ok() || !absl::IsUnavailable(c.status()) || absl::Now() >= deadline) {
                if (!c.ok()) {
                    last_failed_redial_ = absl::Now();
                    return absl::UnavailableError(
                        absl::StrFormat("it did not come back within %s (%s)",
                                        absl::FormatDuration(patient ? options_.reconnect_timeout : absl::ZeroDuration()),
                                        c.status().message()));
                }
                return c;
            }
            absl::SleepFor(pause);
            pause = std::min(pause * 2, absl::Milliseconds(100));
        }
    }

    static absl::Status Unreachable() {
        return absl::UnavailableError("zerohopd is unreachable and the request was not sent");
    }

    size_t Poll() {
        std::shared_ptr<Connection> c = Current();
        size_t n = c->Poll();
        // A caller that only polls notices a dead daemon too, at a negligible cost.
        thread_local uint32_t empty_polls = 0;
        if (n == 0 && ++empty_polls % 65536 == 0 && c->Gone()) {
            Recover(c);
        }
        return n;
    }

    size_t WaitAndPoll(absl::Duration timeout) {
        std::shared_ptr<Connection> c = Current();
        size_t n = c->Poll();
        if (n > 0) {
            return n;
        }
        if (!c->Wait([] { return false; }, timeout) && c->Gone()) {
            Recover(c);
            c = Current();
        }
        return c->Poll();
    }

    // Submits and waits; `decode` turns the result body into the caller's value.
    template <typename T, typename Decode>
    absl::StatusOr<T> Call(Op op, std::string_view body, Decode decode) {
        struct Slot {
            std::atomic<bool> done{false};
            absl::StatusOr<T> result = absl::UnknownError("no completion");
        } slot;
        uint64_t id = Submit(op, body, [&slot, &decode](absl::Status st, std::string_view b, uint64_t, const auto&) {
            slot.result = st.ok() ? decode(b) : absl::StatusOr<T>(st);
            slot.done.store(true, std::memory_order_release);
            return false;
        });
        absl::Status waited = WaitFor(op, id, [&] { return slot.done.load(std::memory_order_acquire); });
        if (!waited.ok()) {
            return waited;
        }
        return std::move(slot.result);
    }

    // Submits with a keeping completion and waits for it; the completion fills the caller's
    // state. OK once the completion ran (whatever its status).
    template <typename Fn>
    absl::Status CallRaw(Op op, std::string_view body, Fn fn) {
        std::atomic<bool> ran{false};
        uint64_t id = Submit(op, body,
                             [&ran, &fn](absl::Status st, std::string_view b, uint64_t buf,
                                         const std::shared_ptr<Connection>& conn) {
                                 bool keep = fn(st, b, buf, conn);
                                 ran.store(true, std::memory_order_release);
                                 return keep;
                             });
        return WaitFor(op, id, [&] { return ran.load(std::memory_order_acquire); });
    }

    template <typename T>
    absl::StatusOr<T> CallDecoded(Op op, std::string_view body) {
        return Call<T>(op, body, [](std::string_view b) { return protocol::Decode<T>(b); });
    }

    absl::Status CallStatus(Op op, std::string_view body) {
        struct Empty {};
        return Call<Empty>(op, body, [](std::string_view) { return absl::StatusOr<Empty>(Empty{}); }).status();
    }

    // Sends a body already in place (a put buffer) and waits for the decoded result.
    absl::StatusOr<ObjectInfo> CallPlaced(const std::shared_ptr<Connection>& c, uint64_t allocation, uint64_t payload,
                                          uint32_t length) {
        std::atomic<bool> ran{false};
        absl::StatusOr<ObjectInfo> result = absl::UnknownError("no completion");
        uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
        KeepingDone done = [&](absl::Status st, std::string_view b, uint64_t, const auto&) {
            result = st.ok() ? protocol::Decode<ObjectInfo>(b) : absl::StatusOr<ObjectInfo>(st);
            ran.store(true, std::memory_order_release);
            return false;
        };
        if (SubmitPlaced(c, id, Op::kPutObject, allocation, payload, length, done, 0, 0) == Sent::kDead) {
            return absl::UnavailableError("zerohopd restarted after the put buffer was allocated; nothing was sent");
        }
        absl::Status waited = WaitFor(Op::kPutObject, id, [&] { return ran.load(std::memory_order_acquire); });
        if (!waited.ok()) {
            return waited;
        }
        return result;
    }

    // A put in chunks of a quarter of the client region, at most two in flight: the first
    // descriptor carries the request and is answered with the result; each further chunk is
    // answered when the daemon has taken its bytes. All of it on one connection: a restart
    // fails the put (outcome unknown), it is never resumed on another session.
    absl::StatusOr<ObjectInfo> PutStreamed(const PutObjectRequest& req,
                                          const std::function<absl::StatusOr<size_t>(char*, size_t)>& read) {
        std::shared_ptr<Connection> c = Current();
        const size_t chunk = c->client_bytes() / 4;
        std::string buf(chunk, '\0');
        auto fill = [&](std::string* out) -> absl::StatusOr<bool> {  // true at the end of the data
            size_t have = 0;
            while (have < chunk) {
                auto n = read(buf.data() + have, chunk - have);
                if (!n.ok()) {
                    return n.status();
                }
                if (*n == 0) {
                    out->append(buf.data(), have);
                    return true;
                }
                have += *n;
            }
            out->append(buf.data(), have);
            return false;
        };
        std::string first = protocol::Encode(req);
        auto end = fill(&first);
        if (!end.ok()) {
            return end.status();
        }
        if (*end) {  // it all fits one request after all
            return CallDecoded<ObjectInfo>(Op::kPutObject, first);
        }
        // Shared with the completions, which may run after an early return.
        struct State {
            absl::Mutex mu;
            std::atomic<bool> done{false};
            std::atomic<int> in_flight{0};
            absl::StatusOr<ObjectInfo> value = absl::UnknownError("no result");
            absl::Status chunk_error;
        };
        auto state = std::make_shared<State>();
        auto send = [&](std::string_view body, uint64_t id, KeepingDone done, uint32_t flags, uint64_t arg0) {
            if (SubmitOn(c, id, Op::kPutObject, body, done, flags, arg0) == Sent::kDead) {
                (void)std::move(done)(absl::UnavailableError("zerohopd went away during the streamed put; its "
                                                             "outcome is unknown"),
                                      {}, 0, nullptr);
            }
        };
        uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
        send(first, id,
             [state](absl::Status st, std::string_view b, uint64_t, const auto&) {
                 {
                     absl::MutexLock lock(&state->mu);
                     state->value = st.ok() ? protocol::Decode<ObjectInfo>(b) : absl::StatusOr<ObjectInfo>(st);
                 }
                 state->done.store(true, std::memory_order_release);
                 return false;
             },
             protocol::kFlagMore, 0);
        while (!*end && !state->done.load(std::memory_order_acquire)) {
            std::string next;
            end = fill(&next);
            if (!end.ok()) {
                // Abandon the upload, so that the daemon fails the put and changes nothing.
                Descriptor abort;
                abort.op = static_cast<uint16_t>(Op::kPutObject);
                abort.flags = protocol::kFlagChunk;
                abort.arg0 = id;
                abort.arg1 = protocol::kAbortUpload;
                abort.request_id = next_id_.fetch_add(1, std::memory_order_relaxed);
                (void)c->Push(abort);
                (void)WaitFor(Op::kPutObject, id, [&] { return state->done.load(std::memory_order_acquire); });
                return end.status();
            }
            // Pace: at most two chunks in the daemon's hands at once.
            absl::Status waited = WaitFor(Op::kPutObject, id, [&] {
                return state->in_flight.load(std::memory_order_acquire) < 2 || state->done.load(std::memory_order_acquire);
            });
            if (!waited.ok()) {
                return waited;
            }
            state->in_flight.fetch_add(1);
            send(next, next_id_.fetch_add(1, std::memory_order_relaxed),
                 [state](absl::Status st, std::string_view, uint64_t, const auto&) {
                     if (!st.ok()) {
                         absl::MutexLock lock(&state->mu);
                         if (state->chunk_error.ok()) {
                             state->chunk_error = st;
                         }
                     }
                     state->in_flight.fetch_sub(1, std::memory_order_release);
                     return false;
                 },
                 protocol::kFlagChunk | (*end ? 0 : protocol::kFlagMore), id);
        }
        absl::Status waited = WaitFor(Op::kPutObject, id, [&] {
            return state->done.load(std::memory_order_acquire) && state->in_flight.load(std::memory_order_acquire) == 0;
        });
        if (!waited.ok()) {
            return waited;
        }
        absl::MutexLock lock(&state->mu);
        if (!state->chunk_error.ok() && state->value.ok()) {
            return state->chunk_error;
        }
        return state->value;
    }

private:
    // Polls (and sleeps) until `done()`. A dead daemon is noticed here and recovered from
    // (the request is then retried or failed, which makes `done()` true). On a timeout the
    // request is forgotten, unless its completion is already running.
    template <typename DoneFn>
    absl::Status WaitFor(Op op, uint64_t id, DoneFn done) {
        absl::Time deadline = absl::Now() + options_.timeout;
        std::shared_ptr<Connection> c = Current();
        while (!done()) {
            if (c->Poll() > 0) {
                continue;
            }
            absl::Time now = absl::Now();
            if (now >= deadline) {
                if (c->Abandon(id) || Current()->Abandon(id)) {
                    return absl::DeadlineExceededError(absl::StrFormat(
                        "zerohopd did not answer %s within %s; the outcome is unknown", protocol::OpName(op),
                        absl::FormatDuration(options_.timeout)));
                }
                continue;  // it is completing right now
            }
            if (!c->Wait(done, std::min(deadline - now, absl::Milliseconds(200))) && !done()) {
                if (c->dead() || c->Gone()) {
                    Recover(c);
                }
                c = Current();
            }
        }
        return absl::OkStatus();
    }

    ClientOptions options_;
    mutable std::mutex conn_mu_;          // per request: see alloc_mu_
    std::shared_ptr<Connection> conn_;  // under conn_mu_
    absl::Mutex recover_mu_;
    absl::Time last_failed_redial_ ABSL_GUARDED_BY(recover_mu_) = absl::InfinitePast();
    std::atomic<uint64_t> reconnects_{0};
    std::atomic<uint64_t> next_id_{1};
};

// ---- connecting -----------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<Connection>> Connection::Dial(const ClientOptions& options) {
    shmring::UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (options.socket_path.size() >= sizeof addr.sun_path) {
        return absl::InvalidArgumentError(absl::StrFormat("socket path %s is too long", options.socket_path));
    }
    std::memcpy(addr.sun_path, options.socket_path.data(), options.socket_path.size());
    if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return absl::UnavailableError(absl::StrFormat("cannot reach zerohopd at %s: %s (is it running? set ZEROHOP_SOCKET)",
                                                      options.socket_path, strerror(errno)));
    }
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
    auto segment = shmring::Segment::Map(std::move(fds[0]));
    if (!segment.ok()) {
        return segment.status();
    }
    return std::make_shared<Connection>(std::move(sock), std::move(*segment), shmring::EventFd(std::move(fds[1])),
                                        welcome->session_id, options.spin);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
    if (options.socket_path.empty()) {
        const char* env = std::getenv("ZEROHOP_SOCKET");
        options.socket_path = env != nullptr ? env : "/run/zerohop/zerohop.sock";
    }
    if (options.access_key.empty()) {
        const char* env = std::getenv("ZEROHOP_ACCESS_KEY");
        options.access_key = env != nullptr ? env : "";
    }
    auto conn = Connection::Dial(options);
    if (!conn.ok()) {
        return conn.status();
    }
    return std::unique_ptr<Client>(new Client(std::make_unique<Impl>(std::move(options), std::move(*conn))));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;
uint64_t Client::session_id() const { return impl_->Current()->session_id(); }
uint64_t Client::reconnects() const { return impl_->reconnects(); }

// ---- operations -------------------------------------------------------------------------------

using protocol::Encode;

absl::StatusOr<std::vector<std::string>> Client::ListContainers() {
    return impl_->CallDecoded<std::vector<std::string>>(Op::kListContainers, {});
}
absl::StatusOr<ObjectInfo> Client::Stat(const Path& p) { return impl_->CallDecoded<ObjectInfo>(Op::kStat, Encode(p)); }
absl::StatusOr<ListResult> Client::List(const ListRequest& r) {
    return impl_->CallDecoded<ListResult>(Op::kList, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::Mkdir(const MkdirRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kMkdir, Encode(r));
}
absl::Status Client::Rmdir(const Path& p) { return impl_->CallStatus(Op::kRmdir, Encode(p)); }
absl::Status Client::Rename(const RenameRequest& r) { return impl_->CallStatus(Op::kRename, Encode(r)); }
absl::StatusOr<ObjectInfo> Client::Symlink(const SymlinkRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kSymlink, Encode(r));
}
absl::StatusOr<std::string> Client::Readlink(const Path& p) {
    return impl_->CallDecoded<std::string>(Op::kReadlink, Encode(p));
}
absl::Status Client::Delete(const DeleteRequest& r) { return impl_->CallStatus(Op::kDelete, Encode(r)); }
absl::StatusOr<ObjectInfo> Client::SetMetadata(const SetMetadataRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kSetMetadata, Encode(r));
}

ObjectView::ObjectView(ObjectView&& o) noexcept
    : owner_(std::move(o.owner_)), buffer_(o.buffer_), data_(o.data_), info_(std::move(o.info_)) {}

ObjectView& ObjectView::operator=(ObjectView&& o) noexcept {
    if (this != &o) {
        Reset();
        owner_ = std::move(o.owner_);
        buffer_ = o.buffer_;
        data_ = o.data_;
        info_ = std::move(o.info_);
    }
    return *this;
}

ObjectView::~ObjectView() { Reset(); }

void ObjectView::Reset() {
    if (owner_ != nullptr) {
        if (!owner_->dead()) {
            owner_->Release(buffer_);
        }
        owner_.reset();
    }
    data_ = {};
}

absl::StatusOr<ObjectView> Client::GetObjectView(const GetObjectRequest& req) {
    absl::StatusOr<ObjectView> out = absl::UnknownError("no completion");
    auto wait = impl_->CallRaw(Op::kGetObject, Encode(req),
                               [&](absl::Status st, std::string_view b, uint64_t buf, const std::shared_ptr<Connection>& c) {
                                   out = st.ok() ? ViewOf(b, buf, c) : absl::StatusOr<ObjectView>(st);
                                   return st.ok();  // keep the buffer: the view releases it
                               });
    if (!wait.ok()) {
        return wait;
    }
    return out;
}

absl::StatusOr<ObjectView> Client::ViewOf(std::string_view body, uint64_t buffer,
                                          const std::shared_ptr<client_internal::Connection>& conn) {
    ObjectView view;
    view.owner_ = conn;
    view.buffer_ = buffer;
    std::string_view rest;
    auto res = protocol::DecodePrefix<GetObjectResult>(body, &rest);
    if (!res.ok() || rest.size() != res->bytes) {
        return absl::DataLossError("get: malformed result from zerohopd");  // the view releases the buffer
    }
    view.info_ = std::move(res->info);
    view.data_ = rest;
    return view;
}

absl::StatusOr<std::string> Client::GetObject(const GetObjectRequest& req, ObjectInfo* info) {
    // Ranges of at most a quarter of the daemon region, so that results always fit.
    const uint64_t chunk = impl_->Current()->daemon_bytes() / 4;
    std::string out;
    GetObjectRequest part = req;
    uint64_t left = req.length;
    for (;;) {
        part.length = std::min(left, chunk);
        auto view = GetObjectView(part);
        if (!view.ok()) {
            return view.status();
        }
        if (info != nullptr) {
            *info = view->info();
        }
        out.append(view->data().data(), view->data().size());
        uint64_t got = view->data().size();
        left -= got;
        part.offset += got;
        if (got < part.length || left == 0) {
            return out;
        }
    }
}

absl::StatusOr<ObjectInfo> Client::PutObject(const PutObjectRequest& req, std::string_view data) {
    std::string body = Encode(req);
    if (body.size() + data.size() <= impl_->Current()->client_bytes() / 2) {
        body.append(data.data(), data.size());
        return impl_->CallDecoded<ObjectInfo>(Op::kPutObject, body);
    }
    return PutObjectFrom(req, [data](char* buf, size_t cap) mutable -> absl::StatusOr<size_t> {
        size_t n = std::min(cap, data.size());
        std::memcpy(buf, data.data(), n);
        data.remove_prefix(n);
        return n;
    });
}

absl::StatusOr<ObjectInfo> Client::PutObjectFrom(const PutObjectRequest& req,
                                                 std::function<absl::StatusOr<size_t>(char*, size_t)> read) {
    return impl_->PutStreamed(req, std::move(read));
}

PutBuffer::PutBuffer(PutBuffer&& o) noexcept
    : owner_(std::move(o.owner_)),
      offset_(o.offset_),
      data_(std::exchange(o.data_, nullptr)),
      capacity_(std::exchange(o.capacity_, 0)) {}

PutBuffer& PutBuffer::operator=(PutBuffer&& o) noexcept {
    if (this != &o) {
        Reset();
        owner_ = std::move(o.owner_);
        offset_ = o.offset_;
        data_ = std::exchange(o.data_, nullptr);
        capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
}

PutBuffer::~PutBuffer() { Reset(); }

void PutBuffer::Reset() {
    if (owner_ != nullptr) {
        owner_->Free(offset_);
        owner_.reset();
    }
    data_ = nullptr;
    capacity_ = 0;
}

absl::StatusOr<PutBuffer> Client::AllocatePutBuffer(size_t capacity) {
    std::shared_ptr<Connection> c = impl_->Current();
    if (capacity > c->client_bytes() / 2) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "a put buffer holds at most half the %d-byte client region; stream larger puts with PutObjectFrom",
            c->client_bytes()));
    }
    auto off = impl_->AllocateWaiting(c, kPutBufferRoom + capacity);
    if (!off.ok()) {
        return off.status();
    }
    PutBuffer b;
    b.owner_ = std::move(c);
    b.offset_ = *off;
    b.data_ = b.owner_->client_region() + *off + kPutBufferRoom;
    b.capacity_ = capacity;
    return b;
}

absl::StatusOr<ObjectInfo> Client::PutObject(const PutObjectRequest& req, PutBuffer buffer, size_t size) {
    if (buffer.owner_ == nullptr || size > buffer.capacity_) {
        return absl::InvalidArgumentError(absl::StrFormat("put of %d bytes from a put buffer of %d", size,
                                                          buffer.capacity_));
    }
    std::string header = Encode(req);
    if (header.size() > kPutBufferRoom) {
        // A request too large for the room before the bytes (huge attributes): copy once.
        return PutObject(req, std::string_view(buffer.data_, size));
    }
    // The request goes right before the bytes, so that the body is contiguous.
    std::shared_ptr<Connection> c = std::exchange(buffer.owner_, nullptr);  // the put frees it now
    uint64_t payload = buffer.offset_ + kPutBufferRoom - header.size();
    std::memcpy(c->client_region() + payload, header.data(), header.size());
    return impl_->CallPlaced(c, buffer.offset_, payload, static_cast<uint32_t>(header.size() + size));
}

absl::StatusOr<ObjectInfo> Client::WriteObject(const WriteObjectRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kWriteObject, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::Append(const AppendRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kAppend, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::Truncate(const TruncateRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kTruncate, Encode(r));
}
absl::StatusOr<Item> Client::GetItem(const GetItemRequest& r) { return impl_->CallDecoded<Item>(Op::kGetItem, Encode(r)); }
absl::StatusOr<GetItemsResult> Client::GetItems(const GetItemsRequest& r) {
    return impl_->CallDecoded<GetItemsResult>(Op::kGetItems, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::PutItem(const PutItemRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kPutItem, Encode(r));
}
absl::StatusOr<std::vector<absl::Status>> Client::PutItems(const std::vector<PutItemRequest>& r) {
    return impl_->CallDecoded<std::vector<absl::Status>>(Op::kPutItems, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::UpdateItem(const UpdateItemRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kUpdateItem, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::CreateStream(const CreateStreamRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kCreateStream, Encode(r));
}
absl::StatusOr<StreamDescription> Client::DescribeStream(const Path& p) {
    return impl_->CallDecoded<StreamDescription>(Op::kDescribeStream, Encode(p));
}
absl::Status Client::DeleteStream(const Path& p) { return impl_->CallStatus(Op::kDeleteStream, Encode(p)); }
absl::StatusOr<std::vector<RecordResult>> Client::PutRecords(const PutRecordsRequest& r) {
    return impl_->CallDecoded<std::vector<RecordResult>>(Op::kPutRecords, Encode(r));
}
absl::StatusOr<StreamLocation> Client::Seek(const SeekRequest& r) {
    return impl_->CallDecoded<StreamLocation>(Op::kSeek, Encode(r));
}
absl::StatusOr<GetRecordsResult> Client::GetRecords(const GetRecordsRequest& r) {
    return impl_->CallDecoded<GetRecordsResult>(Op::kGetRecords, Encode(r));
}
absl::Status Client::Sync() { return impl_->CallStatus(Op::kSync, {}); }
absl::StatusOr<protocol::DaemonStatus> Client::Status() {
    return impl_->CallDecoded<protocol::DaemonStatus>(Op::kStatus, {});
}
absl::Status Client::Nop() { return impl_->CallStatus(Op::kNop, {}); }

// ---- asynchronous forms -------------------------------------------------------------------------

template <typename T>
void Client::CallAsync(Op op, std::string body, Callback<T> done) {
    impl_->Submit(op, body,
                  [done = std::move(done)](absl::Status st, std::string_view b, uint64_t, const auto&) mutable {
                      std::move(done)(st.ok() ? protocol::Decode<T>(b) : absl::StatusOr<T>(st));
                      return false;
                  });
}

void Client::CallStatusAsync(Op op, std::string body, StatusCallback done) {
    impl_->Submit(op, body, [done = std::move(done)](absl::Status st, std::string_view, uint64_t, const auto&) mutable {
        std::move(done)(st);
        return false;
    });
}

void Client::ListContainersAsync(Callback<std::vector<std::string>> done) {
    CallAsync(Op::kListContainers, {}, std::move(done));
}
void Client::StatAsync(const Path& p, Callback<ObjectInfo> done) { CallAsync(Op::kStat, Encode(p), std::move(done)); }
void Client::ListAsync(const ListRequest& r, Callback<ListResult> done) {
    CallAsync(Op::kList, Encode(r), std::move(done));
}
void Client::MkdirAsync(const MkdirRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kMkdir, Encode(r), std::move(done));
}
void Client::RmdirAsync(const Path& p, StatusCallback done) { CallStatusAsync(Op::kRmdir, Encode(p), std::move(done)); }
void Client::RenameAsync(const RenameRequest& r, StatusCallback done) {
    CallStatusAsync(Op::kRename, Encode(r), std::move(done));
}
void Client::SymlinkAsync(const SymlinkRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kSymlink, Encode(r), std::move(done));
}
void Client::ReadlinkAsync(const Path& p, Callback<std::string> done) {
    CallAsync(Op::kReadlink, Encode(p), std::move(done));
}
void Client::DeleteAsync(const DeleteRequest& r, StatusCallback done) {
    CallStatusAsync(Op::kDelete, Encode(r), std::move(done));
}
void Client::SetMetadataAsync(const SetMetadataRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kSetMetadata, Encode(r), std::move(done));
}
void Client::GetObjectAsync(const GetObjectRequest& r, Callback<ObjectView> done) {
    impl_->Submit(Op::kGetObject, Encode(r),
                  [done = std::move(done)](absl::Status st, std::string_view b, uint64_t buf,
                                           const std::shared_ptr<Connection>& c) mutable {
                      std::move(done)(st.ok() ? ViewOf(b, buf, c) : absl::StatusOr<ObjectView>(st));
                      return st.ok();  // the view releases the buffer
                  });
}
void Client::PutObjectAsync(const PutObjectRequest& r, std::string_view data, Callback<ObjectInfo> done) {
    std::string body = Encode(r);
    if (body.size() + data.size() > impl_->Current()->client_bytes() / 2) {
        std::move(done)(absl::InvalidArgumentError(
            "an asynchronous put holds at most half the client region; stream larger puts with PutObjectFrom"));
        return;
    }
    body.append(data.data(), data.size());
    CallAsync(Op::kPutObject, std::move(body), std::move(done));
}
void Client::WriteObjectAsync(const WriteObjectRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kWriteObject, Encode(r), std::move(done));
}
void Client::AppendAsync(const AppendRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kAppend, Encode(r), std::move(done));
}
void Client::TruncateAsync(const TruncateRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kTruncate, Encode(r), std::move(done));
}
void Client::GetItemAsync(const GetItemRequest& r, Callback<Item> done) {
    CallAsync(Op::kGetItem, Encode(r), std::move(done));
}
void Client::GetItemsAsync(const GetItemsRequest& r, Callback<GetItemsResult> done) {
    CallAsync(Op::kGetItems, Encode(r), std::move(done));
}
void Client::PutItemAsync(const PutItemRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kPutItem, Encode(r), std::move(done));
}
void Client::PutItemsAsync(const std::vector<PutItemRequest>& r, Callback<std::vector<absl::Status>> done) {
    CallAsync(Op::kPutItems, Encode(r), std::move(done));
}
void Client::UpdateItemAsync(const UpdateItemRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kUpdateItem, Encode(r), std::move(done));
}
void Client::CreateStreamAsync(const CreateStreamRequest& r, Callback<ObjectInfo> done) {
    CallAsync(Op::kCreateStream, Encode(r), std::move(done));
}
void Client::DescribeStreamAsync(const Path& p, Callback<StreamDescription> done) {
    CallAsync(Op::kDescribeStream, Encode(p), std::move(done));
}
void Client::DeleteStreamAsync(const Path& p, StatusCallback done) {
    CallStatusAsync(Op::kDeleteStream, Encode(p), std::move(done));
}
void Client::PutRecordsAsync(const PutRecordsRequest& r, Callback<std::vector<RecordResult>> done) {
    CallAsync(Op::kPutRecords, Encode(r), std::move(done));
}
void Client::SeekAsync(const SeekRequest& r, Callback<StreamLocation> done) {
    CallAsync(Op::kSeek, Encode(r), std::move(done));
}
void Client::GetRecordsAsync(const GetRecordsRequest& r, Callback<GetRecordsResult> done) {
    CallAsync(Op::kGetRecords, Encode(r), std::move(done));
}
void Client::SyncAsync(StatusCallback done) { CallStatusAsync(Op::kSync, {}, std::move(done)); }
void Client::StatusAsync(Callback<protocol::DaemonStatus> done) { CallAsync(Op::kStatus, {}, std::move(done)); }
void Client::NopAsync(StatusCallback done) { CallStatusAsync(Op::kNop, {}, std::move(done)); }

void Client::Submit(protocol::Op op, std::string body, RawDone done) {
    impl_->Submit(op, body, [done = std::move(done)](absl::Status st, std::string_view b, uint64_t, const auto&) mutable {
        std::move(done)(st, b);
        return false;
    });
}
size_t Client::Poll() { return impl_->Poll(); }
size_t Client::WaitAndPoll(absl::Duration timeout) { return impl_->WaitAndPoll(timeout); }

}  // namespace zerohop

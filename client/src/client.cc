// libzerohop's calls: sending requests on the current connection, waiting for them,
// reconnecting after a daemon restart, and every operation's synchronous and asynchronous
// form (produced from wire/operation_table.h).

#include "zerohop/client.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "connection.h"
#include "wire/protocol.h"

namespace zerohop {

using protocol::Descriptor;
using protocol::Op;

namespace {

// Requests whose repetition changes nothing: sent again on a new session after a restart.
bool SafeToRepeat(Op op, uint32_t flags) {
    return flags == 0 && protocol::IsRepeatable(op);  // (flags: pieces of a streamed put)
}

// Room before a put buffer's bytes for the encoded request (path, condition, attributes).
constexpr size_t kPutBufferRoom = 8192;

// The innermost CallDeadline of this thread (InfiniteFuture: none).
thread_local absl::Time call_deadline = absl::InfiniteFuture();

}  // namespace

CallDeadline::CallDeadline(absl::Time deadline) : previous_(call_deadline) { call_deadline = deadline; }
CallDeadline::~CallDeadline() { call_deadline = previous_; }

class Client::Impl {
public:
    using KeepingDone = Connection::KeepingDone;
    using Pending = Connection::Pending;

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
    absl::StatusOr<T> CallWith(Op op, std::string_view body, Decode decode) {
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
        ZH_RETURN_IF_ERROR(waited);
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
        return CallWith<T>(op, body, [](std::string_view b) { return protocol::Decode<T>(b); });
    }

    absl::Status CallStatus(Op op, std::string_view body) {
        struct Empty {};
        return CallWith<Empty>(op, body, [](std::string_view) { return absl::StatusOr<Empty>(Empty{}); }).status();
    }

    // Operation `op` of the table, its request encoded in `body`: waits for its result (its
    // status alone when the table says NoResult).
    template <Op op>
    auto Call(std::string_view body) {
        using Result = typename protocol::OpTraits<op>::Result;
        if constexpr (std::is_same_v<Result, NoResult>) {
            return CallStatus(op, body);
        } else {
            return CallDecoded<Result>(op, body);
        }
    }

    // The same without waiting: `done` gets the result from Poll() (or a waiting call).
    template <Op op, typename Done>
    void CallAsync(std::string_view body, Done done) {
        using Result = typename protocol::OpTraits<op>::Result;
        Submit(op, body, [done = std::move(done)](absl::Status st, std::string_view b, uint64_t, const auto&) mutable {
            if constexpr (std::is_same_v<Result, NoResult>) {
                std::move(done)(st);
            } else {
                std::move(done)(st.ok() ? protocol::Decode<Result>(b) : absl::StatusOr<Result>(st));
            }
            return false;
        });
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
        ZH_RETURN_IF_ERROR(waited);
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
                ZH_ASSIGN_OR_RETURN(auto n, read(buf.data() + have, chunk - have));
                if (n == 0) {
                    out->append(buf.data(), have);
                    return true;
                }
                have += n;
            }
            out->append(buf.data(), have);
            return false;
        };
        std::string first = protocol::Encode(req);
        absl::StatusOr<bool> end = fill(&first);  // reassigned below: kept as a StatusOr
        ZH_RETURN_IF_ERROR(end.status());
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
            ZH_RETURN_IF_ERROR(waited);
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
        ZH_RETURN_IF_ERROR(waited);
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
        absl::Time deadline = std::min(absl::Now() + options_.timeout, call_deadline);
        std::shared_ptr<Connection> c = Current();
        while (!done()) {
            if (c->Poll() > 0) {
                continue;
            }
            absl::Time now = absl::Now();
            if (now >= deadline) {
                if (c->Abandon(id) || Current()->Abandon(id)) {
                    return absl::DeadlineExceededError(absl::StrFormat(
                        "zerohopd did not answer %s %s; the outcome is unknown", protocol::OpName(op),
                        deadline == call_deadline ? std::string("by the caller's deadline")
                                                  : "within " + absl::FormatDuration(options_.timeout)));
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


absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
    if (options.socket_path.empty()) {
        const char* env = std::getenv("ZEROHOP_SOCKET");
        options.socket_path = env != nullptr ? env : "/run/zerohop/zerohop.sock";
    }
    if (options.access_key.empty()) {
        const char* env = std::getenv("ZEROHOP_ACCESS_KEY");
        options.access_key = env != nullptr ? env : "";
    }
    ZH_ASSIGN_OR_RETURN(auto conn, Connection::Dial(options));
    return std::unique_ptr<Client>(new Client(std::make_unique<Impl>(std::move(options), std::move(conn))));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;
uint64_t Client::session_id() const { return impl_->Current()->session_id(); }
uint64_t Client::reconnects() const { return impl_->reconnects(); }

// ---- operations ---------------------------------------------------------------------------

namespace {

template <typename T>
using SyncResult = std::conditional_t<std::is_same_v<T, NoResult>, absl::Status, absl::StatusOr<T>>;
template <typename T>
using AsyncDone = std::conditional_t<std::is_same_v<T, NoResult>, StatusCallback, Callback<T>>;

}  // namespace

// Every operation of the table but gets and puts (whose bytes travel beside the request,
// below): its synchronous and asynchronous form.
#define ZH_CLIENT_CALLS_Plain(Name, Request, Result)                          \
    SyncResult<Result> Client::Name(const Request& req) {                    \
        return impl_->Call<Op::k##Name>(protocol::Encode(req));              \
    }                                                                         \
    void Client::Name##Async(const Request& req, AsyncDone<Result> done) {    \
        impl_->CallAsync<Op::k##Name>(protocol::Encode(req), std::move(done)); \
    }
#define ZH_CLIENT_CALLS_NoBody(Name, Request, Result)                                                         \
    SyncResult<Result> Client::Name() { return impl_->Call<Op::k##Name>({}); }                               \
    void Client::Name##Async(AsyncDone<Result> done) { impl_->CallAsync<Op::k##Name>({}, std::move(done)); }
#define ZH_CLIENT_CALLS_Sink(Name, Request, Result)
#define ZH_CLIENT_CALLS_Source(Name, Request, Result)
#define ZH_CLIENT_CALLS_File(Name, Request, Result)
#define ZH_CLIENT_CALLS_Control(Name, Request, Result)
#define ZH_CLIENT_CALLS(Name, number, name, Request, Result, access, repeat, shape) \
    ZH_CLIENT_CALLS_##shape(Name, Request, Result)
ZH_OPERATIONS(ZH_CLIENT_CALLS)
#undef ZH_CLIENT_CALLS
#undef ZH_CLIENT_CALLS_Plain
#undef ZH_CLIENT_CALLS_NoBody
#undef ZH_CLIENT_CALLS_Sink
#undef ZH_CLIENT_CALLS_Source
#undef ZH_CLIENT_CALLS_File
#undef ZH_CLIENT_CALLS_Control

// ---- local files: the descriptor beside the answer -------------------------------------------

absl::StatusOr<ObjectFile> Client::FileOf(const absl::Status& st, std::string_view body,
                                          const std::shared_ptr<Connection>& conn) {
    ZH_RETURN_IF_ERROR(st);
    ZH_ASSIGN_OR_RETURN(auto answer, protocol::Decode<ObjectFileAnswer>(body));
    if (answer.file_tag == 0) {
        return ObjectFile(std::move(answer.info), -1);
    }
    ZH_ASSIGN_OR_RETURN(auto fd, conn->TakeFile(answer.file_tag));
    return ObjectFile(std::move(answer.info), fd.release());
}

absl::StatusOr<ObjectFile> Client::OpenObjectFile(const Path& path) {
    absl::StatusOr<ObjectFile> out = absl::UnknownError("no completion");
    ZH_RETURN_IF_ERROR(impl_->CallRaw(Op::kOpenObjectFile, protocol::Encode(path),
                                      [&](absl::Status st, std::string_view b, uint64_t, const auto& conn) {
                                          out = FileOf(st, b, conn);
                                          return false;
                                      }));
    return out;
}

void Client::OpenObjectFileAsync(const Path& path, Callback<ObjectFile> done) {
    impl_->Submit(Op::kOpenObjectFile, protocol::Encode(path),
                  [done = std::move(done)](absl::Status st, std::string_view b, uint64_t, const auto& conn) mutable {
                      std::move(done)(FileOf(st, b, conn));
                      return false;
                  });
}

// ---- gets and puts: the bytes beside the request --------------------------------------------

using protocol::Encode;

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
    ZH_RETURN_IF_ERROR(wait);
    return out;
}

absl::StatusOr<ObjectView> Client::ViewOf(std::string_view body, uint64_t buffer,
                                          const std::shared_ptr<Connection>& conn) {
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
        ZH_ASSIGN_OR_RETURN(auto view, GetObjectView(part));
        if (info != nullptr) {
            *info = view.info();
        }
        out.append(view.data().data(), view.data().size());
        uint64_t got = view.data().size();
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
    ZH_ASSIGN_OR_RETURN(auto off, impl_->AllocateWaiting(c, kPutBufferRoom + capacity));
    PutBuffer b;
    b.owner_ = std::move(c);
    b.offset_ = off;
    b.data_ = b.owner_->client_region() + off + kPutBufferRoom;
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
    impl_->CallAsync<Op::kPutObject>(body, std::move(done));
}
size_t Client::Poll() { return impl_->Poll(); }
size_t Client::WaitAndPoll(absl::Duration timeout) { return impl_->WaitAndPoll(timeout); }

}  // namespace zerohop

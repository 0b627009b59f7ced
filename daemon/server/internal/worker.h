#pragma once
// A worker thread of zerohopd: it owns a share of the sessions, serves their rings in turn,
// hands each request to its backend (dispatch.cc), pushes the answers, and sleeps in its
// poller when there is nothing to do (worker.cc). Work finished on other threads (backends'
// threads, uploads) comes back to it as posted tasks: a session is only ever touched by its
// worker.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "backend/backend.h"
#include "server/internal/session.h"
#include "server/metrics.h"
#include "server/poller.h"
#include "server/server.h"
#include "shmring/doorbell.h"
#include "wire/protocol.h"

namespace zerohop {

class Worker {
public:
    Worker(Server::Impl* server, size_t index) : server_(server), index_(index) {}

    absl::Status Start(Poller::Kind wait_with);
    std::string_view poller_name() const { return poller_ ? poller_->name() : "none"; }

    // Hands a new session to this worker (from the acceptor).
    void Add(std::shared_ptr<Session> s);

    // Runs `task` on the worker's thread (for work finished elsewhere: backends' own
    // threads, uploads).
    void Post(absl::AnyInvocable<void() &&> task);

    // Stops taking requests, lets those in flight finish and answers them (for at most
    // kDrainTime), then closes every session and returns.
    void Stop();

    size_t open_sessions() const { return open_.load(); }

    // From any thread: closes this worker's sessions of the volume scope `id`.
    void CloseScope(const std::string& id);
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

    // The completion of a backend call whose result is `T` (NoResult: a status alone).
    template <typename T>
    DoneFor<T> Reply(const Call& call) {
        if constexpr (std::is_same_v<T, NoResult>) {
            return [this, call](absl::Status st) { Finish(call, std::move(st), {}); };
        } else {
            return [this, call](absl::StatusOr<T> r) {
                if (!r.ok()) {
                    return Finish(call, r.status(), {});
                }
                Finish(call, absl::OkStatus(), protocol::Encode(*r));
            };
        }
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
    static constexpr uint32_t kMaxBadDescriptors = 1000;  // then the session is closed
    // Poller keys: two per session (doorbell, socket), never reused.
    static uint64_t DoorbellKey(const Session& s) { return s.id * 2; }
    static uint64_t SocketKey(const Session& s) { return s.id * 2 + 1; }

    // worker.cc: the loop, sessions, answers.
    void Loop();
    void JoinBackends();
    bool PollHooks(bool all);
    void Adopt();
    bool Serve(const std::shared_ptr<Session>& s);
    void Close(Session& s, std::string_view why);
    void CancelUploads(Session& s);
    void Woken(uint64_t key);
    // Answers a malformed descriptor with `why` (InvalidArgument unless given a status),
    // counting it; a session that sends too many is closed.
    void Reject(const Call& call, std::string_view why) { Reject(call, absl::InvalidArgumentError(std::string(why))); }
    void Reject(const Call& call, absl::Status why);
    void Complete(const Call& call, const absl::Status& status, std::string_view body);
    // Completes with a result already placed in the daemon region: [payload, +length) inside
    // the allocation at `buffer`.
    void CompleteInPlace(const Call& call, uint64_t buffer, uint64_t payload, uint32_t length);
    void Push(Session& s, const protocol::Descriptor& c);
    void Record(const Call& call, int code, uint64_t out_bytes);
    bool FlushOverflow(Session& s);

    // dispatch.cc: from a descriptor to its backend.
    void Dispatch(const std::shared_ptr<Session>& s, const protocol::Descriptor& d);
    // Operation `op`: its body decoded, checked, routed and handed to its backend. One
    // generic form for the table's plain operations, and a specialization for each that
    // needs more (dispatch.cc says which).
    template <protocol::Op op>
    void Serve(Call& call, std::string body);
    // The decoded request of `op`, from its path on: routed, checked, stamped with the
    // caller, handed to the backend; `keep` lives until the backend is done.
    template <protocol::Op op, typename Request>
    void Forward(Call& call, Request req, std::shared_ptr<const std::string> keep = nullptr);
    // The backend serving `path` if the session's key grants `access` there; notes the
    // backend's label in `call`.
    // For a volume's session, `path` is first mapped below the volume's root (in place).
    absl::StatusOr<Backend*> Route(Call& call, Path& path, protocol::Access access);
    void GetObject(Call& call, GetObjectRequest req, Backend* b);

    // uploads.cc: puts streamed in chunks.
    void StartUpload(Call& call, const std::string& body);
    void AddChunk(const Call& call);

    static thread_local Worker* tls_worker_;

    Server::Impl* server_;
    size_t index_;
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

}  // namespace zerohop

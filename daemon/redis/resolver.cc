#include "redis/resolver.h"

#include <netdb.h>

#include <cstring>
#include <deque>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace zerohop::redis {
namespace {

// getaddrinfo for `ep`; `numeric_only` refuses anything that needs a lookup.
absl::StatusOr<std::vector<SocketAddress>> Resolve(const Endpoint& ep, bool numeric_only) {
    addrinfo hints = {};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0);
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
    if (rc != 0) {
        return absl::UnavailableError(absl::StrFormat("Redis %s: %s", ep.ToString(), gai_strerror(rc)));
    }
    std::vector<SocketAddress> out;
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
        if (a->ai_addrlen <= sizeof(sockaddr_storage)) {
            SocketAddress s;
            std::memcpy(&s.addr, a->ai_addr, a->ai_addrlen);
            s.len = a->ai_addrlen;
            out.push_back(s);
        }
    }
    ::freeaddrinfo(res);
    if (out.empty()) {
        return absl::UnavailableError(absl::StrFormat("Redis %s: no address", ep.ToString()));
    }
    return out;
}

}  // namespace

struct Resolver::State {
    struct Entry {
        std::vector<SocketAddress> addresses;  // the last good answer
        absl::Status error;                    // the last failed one, if later
        absl::Time next_lookup = absl::InfinitePast();
        bool pending = false;
    };

    absl::Duration ttl, retry;
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Entry> entries ABSL_GUARDED_BY(mu);  // by "host:port"
    std::deque<Endpoint> queue ABSL_GUARDED_BY(mu);
    bool running ABSL_GUARDED_BY(mu) = false;  // a lookup thread exists
    bool stopping ABSL_GUARDED_BY(mu) = false;

    // The lookup thread: ends when the queue is empty (started again by the next miss).
    static void Run(std::shared_ptr<State> self) {
        absl::MutexLock lock(&self->mu);
        while (!self->stopping && !self->queue.empty()) {
            Endpoint ep = std::move(self->queue.front());
            self->queue.pop_front();
            self->mu.Unlock();
            auto r = Resolve(ep, /*numeric_only=*/false);
            self->mu.Lock();
            Entry& e = self->entries[ep.ToString()];
            e.pending = false;
            absl::Time now = absl::Now();
            if (r.ok()) {
                e.addresses = std::move(*r);
                e.error = absl::OkStatus();
                e.next_lookup = now + self->ttl;
            } else {
                e.error = r.status();
                e.next_lookup = now + self->retry;
            }
        }
        self->running = false;
    }
};

Resolver::Resolver(absl::Duration ttl, absl::Duration retry) : state_(std::make_shared<State>()) {
    state_->ttl = ttl;
    state_->retry = retry;
}

Resolver::~Resolver() {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;  // a lookup in getaddrinfo ends with it; the state outlives us
}

absl::StatusOr<std::vector<SocketAddress>> Resolver::Lookup(const Endpoint& ep, bool* pending) {
    *pending = false;
    if (auto numeric = Resolve(ep, /*numeric_only=*/true); numeric.ok()) {
        return numeric;
    }
    State& s = *state_;
    absl::MutexLock lock(&s.mu);
    State::Entry& e = s.entries[ep.ToString()];
    if (!e.pending && absl::Now() >= e.next_lookup) {
        e.pending = true;
        s.queue.push_back(ep);
        if (!s.running) {
            s.running = true;
            std::thread(State::Run, state_).detach();
        }
    }
    if (!e.addresses.empty()) {
        return e.addresses;  // also while a newer answer is looked up, or the last lookup failed
    }
    if (e.pending) {
        *pending = true;
        return absl::UnavailableError(absl::StrFormat("Redis %s: looking up the host name", ep.ToString()));
    }
    return e.error.ok() ? absl::UnavailableError(absl::StrFormat("Redis %s: no address", ep.ToString())) : e.error;
}

}  // namespace zerohop::redis

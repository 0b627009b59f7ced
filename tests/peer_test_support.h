#pragma once
// What the peer transport's tests share: the key both nodes hold, waiting for a call's
// outcome, waiting for a condition, and a server that holds the requests it gets.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "rdma/peer_loop.h"

namespace zerohop::peer::testing {

inline const std::string kSecret = "0123456789abcdef-shared-by-the-nodes";

// The data node's keys: node-a's only.
inline ListenerHandshake::SecretOf Keys() {
    return [](std::string_view id) -> std::optional<std::string> {
        return id == "node-a" ? std::optional<std::string>(kSecret) : std::nullopt;
    };
}

// Waits for one outcome of type T (a call's answer, or a landed one).
template <typename T>
struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    absl::StatusOr<T> result = absl::UnknownError("never answered");
    auto Callback() {
        return [this](absl::StatusOr<T> r) {
            std::lock_guard<std::mutex> lock(mu);
            result = std::move(r);
            finished = true;
            cv.notify_all();
        };
    }
    bool Done() {
        std::lock_guard<std::mutex> lock(mu);
        return finished;
    }
    absl::StatusOr<T> Get() {
        std::unique_lock<std::mutex> lock(mu);
        EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return finished; })) << "no outcome in 10 s";
        return result;
    }
};

// A data node's handler for the landing tests: "land:N" answers N bytes for the caller's
// landing (not all alike: misplaced bytes show), then "tail"; anything else is echoed.
inline void ServeEchoAndLandings(PeerRequest r) {
    if (r.body().rfind("land:", 0) == 0) {
        size_t n = std::stoul(r.body().substr(5));
        std::string answer(n, 'L');
        for (size_t i = 0; i < n; i += 4096) {
            answer[i] = static_cast<char>('a' + (i / 4096) % 26);
        }
        answer += "tail";
        return r.Respond(absl::OkStatus(), std::move(answer), n);
    }
    std::string body = r.body();
    r.Respond(absl::OkStatus(), "echo:" + body);
}

template <typename Pred>
bool Eventually(Pred pred, absl::Duration within = absl::Seconds(5)) {
    absl::Time until = absl::Now() + within;
    while (!pred()) {
        if (absl::Now() > until) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

// A server's handler that answers nothing: it keeps the requests for the test to answer.
struct HeldRequests {
    std::mutex mu;
    std::vector<PeerRequest> requests;
    std::function<void(PeerRequest)> Handler() {
        return [this](PeerRequest r) {
            std::lock_guard<std::mutex> lock(mu);
            requests.push_back(std::move(r));
        };
    }
    size_t size() {
        std::lock_guard<std::mutex> lock(mu);
        return requests.size();
    }
    std::vector<PeerRequest> Take() {
        std::lock_guard<std::mutex> lock(mu);
        return std::exchange(requests, {});
    }
};

}  // namespace zerohop::peer::testing

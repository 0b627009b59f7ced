#pragma once
// A fixed set of threads for a backend's blocking work (disk reads, scans, fsync), so
// that the daemon's workers, which call backends, never wait on them.
//
//   TaskPool pool("embedded-io", 4);
//   pool.Run([req, done = std::move(done)]() mutable { std::move(done)(SlowCall(req)); });
//
// Destruction runs every task already queued, then joins the threads.

#include <cstddef>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace zerohop {

class TaskPool {
public:
    TaskPool(std::string name, size_t threads);
    ~TaskPool();
    TaskPool(const TaskPool&) = delete;
    TaskPool& operator=(const TaskPool&) = delete;

    void Run(absl::AnyInvocable<void() &&> task);

    size_t threads() const { return threads_.size(); }

private:
    void Loop();

    std::string name_;
    absl::Mutex mu_;
    std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
    bool stopping_ ABSL_GUARDED_BY(mu_) = false;
    std::vector<std::thread> threads_;
};

}  // namespace zerohop

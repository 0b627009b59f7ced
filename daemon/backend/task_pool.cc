#include "backend/task_pool.h"

#include <pthread.h>

namespace zerohop {

TaskPool::TaskPool(std::string name, size_t threads) : name_(std::move(name)) {
    threads_.reserve(threads);
    for (size_t i = 0; i < threads; ++i) {
        threads_.emplace_back([this] { Loop(); });
        // Visible in top and gdb; the kernel keeps at most 15 characters.
        pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
    }
}

TaskPool::~TaskPool() {
    {
        absl::MutexLock lock(&mu_);
        stopping_ = true;
    }
    for (std::thread& t : threads_) {
        t.join();
    }
}

void TaskPool::Run(absl::AnyInvocable<void() &&> task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
}

void TaskPool::Loop() {
    for (;;) {
        absl::AnyInvocable<void() &&> task;
        {
            absl::MutexLock lock(&mu_);
            mu_.Await(absl::Condition(
                +[](TaskPool* p) ABSL_NO_THREAD_SAFETY_ANALYSIS { return p->stopping_ || !p->tasks_.empty(); },
                this));
            if (tasks_.empty()) {
                return;  // stopping, and nothing left to run
            }
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        std::move(task)();
    }
}

}  // namespace zerohop

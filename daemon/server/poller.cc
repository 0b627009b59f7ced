#include "server/poller.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>

#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "shmring/unique_fd.h"

namespace zerohop {
namespace {

constexpr unsigned kWatch = POLLIN | POLLRDHUP;

// io_uring: each descriptor has one multishot poll armed for as long as it is watched.
class UringPoller : public Poller {
public:
    ~UringPoller() override {
        if (ready_) {
            io_uring_queue_exit(&ring_);
        }
    }

    absl::Status Init() {
        int r = io_uring_queue_init(256, &ring_, 0);
        if (r < 0) {
            return absl::UnavailableError(absl::StrFormat("io_uring_queue_init: %s", strerror(-r)));
        }
        ready_ = true;
        return absl::OkStatus();
    }

    std::string_view name() const override { return "io_uring"; }

    // Submitted with the next Wait: a poll looks at the descriptor when it is armed, so
    // nothing that happens in between is missed, and a worker adopting a session spends
    // no syscall on it. A poll that cannot be armed is reported as ready (the caller then
    // finds the descriptor's problem itself).
    absl::Status Add(int fd, uint64_t key) override {
        watched_[key] = fd;
        Arm(fd, key);
        return absl::OkStatus();
    }

    void Remove(int fd, uint64_t key) override {
        (void)fd;
        if (watched_.erase(key) == 0) {
            return;
        }
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_poll_remove(sqe, key);
        io_uring_sqe_set_data64(sqe, kRemoval);
        // Submitted with the next Wait, which a worker reaches within microseconds: until
        // then the poll keeps a reference on the file.
    }

    size_t Wait(std::vector<uint64_t>* ready, int timeout_ms) override {
        io_uring_cqe* cqe = nullptr;
        if (timeout_ms < 0) {
            (void)io_uring_submit_and_wait(&ring_, 1);
        } else if (timeout_ms > 0) {
            struct __kernel_timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000LL};
            (void)io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        } else {
            (void)io_uring_submit(&ring_);
        }
        size_t n = 0;
        unsigned head;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            uint64_t key = io_uring_cqe_get_data64(cqe);
            auto it = watched_.find(key);
            if (key == kRemoval || it == watched_.end()) {
                continue;  // a removal's own answer, or the end of a removed poll
            }
            if (cqe->res > 0) {
                ready->push_back(key);
                ++n;
            }
            if (!(cqe->flags & IORING_CQE_F_MORE)) {
                // The kernel ended this poll (an error, or it could not stay armed): re-arm,
                // and report the key so that the caller looks at the descriptor.
                Arm(it->second, key);
                if (cqe->res <= 0) {
                    ready->push_back(key);
                    ++n;
                }
            }
        }
        io_uring_cq_advance(&ring_, seen);
        return n;
    }

private:
    static constexpr uint64_t kRemoval = 0;

    io_uring_sqe* Sqe() {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (sqe == nullptr) {  // the submission queue is full: hand it to the kernel
            (void)io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void Arm(int fd, uint64_t key) {
        io_uring_sqe* sqe = Sqe();
        io_uring_prep_poll_multishot(sqe, fd, kWatch);
        io_uring_sqe_set_data64(sqe, key);
    }

    io_uring ring_{};
    bool ready_ = false;
    absl::flat_hash_map<uint64_t, int> watched_;  // key -> fd
};

class EpollPoller : public Poller {
public:
    absl::Status Init() {
        fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
        if (!fd_.valid()) {
            return absl::InternalError(absl::StrFormat("epoll_create1: %s", strerror(errno)));
        }
        return absl::OkStatus();
    }

    std::string_view name() const override { return "epoll"; }

    absl::Status Add(int fd, uint64_t key) override {
        struct epoll_event ev = {};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = key;
        if (::epoll_ctl(fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
            return absl::InternalError(absl::StrFormat("epoll_ctl add fd %d: %s", fd, strerror(errno)));
        }
        return absl::OkStatus();
    }

    void Remove(int fd, uint64_t) override { (void)::epoll_ctl(fd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

    size_t Wait(std::vector<uint64_t>* ready, int timeout_ms) override {
        struct epoll_event events[64];
        int n = ::epoll_wait(fd_.get(), events, 64, timeout_ms);
        for (int i = 0; i < n; ++i) {
            uint64_t key = events[i].data.u64;  // epoll_event is packed: copy before binding
            ready->push_back(key);
        }
        return n > 0 ? static_cast<size_t>(n) : 0;
    }

private:
    shmring::UniqueFd fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Poller>> Poller::Create(Kind kind) {
    if (kind != Kind::kEpoll) {
        auto uring = std::make_unique<UringPoller>();
        absl::Status s = uring->Init();
        if (s.ok()) {
            return std::unique_ptr<Poller>(std::move(uring));
        }
        if (kind == Kind::kUring) {
            return s;
        }
    }
    auto epoll = std::make_unique<EpollPoller>();
    ZH_RETURN_IF_ERROR(epoll->Init());
    return std::unique_ptr<Poller>(std::move(epoll));
}

}  // namespace zerohop

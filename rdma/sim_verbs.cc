#include "rdma/sim_verbs.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "shmring/unique_fd.h"

namespace zerohop::peer::verbs {

struct SimDevice::State {
    std::string name;
    std::mutex mu;
    absl::flat_hash_map<uint32_t, MemoryRegion> regions;  // by rkey
    std::mt19937 keys{std::random_device{}()};
};

namespace {

struct Recv {
    uint64_t wr_id;
    char* addr;
    size_t length;
};

struct Op {
    bool write = false;  // else a send
    uint64_t wr_id = 0;
    const char* src = nullptr;
    std::string inline_bytes;  // a copy, when posted inline
    bool is_inline = false;
    size_t length = 0;
    uint64_t remote_addr = 0;
    uint32_t rkey = 0;
    std::optional<uint32_t> imm;
    int rnr_attempts = 0;
    int retries = 0;
    bool started = false;
    absl::Time not_before = absl::InfinitePast();
};

}  // namespace

struct SimQp;

struct SimFabric::Impl {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::weak_ptr<SimQp>> qps;
    absl::Duration latency = absl::ZeroDuration();
    int drop_next = 0;
    bool cut = false;
    bool stopping = false;
    std::thread thread;

    void Loop();
    bool Execute(SimQp& qp, absl::Time now, absl::Time* wake);  // under mu
};

struct SimQp : QueuePair, std::enable_shared_from_this<SimQp> {
    // A handle owns its queue pair: dropping it disconnects (the other side goes to error).
    struct Handle : QueuePair {
        std::shared_ptr<SimQp> qp;
        ~Handle() override { qp->Destroy(); }
        absl::Status PostRecv(uint64_t w, const MemoryRegion& mr, size_t off, size_t len) override {
            return qp->PostRecv(w, mr, off, len);
        }
        absl::Status PostSend(uint64_t w, const MemoryRegion& mr, size_t off, size_t len, std::optional<uint32_t> imm,
                              bool inl) override {
            return qp->PostSend(w, mr, off, len, imm, inl);
        }
        absl::Status PostWrite(uint64_t w, const MemoryRegion& mr, size_t off, size_t len, uint64_t addr, uint32_t rkey,
                               std::optional<uint32_t> imm) override {
            return qp->PostWrite(w, mr, off, len, addr, rkey, imm);
        }
        int Poll(WorkCompletion* out, int max) override { return qp->Poll(out, max); }
        int completion_fd() const override { return qp->completion_fd(); }
        QpState state() const override { return qp->state(); }
    };

    std::shared_ptr<SimFabric::Impl> fabric;
    std::shared_ptr<SimDevice::State> device;
    std::weak_ptr<SimQp> remote;
    SimQpOptions options;
    shmring::UniqueFd efd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    // Under fabric->mu:
    QpState qp_state = QpState::kReadyToSend;
    bool destroyed = false;
    std::deque<Recv> recvs;
    std::deque<Op> ops;
    std::deque<WorkCompletion> cq;

    void Complete(WorkCompletion wc) {  // under mu
        cq.push_back(wc);
        uint64_t one = 1;
        (void)!::write(efd.get(), &one, sizeof one);
    }

    // The error state: what is still posted completes as flushed.
    void ToError() {  // under mu
        if (qp_state == QpState::kError) {
            return;
        }
        qp_state = QpState::kError;
        for (const Recv& r : recvs) {
            Complete({.wr_id = r.wr_id, .opcode = WcOpcode::kRecv, .status = WcStatus::kFlushed});
        }
        recvs.clear();
        for (const Op& op : ops) {
            Complete({.wr_id = op.wr_id,
                      .opcode = op.write ? WcOpcode::kRdmaWrite : WcOpcode::kSend,
                      .status = WcStatus::kFlushed});
        }
        ops.clear();
    }

    // The operation at the head failed with `status`: both sides go to the error state.
    void Fail(WcStatus status) {  // under mu
        Op op = std::move(ops.front());
        ops.pop_front();
        Complete({.wr_id = op.wr_id, .opcode = op.write ? WcOpcode::kRdmaWrite : WcOpcode::kSend, .status = status});
        ToError();
        if (auto r = remote.lock()) {
            r->ToError();
        }
    }

    void Destroy() {
        std::lock_guard<std::mutex> lock(fabric->mu);
        destroyed = true;
        ToError();
        if (auto r = remote.lock()) {
            r->ToError();  // (a real peer learns it at its next operation; sooner is no harm here)
        }
    }

    static absl::Status InRegion(const MemoryRegion& mr, size_t off, size_t len) {
        if (mr.addr == nullptr || off > mr.length || len > mr.length - off) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "verbs: [%d, +%d) is outside the local region of %d bytes", off, len, mr.length));
        }
        return absl::OkStatus();
    }

    absl::Status PostRecv(uint64_t wr_id, const MemoryRegion& mr, size_t off, size_t len) override {
        if (absl::Status s = InRegion(mr, off, len); !s.ok()) {
            return s;
        }
        if (!(mr.access & kLocalWrite)) {
            return absl::InvalidArgumentError("verbs: a receive into a region without local write access");
        }
        std::lock_guard<std::mutex> lock(fabric->mu);
        if (qp_state == QpState::kError) {
            Complete({.wr_id = wr_id, .opcode = WcOpcode::kRecv, .status = WcStatus::kFlushed});
            return absl::OkStatus();
        }
        recvs.push_back({wr_id, mr.addr + off, len});
        fabric->cv.notify_all();  // a sender may be waiting for it (receiver not ready)
        return absl::OkStatus();
    }

    absl::Status Post(Op op, const MemoryRegion& mr, size_t off) {
        if (absl::Status s = InRegion(mr, off, op.length); !s.ok()) {
            return s;
        }
        op.src = mr.addr + off;
        if (op.is_inline) {
            op.inline_bytes.assign(op.src, op.length);  // the caller's memory is free at once
        }
        std::lock_guard<std::mutex> lock(fabric->mu);
        if (qp_state == QpState::kError) {
            Complete({.wr_id = op.wr_id, .opcode = op.write ? WcOpcode::kRdmaWrite : WcOpcode::kSend,
                      .status = WcStatus::kFlushed});
            return absl::OkStatus();
        }
        ops.push_back(std::move(op));
        fabric->cv.notify_all();
        return absl::OkStatus();
    }

    absl::Status PostSend(uint64_t wr_id, const MemoryRegion& mr, size_t off, size_t len, std::optional<uint32_t> imm,
                          bool inline_data) override {
        return Post(Op{.wr_id = wr_id, .is_inline = inline_data, .length = len, .imm = imm}, mr, off);
    }

    absl::Status PostWrite(uint64_t wr_id, const MemoryRegion& mr, size_t off, size_t len, uint64_t remote_addr,
                           uint32_t rkey, std::optional<uint32_t> imm) override {
        return Post(Op{.write = true, .wr_id = wr_id, .length = len, .remote_addr = remote_addr, .rkey = rkey, .imm = imm},
                    mr, off);
    }

    int Poll(WorkCompletion* out, int max) override {
        std::lock_guard<std::mutex> lock(fabric->mu);
        uint64_t drained;
        (void)!::read(efd.get(), &drained, sizeof drained);
        int n = 0;
        while (n < max && !cq.empty()) {
            out[n++] = cq.front();
            cq.pop_front();
        }
        if (!cq.empty()) {
            uint64_t one = 1;  // still more: stay readable
            (void)!::write(efd.get(), &one, sizeof one);
        }
        return n;
    }

    int completion_fd() const override { return efd.get(); }

    QpState state() const override {
        std::lock_guard<std::mutex> lock(fabric->mu);
        return qp_state;
    }
};

// Executes the operation at the head of `qp`'s queue if it is due; false when it must
// wait (until *wake).
bool SimFabric::Impl::Execute(SimQp& qp, absl::Time now, absl::Time* wake) {
    Op& op = qp.ops.front();
    if (now < op.not_before) {
        *wake = std::min(*wake, op.not_before);
        return false;
    }
    if (!op.started) {
        op.started = true;
        if (latency > absl::ZeroDuration()) {
            op.not_before = now + latency;
            *wake = std::min(*wake, op.not_before);
            return false;
        }
    }
    auto retry_later = [&](absl::Duration d) {
        op.not_before = now + d;
        *wake = std::min(*wake, op.not_before);
        return false;
    };
    std::shared_ptr<SimQp> remote = qp.remote.lock();
    bool lost = cut || remote == nullptr || remote->destroyed;
    if (!lost && drop_next > 0) {
        --drop_next;
        lost = true;
    }
    if (lost) {  // no acknowledgement: retransmitted after the timeout, a few times
        if (++op.retries > qp.options.retry_count) {
            qp.Fail(WcStatus::kTransportRetryExceeded);
            return true;
        }
        return retry_later(qp.options.retransmit_timeout);
    }
    if (remote->qp_state == QpState::kError) {
        qp.Fail(WcStatus::kTransportRetryExceeded);
        return true;
    }
    const char* src = op.is_inline ? op.inline_bytes.data() : op.src;
    bool consumes_recv = !op.write || op.imm.has_value();
    if (op.write) {
        MemoryRegion target;
        bool found = false;
        {
            std::lock_guard<std::mutex> regions(remote->device->mu);
            auto it = remote->device->regions.find(op.rkey);
            if (it != remote->device->regions.end()) {
                target = it->second;
                found = true;
            }
        }
        uint64_t begin = reinterpret_cast<uint64_t>(target.addr);
        if (!found || !(target.access & kRemoteWrite) || op.remote_addr < begin ||
            op.remote_addr - begin > target.length || op.length > target.length - (op.remote_addr - begin)) {
            qp.Fail(WcStatus::kRemoteAccessError);
            return true;
        }
    }
    if (consumes_recv && remote->recvs.empty()) {
        if (++op.rnr_attempts > qp.options.rnr_retry) {
            qp.Fail(WcStatus::kRnrRetryExceeded);
            return true;
        }
        return retry_later(qp.options.rnr_delay);
    }
    if (!op.write) {
        Recv r = remote->recvs.front();
        if (op.length > r.length) {
            remote->recvs.pop_front();
            remote->Complete({.wr_id = r.wr_id, .opcode = WcOpcode::kRecv, .status = WcStatus::kLocalLengthError});
            qp.Fail(WcStatus::kRemoteInvalidRequest);
            return true;
        }
        if (op.length > 0) {
            std::memcpy(r.addr, src, op.length);
        }
    } else if (op.length > 0) {
        std::memcpy(reinterpret_cast<char*>(op.remote_addr), src, op.length);
    }
    if (consumes_recv) {
        Recv r = remote->recvs.front();
        remote->recvs.pop_front();
        remote->Complete({.wr_id = r.wr_id,
                          .opcode = op.imm ? WcOpcode::kRecvWithImm : WcOpcode::kRecv,
                          .status = WcStatus::kSuccess,
                          .byte_len = static_cast<uint32_t>(op.length),
                          .imm = op.imm});
    }
    qp.Complete({.wr_id = op.wr_id, .opcode = op.write ? WcOpcode::kRdmaWrite : WcOpcode::kSend});
    qp.ops.pop_front();
    return true;
}

void SimFabric::Impl::Loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
        absl::Time now = absl::Now();
        absl::Time wake = absl::InfiniteFuture();
        bool progress = false;
        for (size_t i = 0; i < qps.size();) {
            std::shared_ptr<SimQp> qp = qps[i].lock();
            if (qp == nullptr) {
                qps.erase(qps.begin() + static_cast<long>(i));
                continue;
            }
            // In order: the head blocks what was posted after it.
            while (!qp->ops.empty() && qp->qp_state == QpState::kReadyToSend && Execute(*qp, now, &wake)) {
                progress = true;
            }
            ++i;
        }
        if (!progress) {
            if (wake == absl::InfiniteFuture()) {
                cv.wait(lock);
            } else {
                cv.wait_for(lock, absl::ToChronoNanoseconds(std::max(wake - now, absl::Microseconds(10))));
            }
        }
    }
}

SimFabric::SimFabric() : impl_(std::make_shared<Impl>()) {
    impl_->thread = std::thread([i = impl_.get()] { i->Loop(); });
}

SimFabric::~SimFabric() {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->stopping = true;
    }
    impl_->cv.notify_all();
    impl_->thread.join();
}

std::unique_ptr<SimDevice> SimFabric::NewDevice(std::string name) {
    auto state = std::make_shared<SimDevice::State>();
    state->name = std::move(name);
    return std::unique_ptr<SimDevice>(new SimDevice(std::move(state)));
}

std::pair<std::unique_ptr<QueuePair>, std::unique_ptr<QueuePair>> SimFabric::Connect(SimDevice& a, SimDevice& b,
                                                                                     SimQpOptions options) {
    auto qa = std::make_shared<SimQp>();
    auto qb = std::make_shared<SimQp>();
    for (auto [q, d] : {std::pair{qa, &a}, std::pair{qb, &b}}) {
        q->fabric = impl_;
        q->device = d->state_;
        q->options = options;
    }
    qa->remote = qb;
    qb->remote = qa;
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->qps.push_back(qa);
        impl_->qps.push_back(qb);
    }
    auto ha = std::make_unique<SimQp::Handle>();
    ha->qp = qa;
    auto hb = std::make_unique<SimQp::Handle>();
    hb->qp = qb;
    return {std::move(ha), std::move(hb)};
}

void SimFabric::SetLatency(absl::Duration d) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->latency = d;
}

void SimFabric::DropNext(int n) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->drop_next += n;
}

void SimFabric::CutLink(bool cut) {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->cut = cut;
    }
    impl_->cv.notify_all();
}

SimDevice::~SimDevice() = default;

std::string_view SimDevice::name() const { return state_->name; }

absl::StatusOr<MemoryRegion> SimDevice::Register(char* addr, size_t length, uint32_t access) {
    if (addr == nullptr || length == 0) {
        return absl::InvalidArgumentError("verbs: registering an empty region");
    }
    std::lock_guard<std::mutex> lock(state_->mu);
    uint32_t key;
    do {
        key = static_cast<uint32_t>(state_->keys());
    } while (key == 0 || state_->regions.contains(key));
    MemoryRegion mr{.addr = addr, .length = length, .lkey = key, .rkey = key, .access = access};
    state_->regions[key] = mr;
    return mr;
}

size_t SimDevice::registered_regions() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->regions.size();
}

void SimDevice::Deregister(const MemoryRegion& mr) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->regions.erase(mr.rkey);
}

absl::StatusOr<Connected> SimConnectionManager::Connect(const std::string& host, uint16_t port) {
    Accept accept;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = listeners_.find({host, port});
        if (it == listeners_.end()) {
            it = listeners_.find({"0.0.0.0", port});
        }
        if (it == listeners_.end()) {
            return absl::UnavailableError(absl::StrFormat("rdma: no listener at %s:%d on the simulated fabric", host, port));
        }
        accept = it->second;
    }
    auto [mine, theirs] = fabric_->Connect(*device_, *device_, {.rnr_retry = 1000, .rnr_delay = absl::Milliseconds(1)});
    accept(Connected{device_, std::move(theirs)});
    return Connected{device_, std::move(mine)};
}

absl::Status SimConnectionManager::Listen(const std::string& address, uint16_t port, Accept accept) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!listeners_.emplace(std::pair{address, port}, std::move(accept)).second) {
        return absl::AlreadyExistsError(absl::StrFormat("rdma: %s:%d is listened on already", address, port));
    }
    return absl::OkStatus();
}

void SimConnectionManager::StopListening(const std::string& address, uint16_t port) {
    std::lock_guard<std::mutex> lock(mu_);
    listeners_.erase({address, port});
}

}  // namespace zerohop::peer::verbs

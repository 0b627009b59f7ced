#include "rdma/ibv.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "shmring/unique_fd.h"

namespace zerohop::peer::verbs {

namespace {

// Work requests a queue pair holds at a time, each way: more than a connection's receive
// and send slots (rc_path.h) plus the answers being written.
constexpr uint32_t kMaxWorkRequests = 1024;
constexpr int kCompletionQueueSize = 2 * kMaxWorkRequests;
constexpr uint32_t kMaxInline = 256;
constexpr int kResolveMs = 2000;
constexpr int kConnectMs = 5000;

absl::Status Errno(std::string_view what) {
    return absl::UnavailableError(absl::StrFormat("rdma: %s: %s", what, strerror(errno)));
}

int ToIbvAccess(uint32_t a) {
    int f = 0;
    if (a & kLocalWrite) {
        f |= IBV_ACCESS_LOCAL_WRITE;
    }
    if (a & kRemoteWrite) {
        f |= IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE;  // (remote write needs local write)
    }
    if (a & kRemoteRead) {
        f |= IBV_ACCESS_REMOTE_READ;
    }
    return f;
}

WcStatus FromIbv(ibv_wc_status s) {
    switch (s) {
        case IBV_WC_SUCCESS: return WcStatus::kSuccess;
        case IBV_WC_LOC_LEN_ERR: return WcStatus::kLocalLengthError;
        case IBV_WC_REM_ACCESS_ERR: return WcStatus::kRemoteAccessError;
        case IBV_WC_REM_INV_REQ_ERR: return WcStatus::kRemoteInvalidRequest;
        case IBV_WC_RNR_RETRY_EXC_ERR: return WcStatus::kRnrRetryExceeded;
        case IBV_WC_RETRY_EXC_ERR: return WcStatus::kTransportRetryExceeded;
        case IBV_WC_WR_FLUSH_ERR: return WcStatus::kFlushed;
        default: return WcStatus::kOtherError;
    }
}

WcOpcode FromIbv(ibv_wc_opcode op, bool with_imm) {
    switch (op) {
        case IBV_WC_SEND: return WcOpcode::kSend;
        case IBV_WC_RDMA_WRITE: return WcOpcode::kRdmaWrite;
        case IBV_WC_RECV_RDMA_WITH_IMM: return WcOpcode::kRecvWithImm;
        default: return with_imm ? WcOpcode::kRecvWithImm : WcOpcode::kRecv;
    }
}

// A device: its context (rdmacm's) and one protection domain for every connection on it.
class IbvDevice : public Device {
public:
    IbvDevice(ibv_context* context, ibv_pd* pd) : context_(context), pd_(pd) {}
    ~IbvDevice() override {
        for (auto& [lkey, mr] : regions_) {
            ibv_dereg_mr(mr);
        }
        ibv_dealloc_pd(pd_);
    }
    std::string_view name() const override { return ibv_get_device_name(context_->device); }
    absl::StatusOr<MemoryRegion> Register(char* addr, size_t length, uint32_t access) override {
        if (addr == nullptr || length == 0) {
            return absl::InvalidArgumentError("verbs: registering an empty region");
        }
        ibv_mr* mr = ibv_reg_mr(pd_, addr, length, ToIbvAccess(access));
        if (mr == nullptr) {
            return absl::ResourceExhaustedError(
                absl::StrFormat("rdma: registering %d bytes: %s (the locked-memory limit?)", length, strerror(errno)));
        }
        std::lock_guard<std::mutex> lock(mu_);
        regions_[mr->lkey] = mr;
        return MemoryRegion{.addr = addr, .length = length, .lkey = mr->lkey, .rkey = mr->rkey, .access = access};
    }
    void Deregister(const MemoryRegion& region) override {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = regions_.find(region.lkey);
        if (it != regions_.end()) {
            ibv_dereg_mr(it->second);
            regions_.erase(it);
        }
    }
    ibv_pd* pd() const { return pd_; }

private:
    ibv_context* context_;
    ibv_pd* pd_;
    std::mutex mu_;
    absl::flat_hash_map<uint32_t, ibv_mr*> regions_;
};

// An RC queue pair made by rdmacm, with its own completion queue and channel, and its own
// rdmacm event channel (the events after the connection are not read: the queue pair's
// completions say what fails).
class IbvQueuePair : public QueuePair {
public:
    ~IbvQueuePair() override {
        if (id_ != nullptr) {
            if (connected_) {
                rdma_disconnect(id_);
            }
            if (id_->qp != nullptr) {
                rdma_destroy_qp(id_);
            }
        }
        if (cq_ != nullptr) {
            if (unacked_ > 0) {
                ibv_ack_cq_events(cq_, unacked_);
            }
            ibv_destroy_cq(cq_);
        }
        if (channel_ != nullptr) {
            ibv_destroy_comp_channel(channel_);
        }
        if (id_ != nullptr) {
            rdma_destroy_id(id_);
        }
        if (events_ != nullptr) {
            rdma_destroy_event_channel(events_);
        }
    }

    // Takes `id` (and `events`, its event channel) and makes its queue pair on `device`.
    static absl::StatusOr<std::unique_ptr<IbvQueuePair>> Make(rdma_cm_id* id, rdma_event_channel* events,
                                                              IbvDevice* device) {
        std::unique_ptr<IbvQueuePair> q(new IbvQueuePair());
        q->id_ = id;
        q->events_ = events;
        q->channel_ = ibv_create_comp_channel(id->verbs);
        if (q->channel_ == nullptr) {
            return Errno("ibv_create_comp_channel");
        }
        int flags = fcntl(q->channel_->fd, F_GETFL);
        fcntl(q->channel_->fd, F_SETFL, flags | O_NONBLOCK);
        q->cq_ = ibv_create_cq(id->verbs, kCompletionQueueSize, nullptr, q->channel_, 0);
        if (q->cq_ == nullptr) {
            return Errno("ibv_create_cq");
        }
        if (ibv_req_notify_cq(q->cq_, 0) != 0) {
            return Errno("ibv_req_notify_cq");
        }
        ibv_qp_init_attr attr = {};
        attr.send_cq = q->cq_;
        attr.recv_cq = q->cq_;
        attr.qp_type = IBV_QPT_RC;
        attr.cap.max_send_wr = kMaxWorkRequests;
        attr.cap.max_recv_wr = kMaxWorkRequests;
        attr.cap.max_send_sge = 1;
        attr.cap.max_recv_sge = 1;
        attr.cap.max_inline_data = kMaxInline;
        if (rdma_create_qp(id, device->pd(), &attr) != 0) {
            return Errno("rdma_create_qp");
        }
        q->max_inline_ = attr.cap.max_inline_data;
        return q;
    }

    void set_connected() { connected_ = true; }

    absl::Status PostRecv(uint64_t wr_id, const MemoryRegion& mr, size_t offset, size_t length) override {
        ibv_sge sge = {.addr = reinterpret_cast<uint64_t>(mr.addr + offset),
                       .length = static_cast<uint32_t>(length),
                       .lkey = mr.lkey};
        ibv_recv_wr wr = {};
        wr.wr_id = wr_id;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        ibv_recv_wr* bad = nullptr;
        if (int r = ibv_post_recv(id_->qp, &wr, &bad); r != 0) {
            return absl::UnavailableError(absl::StrFormat("rdma: ibv_post_recv: %s", strerror(r)));
        }
        return absl::OkStatus();
    }

    absl::Status PostSend(uint64_t wr_id, const MemoryRegion& mr, size_t offset, size_t length,
                          std::optional<uint32_t> imm, bool inline_data) override {
        ibv_send_wr wr = {};
        wr.opcode = imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
        if (imm) {
            wr.imm_data = htonl(*imm);
        }
        return Post(wr, wr_id, mr, offset, length, inline_data && length <= max_inline_);
    }

    absl::Status PostWrite(uint64_t wr_id, const MemoryRegion& mr, size_t offset, size_t length, uint64_t remote_addr,
                           uint32_t rkey, std::optional<uint32_t> imm) override {
        ibv_send_wr wr = {};
        wr.opcode = imm ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_WRITE;
        if (imm) {
            wr.imm_data = htonl(*imm);
        }
        wr.wr.rdma.remote_addr = remote_addr;
        wr.wr.rdma.rkey = rkey;
        return Post(wr, wr_id, mr, offset, length, false);
    }

    int Poll(WorkCompletion* out, int max) override {
        // The channel's notifications first (acknowledged in batches), then the queue
        // itself; notification is asked for again before the last look, so that a completion
        // arriving in between makes the descriptor readable.
        ibv_cq* cq;
        void* context;
        while (ibv_get_cq_event(channel_, &cq, &context) == 0) {
            ++unacked_;
        }
        if (unacked_ >= 64) {
            ibv_ack_cq_events(cq_, unacked_);
            unacked_ = 0;
        }
        int n = Drain(out, max);
        if (n < max) {
            ibv_req_notify_cq(cq_, 0);
            n += Drain(out + n, max - n);
        }
        return n;
    }

    int completion_fd() const override { return channel_->fd; }

    QpState state() const override {
        ibv_qp_attr attr = {};
        ibv_qp_init_attr init = {};
        if (ibv_query_qp(id_->qp, &attr, IBV_QP_STATE, &init) != 0 || attr.qp_state == IBV_QPS_ERR) {
            return QpState::kError;
        }
        return QpState::kReadyToSend;
    }

private:
    IbvQueuePair() = default;

    absl::Status Post(ibv_send_wr& wr, uint64_t wr_id, const MemoryRegion& mr, size_t offset, size_t length,
                      bool inline_data) {
        ibv_sge sge = {.addr = reinterpret_cast<uint64_t>(mr.addr + offset),
                       .length = static_cast<uint32_t>(length),
                       .lkey = mr.lkey};
        wr.wr_id = wr_id;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.send_flags = IBV_SEND_SIGNALED | (inline_data ? IBV_SEND_INLINE : 0);
        ibv_send_wr* bad = nullptr;
        if (int r = ibv_post_send(id_->qp, &wr, &bad); r != 0) {
            return absl::UnavailableError(absl::StrFormat("rdma: ibv_post_send: %s", strerror(r)));
        }
        return absl::OkStatus();
    }

    int Drain(WorkCompletion* out, int max) {
        int total = 0;
        ibv_wc wc[32];
        while (total < max) {
            int n = ibv_poll_cq(cq_, std::min(max - total, 32), wc);
            if (n <= 0) {
                break;
            }
            for (int i = 0; i < n; ++i) {
                bool with_imm = wc[i].wc_flags & IBV_WC_WITH_IMM;
                WorkCompletion& w = out[total + i];
                w = WorkCompletion{.wr_id = wc[i].wr_id,
                                   .opcode = FromIbv(wc[i].opcode, with_imm),
                                   .status = FromIbv(wc[i].status),
                                   .byte_len = wc[i].byte_len};
                if (with_imm) {
                    w.imm = ntohl(wc[i].imm_data);
                }
                if (w.status == WcStatus::kOtherError) {
                    Log(LogLevel::kWarning, "rdma: a work request failed", "status", ibv_wc_status_str(wc[i].status));
                }
            }
            total += n;
        }
        return total;
    }

    rdma_cm_id* id_ = nullptr;
    rdma_event_channel* events_ = nullptr;
    ibv_comp_channel* channel_ = nullptr;
    ibv_cq* cq_ = nullptr;
    unsigned unacked_ = 0;
    uint32_t max_inline_ = 0;
    bool connected_ = false;
};

// Waits (at most `ms`) for the next rdmacm event on `ch`; it must be `want`.
absl::Status Await(rdma_event_channel* ch, rdma_cm_event_type want, int ms) {
    pollfd p = {.fd = ch->fd, .events = POLLIN, .revents = 0};
    int r = ::poll(&p, 1, ms);
    if (r <= 0) {
        return absl::UnavailableError(
            absl::StrFormat("rdma: no %s within %d ms", rdma_event_str(want), ms));
    }
    rdma_cm_event* ev = nullptr;
    if (rdma_get_cm_event(ch, &ev) != 0) {
        return Errno("rdma_get_cm_event");
    }
    rdma_cm_event_type got = ev->event;
    int status = ev->status;
    rdma_ack_cm_event(ev);
    if (got != want) {
        return absl::UnavailableError(absl::StrFormat("rdma: %s (status %d) where %s was awaited", rdma_event_str(got),
                                                      status, rdma_event_str(want)));
    }
    return absl::OkStatus();
}

rdma_conn_param ConnParam() {
    rdma_conn_param p = {};
    p.responder_resources = 1;
    p.initiator_depth = 1;
    p.retry_count = 7;
    p.rnr_retry_count = 7;  // 7: without end (a receive missing for a moment is waited for)
    return p;
}

// A sockaddr for host:port (numeric or a name).
absl::StatusOr<sockaddr_storage> Resolve(const std::string& host, uint16_t port) {
    addrinfo hints = {};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int r = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); r != 0) {
        return absl::UnavailableError(absl::StrFormat("rdma: %s:%d: %s", host, port, gai_strerror(r)));
    }
    sockaddr_storage out = {};
    std::memcpy(&out, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    return out;
}

}  // namespace

std::vector<std::string> IbvDeviceNames() {
    std::vector<std::string> names;
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (list == nullptr) {
        return names;  // (no RDMA support in the kernel)
    }
    for (int i = 0; i < n; ++i) {
        names.emplace_back(ibv_get_device_name(list[i]));
    }
    ibv_free_device_list(list);
    return names;
}

struct Listener {
    rdma_event_channel* ch = nullptr;
    rdma_cm_id* id = nullptr;
    shmring::UniqueFd stop;
    std::thread thread;
};

struct IbvConnectionManager::Impl {
    std::mutex mu;
    std::map<ibv_context*, std::unique_ptr<IbvDevice>> devices;
    std::map<std::pair<std::string, uint16_t>, std::unique_ptr<Listener>> listeners;

    absl::StatusOr<IbvDevice*> DeviceFor(ibv_context* context) {
        std::lock_guard<std::mutex> lock(mu);
        auto& d = devices[context];
        if (d == nullptr) {
            ibv_pd* pd = ibv_alloc_pd(context);
            if (pd == nullptr) {
                devices.erase(context);
                return Errno("ibv_alloc_pd");
            }
            d = std::make_unique<IbvDevice>(context, pd);
        }
        return d.get();
    }

    // A connection request: its queue pair made and the connection accepted, on an event
    // channel of its own; handed to `accept`.
    void OnRequest(rdma_cm_id* id, const Accept& accept) {
        rdma_event_channel* own = rdma_create_event_channel();
        if (own == nullptr || rdma_migrate_id(id, own) != 0) {
            Log(LogLevel::kWarning, "rdma: cannot take a connection", "error", strerror(errno));
            if (own != nullptr) {
                rdma_destroy_event_channel(own);
            }
            rdma_reject(id, nullptr, 0);
            rdma_destroy_id(id);
            return;
        }
        auto device = DeviceFor(id->verbs);
        absl::StatusOr<std::unique_ptr<IbvQueuePair>> qp =
            device.ok() ? IbvQueuePair::Make(id, own, *device) : device.status();
        if (!qp.ok()) {
            Log(LogLevel::kWarning, "rdma: cannot take a connection", "error", std::string(qp.status().message()));
            if (!device.ok()) {
                rdma_reject(id, nullptr, 0);
                rdma_destroy_id(id);
                rdma_destroy_event_channel(own);
            }
            // (else the queue pair half made took the id with it: the request is refused by
            // its end)
            return;
        }
        rdma_conn_param p = ConnParam();
        if (rdma_accept(id, &p) != 0) {
            Log(LogLevel::kWarning, "rdma: rdma_accept failed", "error", strerror(errno));
            return;
        }
        (*qp)->set_connected();
        accept(Connected{*device, std::move(*qp)});
    }

    void Run(Listener* l, Accept accept) {
        pollfd p[2] = {{.fd = l->ch->fd, .events = POLLIN, .revents = 0},
                       {.fd = l->stop.get(), .events = POLLIN, .revents = 0}};
        for (;;) {
            if (::poll(p, 2, -1) < 0 && errno != EINTR) {
                return;
            }
            if (p[1].revents != 0) {
                return;
            }
            if (p[0].revents == 0) {
                continue;
            }
            rdma_cm_event* ev = nullptr;
            if (rdma_get_cm_event(l->ch, &ev) != 0) {
                continue;
            }
            rdma_cm_event_type type = ev->event;
            rdma_cm_id* id = ev->id;
            rdma_ack_cm_event(ev);
            if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
                OnRequest(id, accept);
            }
        }
    }
};

IbvConnectionManager::IbvConnectionManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

IbvConnectionManager::~IbvConnectionManager() {
    std::vector<std::pair<std::string, uint16_t>> all;
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        for (auto& [key, l] : impl_->listeners) {
            all.push_back(key);
        }
    }
    for (auto& [address, port] : all) {
        StopListening(address, port);
    }
}

absl::StatusOr<std::unique_ptr<IbvConnectionManager>> IbvConnectionManager::Open() {
    if (IbvDeviceNames().empty()) {
        return absl::UnavailableError("rdma: no RDMA device (libibverbs lists none)");
    }
    rdma_event_channel* probe = rdma_create_event_channel();
    if (probe == nullptr) {
        return absl::UnavailableError(absl::StrFormat(
            "rdma: rdmacm cannot start: %s (is the rdma_ucm module loaded?)", strerror(errno)));
    }
    rdma_destroy_event_channel(probe);
    return std::unique_ptr<IbvConnectionManager>(new IbvConnectionManager(std::make_unique<Impl>()));
}

absl::StatusOr<Connected> IbvConnectionManager::Connect(const std::string& host, uint16_t port) {
    auto addr = Resolve(host, port);
    if (!addr.ok()) {
        return addr.status();
    }
    rdma_event_channel* ch = rdma_create_event_channel();
    if (ch == nullptr) {
        return Errno("rdma_create_event_channel");
    }
    rdma_cm_id* id = nullptr;
    if (rdma_create_id(ch, &id, nullptr, RDMA_PS_TCP) != 0) {
        absl::Status s = Errno("rdma_create_id");
        rdma_destroy_event_channel(ch);
        return s;
    }
    auto fail = [&](absl::Status s) {
        rdma_destroy_id(id);
        rdma_destroy_event_channel(ch);
        return absl::Status(s.code(), absl::StrFormat("%s:%d: %s", host, port, s.message()));
    };
    if (rdma_resolve_addr(id, nullptr, reinterpret_cast<sockaddr*>(&*addr), kResolveMs) != 0) {
        return fail(Errno("rdma_resolve_addr (no RDMA device on the way to it)"));
    }
    if (absl::Status s = Await(ch, RDMA_CM_EVENT_ADDR_RESOLVED, kResolveMs + 1000); !s.ok()) {
        return fail(s);
    }
    if (rdma_resolve_route(id, kResolveMs) != 0) {
        return fail(Errno("rdma_resolve_route"));
    }
    if (absl::Status s = Await(ch, RDMA_CM_EVENT_ROUTE_RESOLVED, kResolveMs + 1000); !s.ok()) {
        return fail(s);
    }
    auto device = impl_->DeviceFor(id->verbs);
    if (!device.ok()) {
        return fail(device.status());
    }
    auto qp = IbvQueuePair::Make(id, ch, *device);  // owns id and ch from here, made or not
    auto named = [&](absl::Status s) {
        return absl::Status(s.code(), absl::StrFormat("%s:%d: %s", host, port, s.message()));
    };
    if (!qp.ok()) {
        return named(qp.status());
    }
    rdma_conn_param p = ConnParam();
    if (rdma_connect(id, &p) != 0) {
        return named(Errno("rdma_connect"));
    }
    if (absl::Status s = Await(ch, RDMA_CM_EVENT_ESTABLISHED, kConnectMs); !s.ok()) {
        return named(s);
    }
    (*qp)->set_connected();
    return Connected{*device, std::move(*qp)};
}

absl::Status IbvConnectionManager::Listen(const std::string& address, uint16_t port, Accept accept) {
    auto addr = Resolve(address, port);
    if (!addr.ok()) {
        return addr.status();
    }
    auto l = std::make_unique<Listener>();
    l->ch = rdma_create_event_channel();
    if (l->ch == nullptr) {
        return Errno("rdma_create_event_channel");
    }
    if (rdma_create_id(l->ch, &l->id, nullptr, RDMA_PS_TCP) != 0) {
        absl::Status s = Errno("rdma_create_id");
        rdma_destroy_event_channel(l->ch);
        return s;
    }
    if (rdma_bind_addr(l->id, reinterpret_cast<sockaddr*>(&*addr)) != 0 || rdma_listen(l->id, 64) != 0) {
        absl::Status s = Errno(absl::StrFormat("listening on %s:%d", address, port));
        rdma_destroy_id(l->id);
        rdma_destroy_event_channel(l->ch);
        return s;
    }
    l->stop.reset(::eventfd(0, EFD_CLOEXEC));
    Listener* raw = l.get();
    Impl* impl = impl_.get();
    raw->thread = std::thread([impl, raw, accept = std::move(accept)] { impl->Run(raw, accept); });
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->listeners[{address, port}] = std::move(l);
    return absl::OkStatus();
}

void IbvConnectionManager::StopListening(const std::string& address, uint16_t port) {
    std::unique_ptr<Listener> l;
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        auto it = impl_->listeners.find({address, port});
        if (it == impl_->listeners.end()) {
            return;
        }
        l = std::move(it->second);
        impl_->listeners.erase(it);
    }
    uint64_t one = 1;
    (void)!::write(l->stop.get(), &one, sizeof one);
    l->thread.join();
    rdma_destroy_id(l->id);
    rdma_destroy_event_channel(l->ch);
}

}  // namespace zerohop::peer::verbs

#include "server/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "wire/protocol.h"

namespace zerohop {

namespace {

// A counter with one writer: a relaxed load and store, no read-modify-write.
void Bump(std::atomic<uint64_t>& c, uint64_t n) { c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }

}  // namespace

void Metrics::Record(uint16_t op, uint8_t backend, int code, double seconds, uint64_t bytes_in,
                     uint64_t bytes_out) {
    PerOp& m = ops_[op % kOps][backend % kBackends];
    Bump(requests_, 1);
    Bump(m.count, 1);
    if (code != 0) {
        Bump(errors_, 1);
        Bump(m.errors[static_cast<size_t>(code) % kCodes], 1);
    }
    for (size_t b = 0; b < kBuckets.size(); ++b) {
        if (seconds <= kBuckets[b]) {
            Bump(m.buckets[b], 1);
            break;
        }
    }
    Bump(m.sum_ns, static_cast<uint64_t>(seconds * 1e9));
    Bump(m.bytes_in, bytes_in);
    Bump(m.bytes_out, bytes_out);
}

void Metrics::BadDescriptor() { Bump(bad_descriptors_, 1); }

std::string Metrics::Render(const std::vector<const Metrics*>& workers, const Sessions& s,
                            const std::vector<std::string>& backends) {
    std::string out;
    uint64_t bad = 0;
    std::string per_worker = "# TYPE zerohop_worker_requests_total counter\n";
    for (size_t w = 0; w < workers.size(); ++w) {
        bad += workers[w]->bad_descriptors();
        absl::StrAppendFormat(&per_worker, "zerohop_worker_requests_total{worker=\"%d\"} %d\n", w,
                              workers[w]->requests());
    }
    absl::StrAppend(&out, "# TYPE zerohop_sessions_open gauge\nzerohop_sessions_open ", s.open, "\n");
    absl::StrAppend(&out, "# TYPE zerohop_sessions_total counter\nzerohop_sessions_total ", s.total, "\n");
    absl::StrAppend(&out, "# TYPE zerohop_sessions_refused_total counter\nzerohop_sessions_refused_total ",
                    s.refused, "\n");
    absl::StrAppend(&out, "# TYPE zerohop_bad_descriptors_total counter\nzerohop_bad_descriptors_total ", bad, "\n");
    std::string requests = "# TYPE zerohop_requests_total counter\n";
    std::string errors = "# TYPE zerohop_request_errors_total counter\n";
    std::string bytes = "# TYPE zerohop_request_bytes_total counter\n";
    std::string hist = "# TYPE zerohop_request_duration_seconds histogram\n";
    // The sum over every worker of one counter, of one backend label or (`backend` < 0) all.
    auto sum = [&](size_t op, int backend, auto field) {
        uint64_t total = 0;
        for (const Metrics* m : workers) {
            for (size_t b = 0; b < kBackends; ++b) {
                if (backend < 0 || static_cast<size_t>(backend) == b) {
                    total += field(m->ops_[op][b]).load(std::memory_order_relaxed);
                }
            }
        }
        return total;
    };
    auto count = [](const PerOp& m) -> const std::atomic<uint64_t>& { return m.count; };
    for (size_t op = 0; op < kOps; ++op) {
        uint64_t op_count = sum(op, -1, count);
        if (op_count == 0 || !protocol::IsKnownOp(static_cast<uint16_t>(op))) {
            continue;
        }
        std::string name(protocol::OpName(static_cast<protocol::Op>(op)));
        for (size_t b = 0; b < backends.size() && b < kBackends; ++b) {
            uint64_t n = sum(op, static_cast<int>(b), count);
            if (n == 0) {
                continue;
            }
            absl::StrAppendFormat(&requests, "zerohop_requests_total{op=\"%s\",backend=\"%s\"} %d\n", name,
                                  backends[b], n);
            for (size_t c = 1; c < kCodes; ++c) {
                uint64_t e = sum(op, static_cast<int>(b),
                                 [c](const PerOp& m) -> const std::atomic<uint64_t>& { return m.errors[c]; });
                if (e != 0) {
                    absl::StrAppendFormat(&errors,
                                          "zerohop_request_errors_total{op=\"%s\",backend=\"%s\",code=\"%s\"} %d\n",
                                          name, backends[b],
                                          absl::StatusCodeToString(static_cast<absl::StatusCode>(c)), e);
                }
            }
        }
        absl::StrAppendFormat(&bytes, "zerohop_request_bytes_total{op=\"%s\",direction=\"in\"} %d\n", name,
                              sum(op, -1, [](const PerOp& m) -> const std::atomic<uint64_t>& { return m.bytes_in; }));
        absl::StrAppendFormat(&bytes, "zerohop_request_bytes_total{op=\"%s\",direction=\"out\"} %d\n", name,
                              sum(op, -1, [](const PerOp& m) -> const std::atomic<uint64_t>& { return m.bytes_out; }));
        uint64_t cumulative = 0;
        for (size_t b = 0; b < kBuckets.size(); ++b) {
            cumulative += sum(op, -1, [b](const PerOp& m) -> const std::atomic<uint64_t>& { return m.buckets[b]; });
            absl::StrAppendFormat(&hist, "zerohop_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %d\n", name,
                                  kBuckets[b], cumulative);
        }
        absl::StrAppendFormat(&hist, "zerohop_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %d\n", name,
                              op_count);
        absl::StrAppendFormat(&hist, "zerohop_request_duration_seconds_sum{op=\"%s\"} %.9f\n", name,
                              sum(op, -1, [](const PerOp& m) -> const std::atomic<uint64_t>& { return m.sum_ns; }) /
                                  1e9);
        absl::StrAppendFormat(&hist, "zerohop_request_duration_seconds_count{op=\"%s\"} %d\n", name, op_count);
    }
    return out + per_worker + requests + errors + bytes + hist;
}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

absl::Status MetricsEndpoint::Start(uint16_t port, bool any_if_taken, std::function<std::string()> render) {
    render_ = std::move(render);
    auto listen = [this](uint16_t p) {
        listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        int one = 1;
        ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in addr = {};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(p);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // metrics never leave the node
        return ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
               ::listen(listener_.get(), 16) == 0;
    };
    if (!listen(port)) {
        int err = errno;
        if (err != EADDRINUSE || !any_if_taken || !listen(0)) {
            return absl::FailedPreconditionError(absl::StrFormat(
                "metrics_port %d: cannot listen on 127.0.0.1:%d: %s%s", port, port, strerror(err),
                err == EADDRINUSE ? " (another zerohopd?); set metrics_port to a free port, to 0 to turn metrics "
                                    "off, or to auto to take any free port"
                                  : ""));
        }
    }
    struct sockaddr_in bound = {};
    socklen_t len = sizeof bound;
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.sin_port);
    stop_.reset(::eventfd(0, EFD_CLOEXEC));
    thread_ = std::thread([this] { Loop(); });
    return absl::OkStatus();
}

void MetricsEndpoint::Stop() {
    if (thread_.joinable()) {
        uint64_t one = 1;
        (void)!::write(stop_.get(), &one, sizeof one);
        thread_.join();
    }
}

void MetricsEndpoint::Loop() {
    for (;;) {
        struct pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (p[1].revents) {
            return;
        }
        shmring::UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn.valid()) {
            continue;
        }
        struct timeval tv = {1, 0};
        ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char req[1024];
        (void)::recv(conn.get(), req, sizeof req, 0);  // any request gets the metrics
        std::string body = render_();
        std::string resp = absl::StrFormat(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n", body.size());
        resp += body;
        (void)::send(conn.get(), resp.data(), resp.size(), MSG_NOSIGNAL);
    }
}

}  // namespace zerohop

// libFuzzer target: descriptor validation and dispatch in a real in-process zerohopd.
//
// Each input becomes one descriptor (op, flags, offset, length, args) and the bytes of its
// payload, pushed through a raw session as a hostile client would; the daemon must answer
// or ignore it, never crash (ASan/UBSan watch its threads), and keep serving.

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "fuzz_daemon.h"
#include "shmring/doorbell.h"
#include "shmring/fd_passing.h"
#include "shmring/segment.h"
#include "wire/codec.h"
#include "wire/protocol.h"

namespace {

using zerohop::protocol::Descriptor;

struct Raw {
    shmring::UniqueFd sock;
    std::optional<shmring::Segment> segment;
    std::optional<shmring::EventFd> bell;
    uint64_t tail = 0;
};

std::string g_socket;
std::optional<Raw> g_raw;

std::optional<Raw> Open() {
    Raw r;
    r.sock.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, g_socket.data(), g_socket.size());
    if (::connect(r.sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return std::nullopt;
    }
    zerohop::protocol::Hello hello;
    hello.access_key = "fuzz";
    hello.client_bytes = 1 << 16;
    hello.daemon_bytes = 1 << 20;
    std::string body = zerohop::protocol::Encode(hello);
    uint32_t len = static_cast<uint32_t>(body.size());
    std::string framed(reinterpret_cast<char*>(&len), 4);
    framed += body;
    if (!shmring::SendWithFds(r.sock.get(), framed, {}).ok()) {
        return std::nullopt;
    }
    std::vector<shmring::UniqueFd> fds;
    char head[4];
    auto n = shmring::ReceiveWithFds(r.sock.get(), head, 4, &fds);
    if (!n.ok() || *n != 4 || fds.size() != 2) {
        return std::nullopt;
    }
    std::memcpy(&len, head, 4);
    std::string w(len, '\0');
    ::recv(r.sock.get(), w.data(), len, MSG_WAITALL);
    auto seg = shmring::Segment::Map(std::move(fds[0]));
    if (!seg.ok()) {
        return std::nullopt;
    }
    r.segment.emplace(std::move(*seg));
    r.bell.emplace(std::move(fds[1]));
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    g_socket = zerohop::fuzz::StartDaemon("{max_in_flight: 16}");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!g_raw) {
        g_raw = Open();
        if (!g_raw) {
            abort();  // the daemon stopped taking sessions
        }
    }
    Raw& r = *g_raw;
    zerohop::ByteReader in(std::string_view(reinterpret_cast<const char*>(data), size));
    Descriptor d;
    uint8_t shape = 0;
    uint64_t op = 0;
    in.GetU8(&shape);
    in.GetVarint(&op);
    d.op = static_cast<uint16_t>(op);
    d.request_id = 1;
    std::string_view payload = in.rest();
    uint64_t region = r.segment->layout().client_region.size;
    payload = payload.substr(0, region);
    std::memcpy(r.segment->client_region(), payload.data(), payload.size());
    d.offset = 0;
    d.length = static_cast<uint32_t>(payload.size());
    // Most inputs have honest framing, so the fuzzer reaches the decoders; some lie.
    if (shape % 8 == 1) {
        d.offset = region - 1;
    } else if (shape % 8 == 2) {
        d.length = 0xffffffffu;
    } else if (shape % 8 == 3) {
        d.version = shape;
    } else if (shape % 8 == 4) {
        d.arg0 = 0xdeadbeef;
        d.offset = static_cast<uint64_t>(shape) << 8;
    }
    shmring::RingSlots sq = r.segment->submit_ring();
    if (!sq.PushPrivate(&r.tail, &d)) {
        g_raw.reset();  // the session was closed or is wedged: start a fresh one
        return 0;
    }
    shmring::NotifyCreator(r.segment->header(), *r.bell);
    if (d.op == static_cast<uint16_t>(zerohop::protocol::Op::kRelease)) {
        return 0;  // not answered
    }
    // Wait for the answer, and hand back whatever buffer it used. A session the daemon closed
    // (too many bad descriptors) is noticed on its socket at once: waiting out a long timeout
    // for an answer that cannot come was most of this target's time.
    shmring::RingSlots cq = r.segment->complete_ring();
    shmring::SegmentHeader* h = r.segment->header();
    for (int waited_ms = 0;; waited_ms += 2) {
        if (shmring::WaitForCreator(h, [&] { return cq.ReadyShared(&h->complete_head); }, absl::Microseconds(100),
                                    absl::Milliseconds(2))) {
            break;
        }
        struct pollfd p = {.fd = r.sock.get(), .events = POLLRDHUP, .revents = 0};
        if (::poll(&p, 1, 0) != 0 || waited_ms >= 5000) {
            g_raw.reset();  // closed by the daemon, or wedged: start a fresh session
            return 0;
        }
    }
    Descriptor c;
    while (cq.PopShared(&h->complete_head, &c)) {
        if (c.length > 0) {
            Descriptor rel;
            rel.op = static_cast<uint16_t>(zerohop::protocol::Op::kRelease);
            rel.offset = c.arg0;
            sq.PushPrivate(&r.tail, &rel);
        }
    }
    return 0;
}

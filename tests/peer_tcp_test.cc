// The peer transport over TCP (rdma/peer_loop.h), between two loops on loopback: calls answered in
// order of arrival and matched by id; the key proved or the connection refused; credits that
// hold a caller back instead of flooding a slow peer; deadlines enforced on both sides; a
// hostile or silent peer that costs only its own connection; a broken connection that fails
// its calls as outcome unknown.

#include "rdma/peer_loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "peer_test_support.h"
#include "rdma/frame.h"

namespace zerohop::peer {
namespace {

using namespace testing;
using Outcome = testing::Outcome<std::string>;

int RawConnect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
}

TEST(PeerTcp, ManyPipelinedCallsEachGetTheirOwnAnswer) {
    std::atomic<int> served{0};
    auto server = PeerLoop::Create({});
    ASSERT_TRUE(server.ok()) << server.status();
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [&](PeerRequest r) {
        ++served;
        EXPECT_EQ(r.key_id(), "node-a");
        r.Respond(absl::OkStatus(), "echo:" + r.body());
    });
    ASSERT_TRUE(port.ok()) << port.status();
    auto client_loop = PeerLoop::Create({});
    ASSERT_TRUE(client_loop.ok());
    auto peer = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(peer.ok()) << peer.status();
    constexpr int kCalls = 2000;
    std::vector<Outcome> outcomes(kCalls);
    for (int i = 0; i < kCalls; ++i) {
        (*peer)->Call(std::to_string(i) + std::string(i % 300, 'x'), absl::Now() + absl::Seconds(20),
                      outcomes[i].Callback());
    }
    for (int i = 0; i < kCalls; ++i) {
        auto r = outcomes[i].Get();
        ASSERT_TRUE(r.ok()) << i << ": " << r.status();
        ASSERT_EQ(*r, "echo:" + std::to_string(i) + std::string(i % 300, 'x'));
    }
    EXPECT_EQ(served.load(), kCalls);
    // Errors come back with their code and message.
    auto err_port = (*server)->Listen("127.0.0.1", 0, Keys(), [](PeerRequest r) {
        r.Respond(absl::NotFoundError("no such object: " + r.body()), "");
    });
    auto err_peer = (*client_loop)->Dial("127.0.0.1", *err_port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(err_peer.ok());
    Outcome o;
    (*err_peer)->Call("/c/x", absl::Now() + absl::Seconds(5), o.Callback());
    auto r = o.Get();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
    EXPECT_NE(r.status().message().find("no such object: /c/x"), std::string_view::npos) << r.status();
}

// Requests and answers larger than the connection's frames travel in pieces, interleaved
// with small calls on the same connection.
TEST(PeerTcp, MessagesLargerThanAFrameTravelInPieces) {
    auto server = PeerLoop::Create({.terms = {.max_body = 64 << 10, .window = 8}});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [](PeerRequest r) {
        std::string answer = r.body();
        std::reverse(answer.begin(), answer.end());
        r.Respond(absl::OkStatus(), std::move(answer));
    });
    auto client_loop = PeerLoop::Create({.terms = {.max_body = 64 << 10, .window = 8}});
    auto peer = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(peer.ok()) << peer.status();
    std::vector<std::string> bodies;
    for (size_t size : {size_t{64 << 10}, size_t{(64 << 10) + 1}, size_t{5 << 20}, size_t{3}}) {
        std::string b(size, '\0');
        for (size_t i = 0; i < size; ++i) {
            b[i] = static_cast<char>(i * 7 + size);
        }
        bodies.push_back(std::move(b));
    }
    std::vector<Outcome> outcomes(bodies.size() * 3);
    for (size_t i = 0; i < outcomes.size(); ++i) {
        (*peer)->Call(bodies[i % bodies.size()], absl::Now() + absl::Seconds(20), outcomes[i].Callback());
    }
    for (size_t i = 0; i < outcomes.size(); ++i) {
        auto r = outcomes[i].Get();
        ASSERT_TRUE(r.ok()) << i << ": " << r.status();
        std::string want = bodies[i % bodies.size()];
        std::reverse(want.begin(), want.end());
        EXPECT_TRUE(*r == want) << "message " << i << " of " << want.size() << " bytes came back as " << r->size();
    }
}

TEST(PeerTcp, APeerWithoutTheKeyIsRefusedAndOneWithItAccepted) {
    std::atomic<int> served{0};
    auto server = PeerLoop::Create({});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [&](PeerRequest r) {
        ++served;
        r.Respond(absl::OkStatus(), "");
    });
    auto client_loop = PeerLoop::Create({});
    auto wrong = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret + "!"});
    EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
    auto stranger = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-z", .secret = kSecret});
    EXPECT_EQ(stranger.status().code(), absl::StatusCode::kPermissionDenied) << stranger.status();
    EXPECT_TRUE(Eventually([&] { return (*server)->connections() == 0; })) << "refused connections must go";
    auto right = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(right.ok()) << right.status();
    Outcome o;
    (*right)->Call("hi", absl::Now() + absl::Seconds(5), o.Callback());
    EXPECT_TRUE(o.Get().ok());
    EXPECT_EQ(served.load(), 1);
    // A port where nobody listens: Unavailable, promptly.
    auto nobody = (*client_loop)->Dial("127.0.0.1", 1, {.id = "node-a", .secret = kSecret});
    EXPECT_EQ(nobody.status().code(), absl::StatusCode::kUnavailable) << nobody.status();
}

TEST(PeerTcp, ASlowPeerHoldsCallersBackByCreditsNotByMemory) {
    // The server posts 4 receive buffers: at most 4 of our requests reach it unanswered.
    std::mutex mu;  // (before the loop: what its thread touches outlives it)
    std::vector<PeerRequest> held;
    auto server = PeerLoop::Create({.terms = {.max_body = 1 << 16, .window = 4}});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [&](PeerRequest r) {
        std::lock_guard<std::mutex> lock(mu);
        held.push_back(std::move(r));
    });
    auto client_loop = PeerLoop::Create({.max_queued = 50});
    auto peer = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(peer.ok()) << peer.status();
    std::vector<Outcome> outcomes(60);
    for (int i = 0; i < 60; ++i) {
        (*peer)->Call(std::to_string(i), absl::Now() + absl::Seconds(30), outcomes[i].Callback());
    }
    auto count = [&] {
        std::lock_guard<std::mutex> lock(mu);
        return held.size();
    };
    ASSERT_TRUE(Eventually([&] { return count() == 4; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(count(), 4u) << "the peer got more requests than it posted buffers for";
    // Beyond the queue's bound, calls fail at once instead of taking memory; the others wait.
    int refused = 0;
    for (auto& o : outcomes) {
        if (o.Done()) {
            EXPECT_EQ(o.Get().status().code(), absl::StatusCode::kResourceExhausted) << o.Get().status();
            ++refused;
        }
    }
    EXPECT_GE(refused, 60 - 4 - 50) << "60 calls on a queue of 50 and a window of 4: the rest must be refused";
    // The peer answers: each answer frees a buffer, and the waiting calls go on, in order.
    size_t answered = 0;
    while (answered < 60 - static_cast<size_t>(refused)) {
        std::vector<PeerRequest> batch;
        {
            std::lock_guard<std::mutex> lock(mu);
            batch.swap(held);
        }
        for (auto& r : batch) {
            r.Respond(absl::OkStatus(), "done:" + r.body());
            ++answered;
        }
        if (batch.empty()) {
            ASSERT_TRUE(Eventually([&] { return count() > 0; })) << answered << " answered, the rest never came";
        }
    }
    for (int i = 0; i < 60; ++i) {
        auto r = outcomes[i].Get();
        if (!absl::IsResourceExhausted(r.status())) {
            ASSERT_TRUE(r.ok()) << i << ": " << r.status();
            EXPECT_EQ(*r, "done:" + std::to_string(i));
        }
    }
}

TEST(PeerTcp, DeadlinesAreKeptOnBothSides) {
    std::atomic<int> handed_up{0};
    std::mutex mu;
    std::vector<PeerRequest> ignored;
    auto server = PeerLoop::Create({});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [&](PeerRequest r) {
        ++handed_up;
        std::lock_guard<std::mutex> lock(mu);
        ignored.push_back(std::move(r));  // never answered
    });
    auto client_loop = PeerLoop::Create({});
    auto peer = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(peer.ok());
    // The caller's side: no answer by the deadline.
    Outcome late;
    absl::Time start = absl::Now();
    (*peer)->Call("slow", start + absl::Milliseconds(100), late.Callback());
    EXPECT_EQ(late.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
    // The serving side: a request whose deadline passed on the way is answered, not done.
    int before = handed_up.load();
    Outcome expired;
    (*peer)->Call("too late", absl::Now() - absl::Seconds(1), expired.Callback());
    auto r = expired.Get();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(handed_up.load(), before) << "expired work must be dropped, not done";
}

TEST(PeerTcp, AHostileOrSilentPeerCostsOnlyItsOwnConnection) {
    auto server = PeerLoop::Create({.handshake_timeout = absl::Milliseconds(300)});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [](PeerRequest r) { r.Respond(absl::OkStatus(), r.body()); });
    auto client_loop = PeerLoop::Create({});
    auto good = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(good.ok());
    // Garbage: closed at its first header.
    int garbage = RawConnect(*port);
    std::string junk(4096, '\xab');
    ASSERT_EQ(::send(garbage, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
    char c;
    EXPECT_EQ(::recv(garbage, &c, 1, 0), 0) << "the server must close a connection that sends garbage";
    ::close(garbage);
    // A request before any handshake: closed.
    int eager = RawConnect(*port);
    std::string req = EncodeFrame(FrameHeader{.kind = FrameKind::kRequest, .request_id = 1}, "let me in");
    ASSERT_EQ(::send(eager, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    EXPECT_EQ(::recv(eager, &c, 1, 0), 0);
    ::close(eager);
    // Silence: closed when the handshake's time is up.
    int silent = RawConnect(*port);
    absl::Time start = absl::Now();
    EXPECT_EQ(::recv(silent, &c, 1, 0), 0);
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
    ::close(silent);
    // Meanwhile the good peer is served as ever.
    for (int i = 0; i < 100; ++i) {
        Outcome o;
        (*good)->Call("ok", absl::Now() + absl::Seconds(5), o.Callback());
        ASSERT_TRUE(o.Get().ok());
    }
    EXPECT_TRUE(Eventually([&] { return (*server)->connections() == 1; }));
}

// A peer that holds a key but ignores flow control (a flood of requests beyond the window
// it was granted) loses its connection; another peer's calls go on meanwhile.
TEST(PeerTcp, AFloodBeyondTheCreditsClosesOnlyTheFloodersConnection) {
    // The flooder's requests are held (never answered, so it earns no credit back); the
    // good peer's are answered.
    std::atomic<int> flood_served{0};
    std::mutex mu;
    std::vector<PeerRequest> held;
    auto server = PeerLoop::Create({.terms = {.max_body = 1 << 16, .window = 8}});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [&](PeerRequest r) {
        if (r.body() == "flood") {
            ++flood_served;
            std::lock_guard<std::mutex> lock(mu);
            held.push_back(std::move(r));
            return;
        }
        r.Respond(absl::OkStatus(), "ok");
    });
    auto client_loop = PeerLoop::Create({});
    auto good = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(good.ok());
    // The flooder speaks the handshake properly, with the key...
    int fd = RawConnect(*port);
    DialerHandshake hs({.id = "node-a", .secret = kSecret}, {.max_body = 1 << 16, .window = 8});
    std::string hello = EncodeFrame(FrameHeader{.kind = FrameKind::kHello}, hs.Hello());
    ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
    std::string got;
    FrameReader reader(1 << 16);
    while (true) {
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        ASSERT_GT(n, 0);
        reader.Feed(std::string_view(buf, static_cast<size_t>(n)));
        if (auto f = reader.Next()) {
            ASSERT_EQ(f->header.kind, FrameKind::kChallenge);
            got = std::string(f->body);
            break;
        }
    }
    auto proof = hs.Answer(got);
    ASSERT_TRUE(proof.ok()) << proof.status();
    std::string flood = EncodeFrame(FrameHeader{.kind = FrameKind::kProof}, *proof);
    // ...then sends 1000 requests on a window of 8.
    for (uint64_t id = 1; id <= 1000; ++id) {
        flood += EncodeFrame(FrameHeader{.kind = FrameKind::kRequest, .request_id = id}, "flood");
    }
    (void)::send(fd, flood.data(), flood.size(), MSG_NOSIGNAL);
    // Its connection is closed (after at most its window was served)...
    std::string rest;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
        rest.append(buf, static_cast<size_t>(n));
    }
    EXPECT_EQ(n, 0) << "the server must close a connection that ignores its credits";
    ::close(fd);
    EXPECT_EQ(flood_served.load(), 8) << "the flooder's window, and not one request more";
    // ...and the good peer is served as ever.
    for (int i = 0; i < 100; ++i) {
        Outcome o;
        (*good)->Call("ok", absl::Now() + absl::Seconds(5), o.Callback());
        ASSERT_TRUE(o.Get().ok());
    }
}

// Descriptors this process holds now.
size_t OpenFds() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        ++n;
    }
    return n;
}

TEST(PeerTcp, ClosedConnectionsLeaveNoDescriptorBehind) {
    // Each connection's multishot receive completes many times before its last completion:
    // only that last one lets the connection (and its socket) go.
    auto server = PeerLoop::Create({});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [](PeerRequest r) { r.Respond(absl::OkStatus(), "ok"); });
    auto client_loop = PeerLoop::Create({});
    size_t before = OpenFds();
    for (int i = 0; i < 20; ++i) {
        auto peer = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
        ASSERT_TRUE(peer.ok()) << peer.status();
        for (int j = 0; j < 3; ++j) {
            Outcome o;
            (*peer)->Call("x", absl::Now() + absl::Seconds(5), o.Callback());
            ASSERT_TRUE(o.Get().ok());
        }
        peer->reset();
    }
    EXPECT_TRUE(Eventually([&] {
        return (*server)->connections() == 0 && (*client_loop)->connections() == 0 && OpenFds() <= before;
    })) << OpenFds() << " descriptors open, " << before << " before 20 connections came and went";
}

TEST(PeerTcp, ABrokenConnectionFailsItsCallsAsOutcomeUnknown) {
    std::mutex mu;
    std::vector<PeerRequest> held;
    auto server = PeerLoop::Create({});
    auto port = (*server)->Listen("127.0.0.1", 0, Keys(), [&](PeerRequest r) {
        std::lock_guard<std::mutex> lock(mu);
        held.push_back(std::move(r));
    });
    auto client_loop = PeerLoop::Create({});
    auto peer = (*client_loop)->Dial("127.0.0.1", *port, {.id = "node-a", .secret = kSecret});
    ASSERT_TRUE(peer.ok());
    std::vector<Outcome> outcomes(5);
    for (auto& o : outcomes) {
        (*peer)->Call("x", absl::Now() + absl::Seconds(30), o.Callback());
    }
    ASSERT_TRUE(Eventually([&] {
        std::lock_guard<std::mutex> lock(mu);
        return held.size() == 5;
    }));
    held.clear();
    server->reset();  // the data node goes away with the calls in flight
    for (auto& o : outcomes) {
        auto r = o.Get();
        EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
        EXPECT_NE(r.status().message().find("may or may not have been done"), std::string_view::npos) << r.status();
    }
    EXPECT_TRUE(Eventually([&] { return !(*peer)->open(); }));
    Outcome after;
    (*peer)->Call("x", absl::Now() + absl::Seconds(1), after.Callback());
    EXPECT_EQ(after.Get().status().code(), absl::StatusCode::kUnavailable);
}

// Landings over TCP (frame.h, "Landing"): a large answer's bytes are received by the kernel
// straight into the caller's memory.

struct TcpNodes {
    std::unique_ptr<PeerLoop> server = *PeerLoop::Create({});
    std::unique_ptr<PeerLoop> client = *PeerLoop::Create({});
    uint16_t port = *server->Listen("127.0.0.1", 0, Keys(), ServeEchoAndLandings);

    std::unique_ptr<PeerClient> Dial(uint16_t to) {
        auto c = client->Dial("127.0.0.1", to, {.id = "node-a", .secret = kSecret});
        EXPECT_TRUE(c.ok()) << c.status();
        return c.ok() ? std::move(*c) : nullptr;
    }
};

// The bytes ServeEchoAndLandings answers "land:N" with, as the landing should hold them.
bool LandedAsServed(const std::string& landing, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        char want = i % 4096 == 0 ? static_cast<char>('a' + (i / 4096) % 26) : 'L';
        if (landing[i] != want) {
            ADD_FAILURE() << "byte " << i << " of the landing is " << static_cast<int>(landing[i]);
            return false;
        }
    }
    return true;
}

TEST(PeerTcp, ALargeAnswerIsReceivedStraightIntoTheCallersLanding) {
    TcpNodes nodes;
    auto client = nodes.Dial(nodes.port);
    ASSERT_NE(client, nullptr);
    constexpr size_t kAnswer = 5 << 20;
    std::string landing(6 << 20, '\0');
    testing::Outcome<LandedAnswer> out;
    client->CallInto("land:" + std::to_string(kAnswer), absl::Now() + absl::Seconds(10),
                     {.addr = landing.data(), .capacity = landing.size()}, out.Callback());
    auto got = out.Get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->landed, kAnswer);
    EXPECT_FALSE(got->written);
    EXPECT_EQ(got->rest, "tail");
    EXPECT_TRUE(LandedAsServed(landing, kAnswer));
    EXPECT_EQ(landing.find_first_not_of('\0', kAnswer), std::string::npos) << "nothing beyond the answer";
    // The first piece's header comes into the receive buffers with as much of its body as
    // arrived by then (copied from there); from then on each header is received alone and
    // each piece by the kernel straight into the landing.
    EXPECT_GE(nodes.client->received_into_landings(), kAnswer - (1 << 20));
    // And the connection goes on as before.
    Outcome echo;
    client->Call("after", absl::Now() + absl::Seconds(10), echo.Callback());
    EXPECT_EQ(echo.Get().value_or(""), "echo:after");
}

TEST(PeerTcp, AnAnswerLargerThanItsLandingIsRefusedNotReceivedBeyondIt) {
    TcpNodes nodes;
    auto client = nodes.Dial(nodes.port);
    ASSERT_NE(client, nullptr);
    std::string region(200000, '\0');
    testing::Outcome<LandedAnswer> out;
    client->CallInto("land:200000", absl::Now() + absl::Seconds(10), {.addr = region.data(), .capacity = 100000},
                     out.Callback());
    auto got = out.Get();
    EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted) << got.status();
    EXPECT_EQ(region.find('L'), std::string::npos);
    EXPECT_TRUE(client->open()) << "a refused answer is no reason to drop the connection";
}

// A TCP relay between a dialer and a listener that can hold back what the listener sends
// after a number of bytes (an answer stalled half way, as on a congested link) and let it go
// again.
class StallingRelay {
public:
    explicit StallingRelay(uint16_t to) : to_(to) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = {};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(listener_, 1), 0);
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { Run(); });
    }
    ~StallingRelay() {
        stop_ = true;
        ::shutdown(listener_, SHUT_RDWR);
        thread_.join();
        ::close(listener_);
    }
    uint16_t port() const { return port_; }
    // From now on, the listener's next `bytes` get through and then nothing until Release().
    void StallAfter(size_t bytes) { budget_ = bytes; }
    void Release() { budget_ = SIZE_MAX; }
    size_t held() const { return held_; }

private:
    void Run() {
        int a = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (a < 0) {
            return;
        }
        int b = RawConnect(to_);
        std::vector<char> buf(64 << 10);
        while (!stop_) {
            pollfd fds[2] = {{a, POLLIN, 0}, {b, budget_ > 0 ? short{POLLIN} : short{0}, 0}};
            if (::poll(fds, 2, 10) <= 0) {
                held_ = budget_ == 0;
                continue;
            }
            if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = ::recv(a, buf.data(), buf.size(), 0);
                if (n <= 0 || ::send(b, buf.data(), n, MSG_NOSIGNAL) != n) {
                    break;
                }
            }
            if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                size_t budget = budget_;
                ssize_t n = ::recv(b, buf.data(), std::min(buf.size(), budget), 0);
                if (n <= 0 || ::send(a, buf.data(), n, MSG_NOSIGNAL) != n) {
                    break;
                }
                if (budget != SIZE_MAX) {
                    budget_ = budget - n;
                }
            }
        }
        ::close(a);
        ::close(b);
    }

    uint16_t to_, port_ = 0;
    int listener_ = -1;
    std::atomic<size_t> budget_{SIZE_MAX};
    std::atomic<bool> held_{false}, stop_{false};
    std::thread thread_;
};

TEST(PeerTcp, ACallPastItsDeadlineMidAnswerGetsItsLandingBackUntouchedAndTheConnectionGoesOn) {
    TcpNodes nodes;
    StallingRelay relay(nodes.port);
    auto client = nodes.Dial(relay.port());
    ASSERT_NE(client, nullptr);
    // A 4 MiB answer stalls after a megabyte and a half: a receive into the landing is then
    // in flight when the call's deadline passes.
    relay.StallAfter(3 << 19);
    constexpr size_t kAnswer = 4 << 20;
    std::string landing(kAnswer, '\0');
    testing::Outcome<LandedAnswer> out;
    absl::Time start = absl::Now();
    client->CallInto("land:" + std::to_string(kAnswer), absl::Now() + absl::Milliseconds(300),
                     {.addr = landing.data(), .capacity = landing.size()}, out.Callback());
    auto got = out.Get();
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
    // The caller has its memory back and uses it; the rest of the answer arrives late.
    landing.assign(kAnswer, 'z');
    relay.Release();
    Outcome echo;
    client->Call("after", absl::Now() + absl::Seconds(10), echo.Callback());
    EXPECT_EQ(echo.Get().value_or(""), "echo:after") << "the late answer was read past, in step";
    EXPECT_EQ(landing.find_first_not_of('z'), std::string::npos) << "a late answer landed in memory given back";
}

TEST(PeerTcp, AConnectionClosedMidAnswerFailsItsLandedCallAsOutcomeUnknown) {
    TcpNodes nodes;
    StallingRelay relay(nodes.port);
    auto client = nodes.Dial(relay.port());
    ASSERT_NE(client, nullptr);
    relay.StallAfter(3 << 19);
    std::string landing(4 << 20, '\0');
    testing::Outcome<LandedAnswer> out;
    client->CallInto("land:4194304", absl::Now() + absl::Seconds(30),
                     {.addr = landing.data(), .capacity = landing.size()}, out.Callback());
    ASSERT_TRUE(Eventually([&] { return relay.held(); }));
    client.reset();  // the connection closes with a receive into the landing in flight
    auto got = out.Get();
    EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
    EXPECT_TRUE(IsConnectionLoss(got.status())) << got.status();
}

}  // namespace
}  // namespace zerohop::peer

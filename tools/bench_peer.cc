// zh-bench --suite peer: a container of another node, reached through the local zerohopd,
// the peer transport and the data node's zerohopd, over a veth link between two network
// namespaces the run makes for itself (a real network hop; it needs root). Against it, over
// the same link and in the same run, what a user would do without us: a raw TCP ping-pong
// and a raw TCP stream (the link's own limits), Redis, and a gRPC unary echo.
//
//   caller namespace                          data namespace
//   zh-bench ── rings ── zerohopd (peer) ═══ veth ═══ zerohopd (peer_listen, embedded store)
//   zh-bench (raw, hiredis, gRPC) ───────────────────── echo/stream servers, redis, gRPC echo
//
// The servers of the data namespace are this binary again (`--peer-worker ...`), started
// with `ip netns exec`; so are the 16 client processes of the shared-connection workload.

#include "bench_peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench_echo.grpc.pb.h"
#include "bench_procs.h"
#include "zerohop/client.h"

namespace zerohop {

namespace {

constexpr size_t kSmall = 100;  // the item's value, and the raw ping-pong's message each way
constexpr size_t kMiB = 1 << 20;
constexpr int kDepth = 16;
constexpr int kProcesses = 16;

// The data namespace's ports (the namespace is the run's own: nothing else listens there).
constexpr int kPeerPort = 7100, kEchoSleepPort = 7101, kEchoBusyPort = 7102, kStreamPort = 7103, kRedisPort = 7104,
              kGrpcPort = 7105, kAnswerPort = 7106;

// The namespaces' names while they exist, for Fail() to remove them on its way out.
std::string g_made_namespaces;

void Fail(const std::string& why) {
    std::cerr << "zh-bench --suite peer: " << why << "\n";
    if (!g_made_namespaces.empty()) {
        (void)std::system(g_made_namespaces.c_str());
    }
    std::exit(1);
}

std::string SelfPath() {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        Fail("cannot read /proc/self/exe");
    }
    return std::string(self, static_cast<size_t>(n));
}

// Two network namespaces joined by a veth pair, made for the run and removed with it. The
// calling thread (and what it starts) enters the caller's side; the data side's processes
// are started through InData().
class VethLink {
public:
    VethLink() {
        std::string id = std::to_string(getpid());
        caller_ns_ = "zhb-c-" + id;
        data_ns_ = "zhb-d-" + id;
        std::string vc = "zhbc" + id, vd = "zhbd" + id;
        g_made_namespaces =
            absl::StrCat("ip netns del ", caller_ns_, " 2>/dev/null; ip netns del ", data_ns_, " 2>/dev/null");
        const std::vector<std::string> steps = {
            "ip netns add " + caller_ns_,
            "ip netns add " + data_ns_,
            absl::StrCat("ip link add ", vc, " netns ", caller_ns_, " type veth peer name ", vd, " netns ", data_ns_),
            absl::StrCat("ip -n ", caller_ns_, " addr add ", caller_ip, "/24 dev ", vc),
            absl::StrCat("ip -n ", data_ns_, " addr add ", data_ip, "/24 dev ", vd),
            absl::StrCat("ip -n ", caller_ns_, " link set lo up"),
            absl::StrCat("ip -n ", data_ns_, " link set lo up"),
            absl::StrCat("ip -n ", caller_ns_, " link set ", vc, " up"),
            absl::StrCat("ip -n ", data_ns_, " link set ", vd, " up"),
        };
        for (const auto& step : steps) {
            if (std::system(step.c_str()) != 0) {
                Remove();
                Fail("the suite runs over a veth link between two network namespaces it makes (root, iproute2): `" +
                     step + "` failed");
            }
        }
        own_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        int caller = ::open(("/run/netns/" + caller_ns_).c_str(), O_RDONLY | O_CLOEXEC);
        if (own_ < 0 || caller < 0 || ::setns(caller, CLONE_NEWNET) != 0) {
            Fail("cannot enter the caller's network namespace");
        }
        ::close(caller);
    }
    ~VethLink() {
        if (own_ >= 0) {
            ::setns(own_, CLONE_NEWNET);  // back where the rest of zh-bench runs
            ::close(own_);
            own_ = -1;
        }
        Remove();
    }
    VethLink(const VethLink&) = delete;
    VethLink& operator=(const VethLink&) = delete;

    // `argv` as a command run in the data namespace.
    std::vector<std::string> InData(std::vector<std::string> argv) const {
        std::vector<std::string> full = {"ip", "netns", "exec", data_ns_};
        full.insert(full.end(), argv.begin(), argv.end());
        return full;
    }

    const std::string caller_ip = "10.231.0.1", data_ip = "10.231.0.2";

private:
    static void Remove() {
        // Deleting a namespace takes its end of the veth pair, and with it the other.
        (void)std::system(g_made_namespaces.c_str());
        g_made_namespaces.clear();
    }

    std::string caller_ns_, data_ns_;
    int own_ = -1;
};

int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void SendAll(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            std::exit(0);  // the other side went away: the worker's job is over
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
}

// Reads exactly `n` bytes; `busy`: never sleeps in the kernel (non-blocking reads in a loop).
bool RecvAll(int fd, char* p, size_t n, bool busy) {
    while (n > 0) {
        ssize_t r = ::recv(fd, p, n, busy ? MSG_DONTWAIT : 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            return false;
        }
        if (r > 0) {
            p += r;
            n -= static_cast<size_t>(r);
        }
    }
    return true;
}

int Listen(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) {
        Fail(absl::StrCat("cannot listen on port ", port, ": ", strerror(errno)));
    }
    return fd;
}

int AcceptOne(int listener) {
    int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

// A TCP connection to a server of the data namespace, waiting for it to listen.
int ConnectTo(const std::string& ip, int port) {
    for (int i = 0; i < 500; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = {};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        ::close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Fail(absl::StrCat("nothing listens on ", ip, ":", port));
    return -1;
}

// The gRPC echo's server side.
class EchoService final : public bench::Echo::Service {
    grpc::Status Call(grpc::ServerContext*, const bench::Blob* in, bench::Blob* out) override {
        out->set_data(in->data());
        return grpc::Status::OK;
    }
};

// Established TCP connections on local port `port` in the network namespace of `pid` (its
// /proc/PID/net/tcp): how many connections a server holds.
int EstablishedOn(pid_t pid, int port) {
    std::ifstream f(absl::StrCat("/proc/", pid, "/net/tcp"));
    std::string line;
    std::getline(f, line);  // the heading
    int n = 0;
    while (std::getline(f, line)) {
        std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
        if (fields.size() < 4) {
            continue;
        }
        auto colon = fields[1].find(':');
        uint32_t local_port = 0;
        if (colon != std::string::npos && absl::SimpleHexAtoi(fields[1].substr(colon + 1), &local_port) &&
            static_cast<int>(local_port) == port && fields[3] == "01") {
            ++n;
        }
    }
    return n;
}

// Runs `kProcesses` copies of `--peer-worker <argv...>` (each a client doing synchronous
// calls for `d` from a common start), samples the server's connections at half time, and
// sums their calls.
Result RunProcesses(const std::string& name, std::chrono::milliseconds d, const std::string& dir,
                    std::vector<std::string> argv, pid_t server, int server_port, int* connections) {
    int64_t start = NowNs() + 500'000'000;  // time for all to connect before the start
    std::vector<std::unique_ptr<Child>> children;
    std::vector<std::string> outs;
    for (int i = 0; i < kProcesses; ++i) {
        outs.push_back(absl::StrCat(dir, "/", name, ".", i));
        std::vector<std::string> full = {SelfPath(), "--peer-worker"};
        full.insert(full.end(), argv.begin(), argv.end());
        full.push_back(std::to_string(start));
        full.push_back(std::to_string(d.count()));
        full.push_back(outs.back());
        children.push_back(std::make_unique<Child>(std::move(full)));
    }
    std::this_thread::sleep_until(std::chrono::system_clock::time_point(std::chrono::nanoseconds(start)) + d / 2);
    *connections = EstablishedOn(server, server_port);
    double ops = 0;
    for (int i = 0; i < kProcesses; ++i) {
        if (children[i]->Wait() != 0) {
            Fail(name + ": a client process failed");
        }
        std::ifstream f(outs[i]);
        double n = 0;
        f >> n;
        ops += n;
    }
    Result r;
    r.name = name;
    r.ops_per_s = ops / std::chrono::duration<double>(d).count();
    return r;
}

// One client process of RunProcesses: synchronous calls from `start_ns` for `ms`, their
// number written to `out`.
int ClientProcess(const std::function<bool()>& call, int64_t start_ns, int64_t ms, const std::string& out) {
    std::this_thread::sleep_until(std::chrono::system_clock::time_point(std::chrono::nanoseconds(start_ns)));
    int64_t end = start_ns + ms * 1'000'000, n = 0;
    while (NowNs() < end) {
        if (!call()) {
            return 1;
        }
        ++n;
    }
    std::ofstream(out) << n << "\n";
    return 0;
}

Comparison Judged(Result ours, Result baseline, std::string baseline_name, double ratio, std::string means) {
    Comparison c;
    c.ours = std::move(ours);
    c.baseline = std::move(baseline);
    c.baseline_name = std::move(baseline_name);
    c.ratio = ratio;
    c.ratio_means = std::move(means);
    return c;
}

}  // namespace

int PeerWorker(int argc, char** argv) {
    std::vector<std::string> a(argv + 2, argv + argc);
    auto arg = [&](size_t i) -> const std::string& {
        if (i >= a.size()) {
            Fail("--peer-worker: too few arguments");
        }
        return a[i];
    };
    const std::string& kind = arg(0);
    if (kind == "echo") {  // echo PORT sleep|busy: one connection, kSmall bytes back for kSmall
        int listener = Listen(std::stoi(arg(1)));
        bool busy = arg(2) == "busy";
        int c = AcceptOne(listener);
        char buf[kSmall];
        while (RecvAll(c, buf, kSmall, busy)) {
            SendAll(c, buf, kSmall);
        }
        return 0;
    }
    if (kind == "stream") {  // stream PORT: one connection, bytes as fast as it takes them
        int listener = Listen(std::stoi(arg(1)));
        int c = AcceptOne(listener);
        std::string chunk(kMiB, 's');
        for (;;) {
            SendAll(c, chunk.data(), chunk.size());
        }
    }
    if (kind == "answer") {  // answer PORT: one connection, 1 MiB back for every byte
        int listener = Listen(std::stoi(arg(1)));
        int c = AcceptOne(listener);
        std::string chunk(kMiB, 'a');
        char one;
        while (RecvAll(c, &one, 1, false)) {
            SendAll(c, chunk.data(), chunk.size());
        }
        return 0;
    }
    if (kind == "grpc") {  // grpc PORT
        EchoService service;
        grpc::ServerBuilder builder;
        builder.AddListeningPort(absl::StrCat("0.0.0.0:", arg(1)), grpc::InsecureServerCredentials());
        builder.RegisterService(&service);
        std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
        if (server == nullptr) {
            Fail("the gRPC echo server did not start");
        }
        server->Wait();
        return 0;
    }
    if (kind == "get-item") {  // get-item SOCKET KEY START_NS MS OUT: through the local zerohopd
        ClientOptions opts;
        opts.socket_path = arg(1);
        opts.access_key = arg(2);
        std::unique_ptr<Client> client = ConnectWaiting(opts);
        Path key = *Path::Parse("/bench/item");
        return ClientProcess([&] { return client->GetItem({.path = key}).ok(); }, std::stoll(arg(3)),
                             std::stoll(arg(4)), arg(5));
    }
    if (kind == "redis-get") {  // redis-get HOST PORT START_NS MS OUT: a connection of its own
        redisContext* rc = ConnectRedis(std::stoi(arg(2)), arg(1));
        return ClientProcess(
            [&] {
                auto* r = static_cast<redisReply*>(redisCommand(rc, "GET item"));
                bool ok = r != nullptr && r->type == REDIS_REPLY_STRING;
                freeReplyObject(r);
                return ok;
            },
            std::stoll(arg(3)), std::stoll(arg(4)), arg(5));
    }
    Fail("--peer-worker: no worker " + kind);
    return 2;
}

std::vector<Comparison> PeerSuite(std::chrono::milliseconds d, const std::string& dir) {
    std::vector<Comparison> out;
    if (geteuid() != 0) {
        std::cerr << "zh-bench --suite peer: skipped: it runs over a veth link between two network namespaces it "
                     "makes, which needs root\n";
        return out;
    }
    const std::string self = SelfPath();
    VethLink link;
    const std::string secret = "zh-bench-peer-secret-0123456789";

    // The data namespace: a zerohopd serving container bench to key node-a, and the baselines'
    // servers.
    std::string data_dir = dir + "/peer-data", caller_dir = dir + "/peer-caller";
    std::filesystem::create_directories(data_dir);
    std::filesystem::create_directories(caller_dir);
    BenchDaemon data = StartBenchDaemon(
        data_dir, 1,
        absl::StrCat("peer_listen: {address: ", link.data_ip, ", port: ", kPeerPort,
                     "}\npeer_keys:\n  - {id: node-a, secret: ", secret, ", containers: {bench: rw}}\n"),
        link.InData({}));
    std::unique_ptr<Client> local = ConnectWaiting(data.options);  // (the data node is up)
    Child echo_sleep(link.InData({self, "--peer-worker", "echo", std::to_string(kEchoSleepPort), "sleep"}));
    Child echo_busy(link.InData({self, "--peer-worker", "echo", std::to_string(kEchoBusyPort), "busy"}));
    Child stream(link.InData({self, "--peer-worker", "stream", std::to_string(kStreamPort)}));
    Child answer(link.InData({self, "--peer-worker", "answer", std::to_string(kAnswerPort)}));
    Child grpc_server(link.InData({self, "--peer-worker", "grpc", std::to_string(kGrpcPort)}));
    Child redis(link.InData({"redis-server", "--port", std::to_string(kRedisPort), "--bind", link.data_ip,
                             "--protected-mode", "no", "--save", "", "--appendonly", "no"}));

    // The caller's namespace: a zerohopd whose container bench is the data node's.
    ClientOptions opts;
    opts.socket_path = caller_dir + "/zh.sock";
    opts.access_key = "bench";
    std::ofstream(caller_dir + "/zerohopd.yaml")
        << "listen: " << opts.socket_path << "\nworkers: 1\nmetrics_port: 0\nlog_level: warning\n"
        << "mounts:\n  - {container: bench, backend: peer, options: {url: \"peer://" << link.data_ip << ":" << kPeerPort
        << "/bench\", key_id: node-a, secret: " << secret << "}}\n"
        << "credentials:\n  - {key: bench, containers: {bench: rw}}\n";
    Child caller_process({FindZerohopd(), "--config", caller_dir + "/zerohopd.yaml"});
    std::unique_ptr<Client> client = ConnectWaiting(opts);
    redisContext* rc = ConnectRedis(kRedisPort, link.data_ip);

    const std::string value(kSmall, 'v');
    Path item = *Path::Parse("/bench/item");
    Check(client->PutItem({.path = item, .attributes = {{"v", Value::String(value)}}}).status(), "put the item");
    freeReplyObject(redisCommand(rc, "SET item %b", value.data(), value.size()));

    // 1. A small get_item, synchronous, against a raw ping-pong of the same size: sleeping on
    // both sides (as our daemons wait), then the raw pair busy-polling (ours unchanged).
    Result small =
        MeasureEach("peer_get_item_small", d, [&] { Check(client->GetItem({.path = item}).status(), "get_item"); });
    for (bool busy : {false, true}) {
        int fd = ConnectTo(link.data_ip, busy ? kEchoBusyPort : kEchoSleepPort);
        char buf[kSmall] = {};
        Result raw = MeasureEach(busy ? "raw_tcp_pingpong_100B_busy_poll" : "raw_tcp_pingpong_100B_sleeping", d, [&] {
            SendAll(fd, buf, kSmall);
            if (!RecvAll(fd, buf, kSmall, busy)) {
                Fail("the raw ping-pong's server went away");
            }
        });
        ::close(fd);
        Comparison c = Judged(small, raw,
                              busy ? "raw TCP ping-pong of 100 B over the veth link, both sides busy-polling"
                                   : "raw TCP ping-pong of 100 B over the veth link, both sides sleeping in recv",
                              small.p50_us / raw.p50_us, "our p50 / raw ping-pong p50; lower is better");
        if (busy) {
            c.ours.name = "peer_get_item_small_vs_busy_poll";
        }
        out.push_back(std::move(c));
    }

    // 2. 1 MiB gets against a raw stream's bandwidth over the same link.
    {
        std::string data(kMiB, 'o');
        Path obj = *Path::Parse("/bench/obj1m");
        Check(client->PutObject({.path = obj}, data).status(), "put 1 MiB");
        // A ranged get (as a file read is): its bytes are received by the caller's daemon
        // straight into the client's session region. A get of the whole object (its size not
        // known up front) is copied there from the receive buffers.
        auto get = [&](GetObjectRequest req) {
            auto r = client->GetObjectView(req);
            if (!r.ok() || r->data().size() != kMiB) {
                Fail("a 1 MiB get failed or came back short");
            }
        };
        Result ranged = MeasureEach(
            "peer_get_1MiB", d, [&] { get({.path = obj, .offset = 0, .length = kMiB}); }, kMiB);
        Result whole = MeasureEach(
            "peer_get_1MiB_whole_object", d, [&] { get({.path = obj}); }, kMiB);
        // Four in flight, as a reader that reads ahead keeps them.
        constexpr int kAhead = 4;
        Result ahead = Measure(
            "peer_get_1MiB_4_in_flight", d,
            [&] {
                int done = 0;
                for (int i = 0; i < kAhead; ++i) {
                    client->GetObjectAsync({.path = obj, .offset = 0, .length = kMiB},
                                           [&done](absl::StatusOr<ObjectView> v) {
                                               if (!v.ok() || v->data().size() != kMiB) {
                                                   Fail("a 1 MiB get failed or came back short");
                                               }
                                               ++done;
                                           });
                }
                while (done < kAhead) {
                    if (client->Poll() == 0) {
                        client->WaitAndPoll(absl::Milliseconds(10));
                    }
                }
            },
            kMiB);
        ahead.ops_per_s *= kAhead;
        int one_fd = ConnectTo(link.data_ip, kAnswerPort);
        std::string one_buf(kMiB, '\0');
        Result request = MeasureEach(
            "raw_tcp_request_1MiB", d,
            [&] {
                SendAll(one_fd, "?", 1);
                if (!RecvAll(one_fd, one_buf.data(), kMiB, false)) {
                    Fail("the raw answering server went away");
                }
            },
            kMiB);
        ::close(one_fd);
        int fd = ConnectTo(link.data_ip, kStreamPort);
        std::string buf(kMiB, '\0');
        Result raw = MeasureEach(
            "raw_tcp_stream_1MiB", d,
            [&] {
                if (!RecvAll(fd, buf.data(), kMiB, false)) {
                    Fail("the raw stream's server went away");
                }
            },
            kMiB);
        ::close(fd);
        for (const Result& ours : {ranged, whole, ahead}) {
            out.push_back(Judged(ours, raw, "raw TCP stream over the veth link, read 1 MiB at a time",
                                 ours.ops_per_s / raw.ops_per_s, "our bandwidth / raw stream bandwidth"));
        }
        // What one request and its 1 MiB answer cost on the link itself, for the synchronous
        // gets above.
        out.push_back(Judged(ranged, request, "raw TCP: 1 byte asked, 1 MiB answered, over the veth link",
                             ranged.ops_per_s / request.ops_per_s, "our bandwidth / raw request-answer bandwidth"));
        out.back().ours.name = "peer_get_1MiB_vs_raw_request";
    }

    // 3. 16 small gets in flight, against Redis pipelining 16 and a gRPC unary echo with 16
    // calls in flight, over the same link.
    Result deep = Measure("peer_get_item_pipelined16", d, [&] {
        int done = 0;
        for (int i = 0; i < kDepth; ++i) {
            client->GetItemAsync({.path = item}, [&done](absl::StatusOr<Item> got) {
                if (!got.ok()) {
                    Fail("an asynchronous get_item failed");
                }
                ++done;
            });
        }
        while (done < kDepth) {
            if (client->Poll() == 0) {
                client->WaitAndPoll(absl::Milliseconds(10));
            }
        }
    });
    deep.ops_per_s *= kDepth;
    {
        Result redis_deep = Measure("redis_get_100B_pipelined16", d, [&] {
            for (int i = 0; i < kDepth; ++i) {
                redisAppendCommand(rc, "GET item");
            }
            for (int i = 0; i < kDepth; ++i) {
                void* reply = nullptr;
                if (redisGetReply(rc, &reply) != REDIS_OK) {
                    Fail("Redis did not answer the pipeline");
                }
                freeReplyObject(reply);
            }
        });
        redis_deep.ops_per_s *= kDepth;
        Comparison c = Judged(deep, redis_deep, "Redis GET of 100 B over the veth link, pipelined 16 deep (hiredis)",
                              deep.ops_per_s / redis_deep.ops_per_s, "our ops/s / Redis ops/s");
        c.ours.name = "peer_get_item_pipelined16_vs_redis";
        out.push_back(std::move(c));
    }
    {
        auto channel =
            grpc::CreateChannel(absl::StrCat(link.data_ip, ":", kGrpcPort), grpc::InsecureChannelCredentials());
        std::unique_ptr<bench::Echo::Stub> stub = bench::Echo::NewStub(channel);
        if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
            Fail("the gRPC echo server does not answer");
        }
        struct Call {
            grpc::ClientContext ctx;
            bench::Blob request, response;
        };
        Result grpc_deep = Measure("grpc_unary_echo_100B_depth16", d, [&] {
            std::array<Call, kDepth> calls;
            std::mutex mu;
            std::condition_variable cv;
            int done = 0;
            for (Call& call : calls) {
                call.request.set_data(value);
                stub->async()->Call(&call.ctx, &call.request, &call.response, [&](grpc::Status s) {
                    if (!s.ok()) {
                        Fail("a gRPC echo call failed");
                    }
                    std::lock_guard<std::mutex> lock(mu);
                    ++done;
                    cv.notify_one();
                });
            }
            std::unique_lock<std::mutex> lock(mu);
            cv.wait(lock, [&] { return done == kDepth; });
        });
        grpc_deep.ops_per_s *= kDepth;
        Comparison c = Judged(deep, grpc_deep, "gRPC C++ unary echo of 100 B over the veth link, 16 calls in flight",
                              deep.ops_per_s / grpc_deep.ops_per_s, "our ops/s / gRPC ops/s");
        c.ours.name = "peer_get_item_pipelined16_vs_grpc";
        out.push_back(std::move(c));
    }

    redisFree(rc);  // (not to be counted among the 16 below)

    // 4. 16 client processes, each with its own session with the local zerohopd (which holds
    // the node's connection to the data node), against 16 processes with a Redis connection
    // each: throughput, and how many connections the far side holds.
    {
        int ours_conns = 0, redis_conns = 0;
        Result ours =
            RunProcesses("peer_get_item_16_processes", d, dir, {"get-item", opts.socket_path, opts.access_key},
                         data.process->pid(), kPeerPort, &ours_conns);
        Result direct =
            RunProcesses("redis_get_16_connections", d, dir, {"redis-get", link.data_ip, std::to_string(kRedisPort)},
                         redis.pid(), kRedisPort, &redis_conns);
        Comparison c;
        c.ours = ours;
        c.baseline = direct;
        c.baseline_name = "16 processes, each with its own Redis connection over the veth link (hiredis, synchronous)";
        c.extra_json =
            absl::StrFormat(R"("peer_connections": %d, "baseline_connections": %d)", ours_conns, redis_conns);
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace zerohop

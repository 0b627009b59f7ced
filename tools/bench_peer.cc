// zh-bench --suite peer: a container of another node, reached through the local zerohopd,
// the peer transport and the data node's zerohopd (two daemons on this machine, TCP on
// loopback between them), against Redis over loopback: each is one network round trip
// away from the caller's data.

#include "bench_peer.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "bench_procs.h"
#include "zerohop/client.h"

namespace zerohop {

namespace {

int FreePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

}  // namespace

std::vector<Comparison> PeerSuite(std::chrono::milliseconds d, const std::string& dir) {
    std::vector<Comparison> out;
    const std::string secret = "zh-bench-peer-secret-0123456789";
    int port = FreePort();
    // The data node: container bench on its store, served to key node-a.
    std::string data_dir = dir + "/peer-data", caller_dir = dir + "/peer-caller";
    std::filesystem::create_directories(data_dir);
    std::filesystem::create_directories(caller_dir);
    BenchDaemon data = StartBenchDaemon(
        data_dir, 1,
        absl::StrCat("peer_listen: {address: 127.0.0.1, port: ", port, "}\npeer_keys:\n  - {id: node-a, secret: ",
                     secret, ", containers: {bench: rw}}\n"));
    std::unique_ptr<Client> local = ConnectWaiting(data.options);  // (and the node is up)
    // The caller: container bench is the data node's.
    ClientOptions opts;
    opts.socket_path = caller_dir + "/zh.sock";
    opts.access_key = "bench";
    std::ofstream(caller_dir + "/zerohopd.yaml")
        << "listen: " << opts.socket_path << "\nworkers: 1\nmetrics_port: 0\nlog_level: warning\n"
        << "mounts:\n  - {container: bench, backend: peer, options: {url: \"peer://127.0.0.1:" << port
        << "/bench\", key_id: node-a, secret: " << secret << "}}\n"
        << "credentials:\n  - {key: bench, containers: {bench: rw}}\n";
    Child caller_process({FindZerohopd(), "--config", caller_dir + "/zerohopd.yaml"});
    std::unique_ptr<Client> client = ConnectWaiting(opts);
    BenchRedis redis = StartBenchRedis();
    redisContext* rc = ConnectRedis(redis.port);

    // 1, 2. get_item, synchronous (two daemons and a TCP hop against one Redis GET) and 16
    // in flight (the peer connection pipelines every session's calls).
    for (auto& c : CompareGetItemWithRedis("peer", d, *client, rc)) {
        out.push_back(std::move(c));
    }
    // 3. A 1 MiB object: through the peer against a 1 MiB Redis GET.
    {
        constexpr size_t kMiB = 1 << 20;
        std::string data(kMiB, 'o');
        Path obj = *Path::Parse("/bench/obj1m");
        Check(client->PutObject({.path = obj}, data).status(), "put 1 MiB");
        freeReplyObject(redisCommand(rc, "SET obj %b", data.data(), data.size()));
        Comparison c;
        c.ours = MeasureEach("peer_get_object_1MiB", d, [&] {
            auto r = client->GetObjectView({.path = obj});
            if (!r.ok() || r->data().size() != kMiB) {
                std::abort();
            }
        }, kMiB);
        c.baseline = MeasureEach("redis_get_1MiB", d, [&] {
            auto* r = static_cast<redisReply*>(redisCommand(rc, "GET obj"));
            if (r == nullptr || r->len != static_cast<int64_t>(kMiB)) {
                std::abort();
            }
            freeReplyObject(r);
        }, kMiB);
        c.baseline_name = "Redis GET of 1 MiB over loopback TCP (hiredis)";
        out.push_back(std::move(c));
    }
    redisFree(rc);
    return out;
}

}  // namespace zerohop

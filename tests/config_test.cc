// zerohopd's configuration: good files load, bad ones name the key and the problem.

#include <unistd.h>

#include <gtest/gtest.h>

#include "config/config.h"

namespace zerohop {
namespace {

constexpr char kGood[] = R"(
listen: /tmp/zh.sock
workers: 3
wait_with: epoll
metrics_port: 0
log_level: debug
limits: {max_in_flight: 64, max_client_bytes: 8Mi, max_daemon_bytes: 16Mi}
mounts:
  - {container: demo, backend: embedded, options: {dir: /var/lib/zh, sync_writes: "true"}}
  - {container: logs, options: {dir: /var/lib/zh}}
credentials:
  - {key: dev, containers: {demo: rw, logs: r}}
  - {key: ro, containers: {logs: r}, uids: [1000, 1001]}
)";

TEST(Config, LoadsEveryKey) {
    auto c = ParseConfig(kGood, "test.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->listen, "/tmp/zh.sock");
    EXPECT_EQ(c->workers, 3u);
    EXPECT_EQ(c->wait_with, "epoll");
    EXPECT_EQ(c->metrics_port, 0);
    EXPECT_EQ(c->limits.max_in_flight, 64u);
    EXPECT_EQ(c->limits.max_client_bytes, 8u << 20);
    EXPECT_EQ(c->limits.max_daemon_bytes, 16u << 20);
    ASSERT_EQ(c->mounts.size(), 2u);
    EXPECT_EQ(c->mounts[1].backend, "embedded");
    EXPECT_EQ(c->mounts[0].options.at("sync_writes"), "true");
    ASSERT_EQ(c->credentials.size(), 2u);
    EXPECT_EQ(c->credentials[0].containers.at("demo"), kRightRead | kRightWrite);
    EXPECT_EQ(c->credentials[0].containers.at("logs"), kRightRead);
    EXPECT_EQ(c->credentials[1].uids, (std::vector<uint32_t>{1000, 1001}));
}

TEST(Config, BadFilesNameTheKey) {
    struct Case {
        std::string yaml;
        std::string want;
    };
    const std::string mounts = "mounts: [{container: demo, options: {dir: /d}}]\n";
    const std::string creds = "credentials: [{key: k, containers: {demo: rw}}]\n";
    for (const Case& c : std::vector<Case>{
             {"", "(top level): the file is empty"},
             {"listn: /x\n" + mounts + creds, "listn: unknown key"},
             {"listen: relative\n" + mounts + creds, "listen: must be an absolute socket path"},
             {"workers: 0\n" + mounts + creds, "workers: \"0\" is not a number in 1..256"},
             {"workers: many\n" + mounts + creds, "workers: \"many\" is not a number"},
             {"log_level: loud\n" + mounts + creds, "log_level: \"loud\" is not one of"},
             {"wait_with: select\n" + mounts + creds, "wait_with: \"select\" is not one of auto, io_uring, epoll"},
             {"mounts: [{container: demo, options: {dir: /d, io_threads: four}}]\n" + creds,
              "mounts[0].options.io_threads: expected a whole number"},
             {creds, "mounts: at least one container"},
             {"mounts: [{container: demo, backend: s3, options: {dir: /d}}]\n" + creds,
              "mounts[0].backend: unknown backend \"s3\" (known: embedded, redis, peer)"},
             // Peers: mounts of another node's container, and what this node serves.
             {"mounts: [{container: r, backend: peer, options: {url: 'http://h:1/c', key_id: a, secret: "
              "0123456789abcdef}}]\n" + creds,
              "mounts[0].options.url: the peer backend needs peer://host:port/container"},
             {"mounts: [{container: r, backend: peer, options: {url: 'peer://h:0/c', key_id: a, secret: "
              "0123456789abcdef}}]\n" + creds,
              "mounts[0].options.url: the port of peer://host:port/container is 1..65535"},
             {"mounts: [{container: r, backend: peer, options: {url: 'peer://h:1/c', key_id: a, secret: short}}]\n" +
                  creds,
              "mounts[0].options.secret: a peer key's secret needs at least 16 bytes"},
             {"mounts: [{container: r, backend: peer, options: {url: 'peer://h:1/c', key_id: a}}]\n" + creds,
              "mounts[0].options.secret: give secret or secret_file"},
             {mounts + creds + "peer_listen: {port: 7464}\n", "peer_keys: peer_listen needs a list"},
             {mounts + creds + "peer_keys: [{id: a, secret: 0123456789abcdef, containers: {demo: r}}]\n",
              "peer_keys: no peer_listen to accept them on"},
             {mounts + creds + "peer_listen: {port: 7464}\npeer_keys: [{id: a, secret: 0123456789abcdef, "
              "containers: {nope: r}}]\n",
              "peer_keys[0].containers.nope: no such container in mounts"},
             {mounts + creds + "peer_listen: {port: 7464}\npeer_keys: [{id: a, secret: 0123456789abcdef, "
              "containers: {demo: r}}, {id: a, secret: 0123456789abcdef, containers: {demo: r}}]\n",
              "peer_keys[1].id: 1 to 255 bytes, each id once"},
             {"mounts: [{container: demo}]\n" + creds, "mounts[0].options.dir: the embedded backend needs"},
             {"mounts: [{container: demo, backend: redis, options: {url: 'http://x'}}]\n" + creds,
              "mounts[0].options.url: the redis backend needs redis://"},
             {"mounts: [{container: demo, backend: redis, options: {url: 'redis://h:1', dir: /d}}]\n" + creds,
              "mounts[0].options.dir: unknown key"},
             {"mounts: [{container: demo, backend: redis, options: {url: 'redis://h:1', password: s3cr3t, "
              "password_file: /p}}]\n" + creds,
              "mounts[0].options: give password or password_file, not both"},
             {"mounts: [{container: demo, backend: redis, options: {url: 'redis://h:1', replicas: one}}]\n" + creds,
              "mounts[0].options.replicas: expected a whole number"},
             {"mounts: [{container: 'a/b', options: {dir: /d}}]\n" + creds, "mounts[0].container: invalid name"},
             {"mounts: [{container: demo, options: {dir: /d}}, {container: demo, options: {dir: /e}}]\n" + creds,
              "mounts[1].container: \"demo\" is mounted twice"},
             {mounts, "credentials: at least one access key"},
             {mounts + "credentials: [{key: k, containers: {other: rw}}]\n",
              "credentials[0].containers.other: no such container"},
             {mounts + "credentials: [{key: k, containers: {demo: write}}]\n",
              "credentials[0].containers.demo: \"write\" is not r or rw"},
             {mounts + "credentials: [{key: k, containers: {demo: r}}, {key: k, containers: {demo: r}}]\n",
              "credentials[1].key: the same key is listed twice"},
             {mounts + "limits: {max_in_flight: -1}\n" + creds, "limits.max_in_flight"},
             {mounts + "credentials: [{key: k, admin: yes}]\n", "credentials[0].admin: expected true or false"},
             {mounts + "credentials: [{containers: {demo: r}}]\n", "credentials[0].key: give key or key_file"},
             {mounts + "credentials: [{key: k, key_file: /k, containers: {demo: r}}]\n",
              "credentials[0].key: give key or key_file"},
             {mounts + "credentials: [{key_file: /nonexistent/k, containers: {demo: r}}]\n",
              "credentials[0].key_file: cannot read /nonexistent/k"},
             {mounts + "credentials: [{key: k, admin: false}]\n", "credentials[0].containers: expected a mapping"},
             {mounts + creds + "runtime_dir: run\n", "runtime_dir: must be an absolute directory"},
             {mounts + creds + "runtime_dir: /" + std::string(70, 'r') + "\n", "runtime_dir: must be an absolute"},
             {mounts + creds + "mounts: [\n", "line"},
         }) {
        auto r = ParseConfig(c.yaml, "bad.yaml");
        ASSERT_FALSE(r.ok()) << c.yaml;
        EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_NE(std::string(r.status().message()).find(c.want), std::string::npos)
            << "for:\n" << c.yaml << "\ngot: " << r.status().message();
        EXPECT_NE(std::string(r.status().message()).find("bad.yaml"), std::string::npos);
        EXPECT_EQ(std::string(r.status().message()).find("s3cr3t"), std::string::npos) << "a password in a message";
    }
}

TEST(Config, MissingFileIsNotFound) {
    EXPECT_EQ(LoadConfig("/nonexistent/zerohopd.yaml").status().code(), absl::StatusCode::kNotFound);
}

TEST(Config, MountsBecomeTypedBackendsOnePerStoreOrServer) {
    auto c = ParseConfig(R"(
listen: /tmp/zh.sock
mounts:
  - {container: a, options: {dir: /d1, sync_writes: "true"}}
  - {container: b, options: {dir: /d1, io_threads: "2"}}
  - {container: c, options: {dir: /d2}}
  - {container: r1, backend: redis, options: {url: "redis://h:7000,h:7001", replicas: "1", command_timeout_ms: "250"}}
  - {container: r2, backend: redis, options: {url: "redis://h:7000,h:7001", replicas: "1", command_timeout_ms: "250"}}
  - {container: r3, backend: redis, options: {url: "redis://other:6379"}}
credentials:
  - {key: k, containers: {a: rw}}
)",
                         "typed.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ(c->backends.size(), 4u);
    const auto& d1 = std::get<EmbeddedOptions>(c->backends[0]);
    EXPECT_EQ(d1.dir, "/d1");
    EXPECT_EQ(d1.containers, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(d1.sync_writes) << "an option one mount of the store gives applies to it";
    EXPECT_EQ(d1.io_threads, 2u);
    EXPECT_EQ(std::get<EmbeddedOptions>(c->backends[1]).containers, (std::vector<std::string>{"c"}));
    const auto& r = std::get<RedisBackendOptions>(c->backends[2]);
    EXPECT_EQ(r.containers, (std::vector<std::string>{"r1", "r2"})) << "same options, one client";
    ASSERT_EQ(r.client.seeds.size(), 2u);
    EXPECT_EQ(r.client.seeds[1].port, 7001);
    EXPECT_EQ(r.replicas, 1);
    EXPECT_EQ(r.client.command_timeout, absl::Milliseconds(250));
    EXPECT_EQ(BackendKind(c->backends[3]), "redis");
}

TEST(Config, PeersMountAnotherNodesContainerAndServeOurs) {
    auto c = ParseConfig(R"(
mounts:
  - {container: local, options: {dir: /d1}}
  - container: remote
    backend: peer
    options: {url: "peer://[fd00::2]:7464/shared", key_id: node-a, secret: "0123456789abcdef-x", timeout_ms: "2500"}
credentials:
  - {key: k, containers: {local: rw, remote: r}}
peer_listen: {address: 10.0.0.1, port: 7465}
peer_keys:
  - {id: node-b, secret: "fedcba9876543210-y", containers: {local: rw}}
  - {id: node-c, secret: "fedcba9876543210-z", containers: {local: r}}
)",
                         "peers.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ(c->backends.size(), 2u);
    const auto& p = std::get<PeerBackendOptions>(c->backends[1]);
    EXPECT_EQ(p.containers, (std::vector<std::string>{"remote"}));
    EXPECT_EQ(p.remote_of, (std::map<std::string, std::string>{{"remote", "shared"}}));
    EXPECT_EQ(p.host, "fd00::2");
    EXPECT_EQ(p.port, 7464);
    EXPECT_EQ(p.key_id, "node-a");
    EXPECT_EQ(p.secret, "0123456789abcdef-x");
    EXPECT_EQ(p.timeout, absl::Milliseconds(2500));
    EXPECT_TRUE(c->peer_listen.enabled);
    EXPECT_EQ(c->peer_listen.address, "10.0.0.1");
    EXPECT_EQ(c->peer_listen.port, 7465);
    ASSERT_EQ(c->peer_keys.size(), 2u);
    EXPECT_EQ(c->peer_keys[1].id, "node-c");
    EXPECT_EQ(c->peer_keys[1].containers, (std::map<std::string, bool>{{"local", false}}));
    EXPECT_EQ(c->peer_keys[0].containers.at("local"), true);
}

TEST(Config, OneStoreCannotBeGivenTwoValuesOfAnOption) {
    auto c = ParseConfig(R"(
mounts:
  - {container: a, options: {dir: /d1, sync_writes: "true"}}
  - {container: b, options: {dir: /d1, sync_writes: "false"}}
credentials:
  - {key: k, containers: {a: rw}}
)",
                         "two.yaml");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find("mounts[1].options.sync_writes"), std::string::npos) << c.status();
    EXPECT_NE(c.status().message().find("mounts[0]"), std::string::npos) << c.status();
}

TEST(Config, MetricsPortMayBeAutoOrOff) {
    const std::string rest = "mounts: [{container: a, options: {dir: /d}}]\ncredentials: [{key: k, containers: {a: rw}}]\n";
    auto automatic = ParseConfig("metrics_port: auto\n" + rest, "m.yaml");
    ASSERT_TRUE(automatic.ok()) << automatic.status();
    EXPECT_TRUE(automatic->metrics_port_auto);
    EXPECT_EQ(automatic->metrics_port, 9464) << "the default port first, if it is free";
    auto off = ParseConfig("metrics_port: 0\n" + rest, "m.yaml");
    ASSERT_TRUE(off.ok());
    EXPECT_EQ(off->metrics_port, 0);
    EXPECT_FALSE(off->metrics_port_auto);
    auto bad = ParseConfig("metrics_port: sometimes\n" + rest, "m.yaml");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("metrics_port"), std::string::npos);
}

TEST(Config, AnAdminKeyNeedsNoContainerAndVolumeSocketsGoBesideTheMainOne) {
    const std::string mounts = "mounts: [{container: a, options: {dir: /d}}]\n";
    auto c = ParseConfig("listen: /run/zerohop/zerohop.sock\n" + mounts +
                             "credentials: [{key: csi, admin: true}, {key: k, containers: {a: rw}}]\n",
                         "a.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(c->credentials[0].admin);
    EXPECT_TRUE(c->credentials[0].containers.empty()) << "publishing needs the volume's key, not the admin's rights";
    EXPECT_FALSE(c->credentials[1].admin);
    EXPECT_EQ(c->runtime_dir, "/run/zerohop");
    auto own = ParseConfig("runtime_dir: /run/zh-volumes\n" + mounts + "credentials: [{key: k, containers: {a: r}}]\n",
                           "a.yaml");
    ASSERT_TRUE(own.ok()) << own.status();
    EXPECT_EQ(own->runtime_dir, "/run/zh-volumes");
}

TEST(Config, AKeyMayComeFromAFileAsAMountedSecretGivesIt) {
    char path[] = "/tmp/zh-key-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "s3cret-key\n", 11), 11);
    close(fd);
    auto c = ParseConfig(std::string("mounts: [{container: a, options: {dir: /d}}]\ncredentials: [{key_file: ") + path +
                             ", containers: {a: rw}}]\n",
                         "k.yaml");
    unlink(path);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->credentials[0].key, "s3cret-key");
}

}  // namespace
}  // namespace zerohop

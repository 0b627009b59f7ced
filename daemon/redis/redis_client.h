#pragma once
// A Redis client for the daemon: standalone servers and Redis Cluster, shared by every
// session on the node.
//
// One I/O thread per client owns a few connections per server and pipelines every command
// sent to it, whoever sent it: replies come back in order on each connection and are matched
// to their callers. In a cluster, commands go to the primary of their key's slot (CRC16 of
// the key or its {hash tag}); MOVED updates the slot map and resends, ASK resends once to
// the named node after ASKING, and a lost node or CLUSTERDOWN/TRYAGAIN makes the client
// refresh the topology and retry the commands that are safe to repeat, for up to
// `retry_window`. A command that is not safe to repeat and whose connection died after it
// was sent fails with Unavailable: its outcome is unknown.
//
// hiredis (Debian's 0.14) is used only to parse replies; the formatting, the sockets,
// the event loop and the routing are ours.
//
//   auto redis = RedisClient::Connect({.seeds = {{"127.0.0.1", 6379}}, .password = secret});
//   (*redis)->Send({"GET", key}, {.key = key, .safe_to_retry = true},
//                  [](absl::StatusOr<Reply> r) { ... });   // runs on the client's I/O thread
//   absl::StatusOr<Reply> r = (*redis)->Call({"SET", key, value}, {.key = key});

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "redis/options.h"

namespace zerohop::redis {

// A reply, owned. Error replies ("-ERR ...") are replies, not failed statuses: the command
// reached the server and it said no.
struct Reply {
    enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
    Type type = Type::kNil;
    std::string str;  // kString, kStatus, kError
    int64_t integer = 0;
    std::vector<Reply> elements;

    bool is_error() const { return type == Type::kError; }
    bool is_nil() const { return type == Type::kNil; }
    std::string ToString() const;  // for messages and tests
};

// The cluster slot of a key (CRC16 of the key, or of its first non-empty {hash tag}).
uint16_t KeySlot(absl::string_view key);

struct CommandOptions {
    // The key that routes the command in a cluster (any key of it: all must share a slot).
    // Empty: any node.
    std::string_view key;
    // Reads, and writes that give the same result when applied twice.
    bool safe_to_retry = false;
    // A write is acknowledged only once this many replicas have it (WAIT on the same
    // connection, right after it); fewer within `replica_timeout` is Unavailable: the write
    // is on the primary and a failover could lose it.
    int replicas = 0;
    absl::Duration replica_timeout = absl::Milliseconds(500);
};

struct ClientStats {
    uint64_t commands = 0;
    uint64_t redirects = 0;   // MOVED and ASK followed
    uint64_t retries = 0;     // commands sent again after a failure
    uint64_t reconnects = 0;
    uint64_t topology_refreshes = 0;
};

class LoopLane;

class RedisClient {
public:
    using Callback = absl::AnyInvocable<void(absl::StatusOr<Reply>) &&>;

    // Connects to the first seed that answers, authenticates, and learns whether it is a
    // cluster (and its slot map). PermissionDenied when the server refuses the credentials,
    // Unavailable when no seed answers.
    static absl::StatusOr<std::unique_ptr<RedisClient>> Connect(ClientOptions options);
    ~RedisClient();

    // From any thread; `done` runs exactly once, on the I/O thread (it must not block).
    void Send(const std::vector<std::string>& argv, CommandOptions options, Callback done);
    // The same for arguments that live elsewhere (nothing is copied but the wire bytes).
    void SendArgs(absl::Span<const std::string_view> argv, CommandOptions options, Callback done);
    // Blocks until the reply (tools, tests, start-up).
    absl::StatusOr<Reply> Call(const std::vector<std::string>& argv, CommandOptions options = {});

    // Gives the calling thread a lane of its own, run by its own event loop (a daemon
    // worker's): its own connections, and from then on every command this thread sends goes
    // out on them within the thread's turn, and its callbacks run on this thread, inside
    // LoopLane::Poll. No hand-off to the client's thread either way. Call() still goes through
    // the client's thread. The lane must be destroyed on this thread, before the client.
    absl::StatusOr<std::unique_ptr<LoopLane>> Attach();

    bool cluster() const;
    ClientStats stats() const;

    class Impl;

private:
    explicit RedisClient(std::unique_ptr<Impl> impl);
    Impl& LaneHere() const;  // this thread's lane, else the client's own
    std::unique_ptr<Impl> impl_;
};

// A lane driven by the thread that attached it. The thread watches fd() (readable when there
// is something to read), calls Poll() when it is and while it spins, sleeps at most
// TimeoutMs() (timers: command timeouts, retries), and brackets its sleeps with Sleeping().
class LoopLane {
public:
    ~LoopLane();  // what is still in flight fails with Cancelled
    int fd() const;
    // One turn, without blocking: queued commands go out, replies are delivered. True when
    // something happened.
    bool Poll();
    // Commands in flight, parked or queued: replies are coming (worth spinning for).
    bool Busy() const;
    int TimeoutMs() const;  // -1: no limit
    void Sleeping(bool asleep);

private:
    friend class RedisClient;
    explicit LoopLane(std::unique_ptr<RedisClient::Impl> lane);
    std::unique_ptr<RedisClient::Impl> lane_;
};

}  // namespace zerohop::redis

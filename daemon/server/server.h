#pragma once
// zerohopd's core: accepts sessions on the unix socket, serves their rings from worker
// threads, routes each request to the backend its container is mounted on.
//
// Sessions: a client connects and sends a Hello; the server checks the peer's uid
// (SO_PEERCRED) and the access key, creates the session segment and doorbell and passes
// them back with a Welcome. The socket stays open: when it closes, the session and
// everything it held are reclaimed. Each session belongs to one worker, which copies every
// descriptor out of shared memory once, validates it, and never waits on the client.
//
//   auto server = Server::Start(config);      // binds, opens backends, starts workers
//   ...
//   server->Stop();                            // or destroy it

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "zerohop/operations.h"

namespace zerohop {

class Server {
public:
    static absl::StatusOr<std::unique_ptr<Server>> Start(const DaemonConfig& config);
    ~Server();

    // Stops accepting, lets the workers finish what they hold, closes every session.
    void Stop();
    // The daemon's counters (containers left empty: they depend on the asker's key).
    DaemonStatus stats() const;
    const std::string& socket_path() const;

    class Impl;

private:
    explicit Server(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace zerohop

#pragma once
// Restarts that pods never notice: a small process outside zerohop-fuse holds the mount's
// /dev/fuse descriptor (and the inode and request journals), so that the mount stays alive (its callers
// wait, they get no error) when zerohop-fuse dies, and hands them to the successor that
// connects to its socket. The server keeps that connection open as its lease: when no
// server holds a lease for `takeover` (no successor came), the holder lets go and the
// mount fails its callers (ECONNABORTED, then ENOTCONN) rather than leave them waiting forever. The holder
// goes when the mount goes.
//
//   // zerohop-fuse, after mounting:
//   SpawnHolder(self_exe, socket, {fuse_fd, journal_fd, requests_fd}, mountpoint);
//   // a successor, before mounting:
//   auto held = FetchFromHolder(socket);   // NotFound: nobody holds a mount there

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "shmring/unique_fd.h"

namespace zerohop::fuse {

// What a holder keeps: descriptors only (it reads none of them).
struct HeldFds {
    int fuse = -1;      // the mount's /dev/fuse connection
    int journal = -1;   // the inode journal (a memfd, node_table.h)
    int requests = -1;  // the request journal (a memfd, request_journal.h)
};

struct HeldMount {
    shmring::UniqueFd fuse;
    shmring::UniqueFd journal;
    shmring::UniqueFd requests;
    shmring::UniqueFd lease;  // keep open while serving the mount
};

// Starts the holder as a process of its own (not a child that dies with us): `self_exe`
// re-executed with --hold, on a socket listening already. Returns the caller's lease at
// once: the caller serves the mount while the holder starts.
absl::StatusOr<shmring::UniqueFd> SpawnHolder(const std::string& self_exe, const std::string& socket, HeldFds fds,
                                              const std::string& mountpoint, int takeover_secs);

// The holder's main: serves `socket` (listening on `listen_fd`) until the mount's
// connection is gone (unmounted and unused, or aborted), or no server has held a lease for
// `takeover_secs`. (Its command line names the mount point, for people reading ps.)
int RunHolder(const std::string& socket, int listen_fd, HeldFds fds, int takeover_secs);

absl::StatusOr<HeldMount> FetchFromHolder(const std::string& socket);

// After a clean stop (the server unmounted): tells the holder on the other end of `lease`
// that the mount is over. It removes its socket and exits; this returns once it has (at
// most a few seconds), so that a server started next mounts afresh instead of taking over
// the connection of the mount that is going.
void ReleaseHolder(int lease);

}  // namespace zerohop::fuse

#pragma once
// Restarts that pods never notice: a small process outside zerohop-fuse holds the mount's
// /dev/fuse descriptor (and the inode journal), so that the mount stays alive (its callers
// wait, they get no error) when zerohop-fuse dies, and hands both to the successor that
// connects to its socket. The server keeps that connection open as its lease: when no
// server holds a lease for `takeover` (no successor came), the holder lets go and the
// mount fails its callers (ECONNABORTED, then ENOTCONN) rather than leave them waiting forever. The holder
// goes when the mount goes.
//
//   // zerohop-fuse, after mounting:
//   SpawnHolder(self_exe, socket, fuse_fd, journal_fd, mountpoint);
//   // a successor, before mounting:
//   auto held = FetchFromHolder(socket);   // NotFound: nobody holds a mount there

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "shmring/unique_fd.h"

namespace zerohop::fuse {

struct HeldMount {
    shmring::UniqueFd fuse;     // the mount's /dev/fuse connection
    shmring::UniqueFd journal;  // the inode journal (a memfd)
    shmring::UniqueFd lease;    // keep open while serving the mount
};

// Starts the holder as a process of its own (not a child that dies with us): `self_exe`
// re-executed with --hold, on a socket listening already. Returns the caller's lease at
// once: the caller serves the mount while the holder starts.
absl::StatusOr<shmring::UniqueFd> SpawnHolder(const std::string& self_exe, const std::string& socket, int fuse_fd,
                                              int journal_fd, const std::string& mountpoint, int takeover_secs);

// The holder's main: serves `socket` (listening on `listen_fd`) until the mount at
// `mountpoint` is gone, or no server has held a lease for `takeover_secs`.
int RunHolder(const std::string& socket, int listen_fd, int fuse_fd, int journal_fd, const std::string& mountpoint,
              int takeover_secs);

absl::StatusOr<HeldMount> FetchFromHolder(const std::string& socket);

}  // namespace zerohop::fuse

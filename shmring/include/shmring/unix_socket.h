#pragma once
// Unix stream sockets named by a path of any length.
//
// sun_path holds 107 bytes; Kubernetes puts volumes under paths longer than that. A longer
// path is reached through its directory: opened O_PATH, then named as
// /proc/self/fd/<n>/<socket name>, which is short.
//
//   ZH_ASSIGN_OR_RETURN(UniqueFd listening, ListenUnix("/run/x/zerohop.sock", 0666, 256));
//   ZH_ASSIGN_OR_RETURN(UniqueFd sock, ConnectUnix("/var/lib/kubelet/pods/.../zerohop.sock"));

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "shmring/unique_fd.h"

namespace shmring {

// A connected socket; Unavailable (with the reason) when nobody listens at `path`.
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path);

// A socket listening at `path` with permissions `mode` (a stale socket file there is
// replaced; anything else there is an error).
absl::StatusOr<UniqueFd> ListenUnix(const std::string& path, mode_t mode, int backlog);

}  // namespace shmring

#pragma once
// Sending file descriptors over a unix stream socket (SCM_RIGHTS).
//
//   SendWithFds(sock, "hello", {segment.fd(), doorbell.fd()});
//   std::vector<UniqueFd> fds;
//   auto n = ReceiveWithFds(sock, buf, sizeof buf, &fds);   // fds arrive close-on-exec

#include <sys/socket.h>

#include <cstddef>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "shmring/unique_fd.h"

namespace shmring {

inline constexpr size_t kMaxPassedFds = 8;

// Sends all of `data` (at least one byte) with `fds` attached to its first byte. `flags`
// go to sendmsg (MSG_DONTWAIT: Unavailable instead of waiting for room).
absl::Status SendWithFds(int sock, std::string_view data, std::initializer_list<int> fds, int flags = 0);

// Receives up to `capacity` bytes; descriptors that came with them are appended to `fds`.
// 0 bytes means the peer closed the socket. Extra descriptors beyond kMaxPassedFds and
// truncated control data are an error (and whatever arrived is closed).
absl::StatusOr<size_t> ReceiveWithFds(int sock, char* buf, size_t capacity, std::vector<UniqueFd>* fds);

}  // namespace shmring

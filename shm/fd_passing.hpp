// Passing file descriptors (the client segment's memfd, an eventfd) over a unix
// stream socket with SCM_RIGHTS, and reading the peer's credentials.
//
// Message contract: the sender sends exactly message.size() bytes (at least 1:
// a stream socket cannot carry ancillary data without data) with the descriptors
// attached to the first byte; the receiver asks for exactly the same number of
// bytes. Both sides expect blocking sockets (or a non-blocking one that is known
// to be readable/writable: a would-block in the middle is reported as an error).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <span>
#include <vector>

#include "shm/error.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::shm {

inline constexpr std::size_t kMaxFdsPerMessage = 4;

/// Sends `message` with `fds` (1..kMaxFdsPerMessage) attached. MSG_NOSIGNAL: a
/// closed peer is EPIPE, not SIGPIPE.
Expected<void> send_fds(int sock, std::span<const int> fds, std::span<const std::byte> message);
Expected<void> send_fd(int sock, int fd, std::span<const std::byte> message);

/// Receives exactly message.size() bytes and exactly `expected_fds` descriptors
/// (received with MSG_CMSG_CLOEXEC). A truncated control message (MSG_CTRUNC),
/// a wrong number of descriptors, or descriptors arriving after the first byte is
/// an error, and every descriptor received is closed. EOF before the whole message
/// is an error.
Expected<std::vector<UniqueFd>> recv_fds(int sock, std::size_t expected_fds, std::span<std::byte> message);
Expected<UniqueFd> recv_fd(int sock, std::span<std::byte> message);

/// SO_PEERCRED of a connected unix socket: the peer's pid, uid and gid at connect().
Expected<ucred> peer_credentials(int sock);

}  // namespace regiond::shm

// Claiming the names this daemon instance owns on the host (STYLE.md: "detect a
// stale previous instance"): the client socket, the admin socket and the state
// segment. A name still held by a live daemon makes the start fail with a message
// that says so; a name left behind by a dead one is removed.
//
//   socket path:   connect() succeeds -> "another regiond is running at PATH (pid N)";
//                  ECONNREFUSED (nobody listens) -> stale, unlinked;
//                  exists but is not a socket -> refuse (we never delete a stranger's file).
//   state segment: its daemon_pid is alive and its heartbeat is fresh -> refuse;
//                  otherwise (dead pid, stale heartbeat, unreadable, half-built) -> replaced.
//
// Two daemons starting at the same instant on the same config cannot both win:
// bind() of the socket path is the final arbiter (EADDRINUSE for the second).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "shm/error.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon {

/// Removes a stale socket file at `path` or fails if a live daemon answers there.
/// `what` names the socket in messages ("client socket", "admin socket").
shm::Expected<void> clear_stale_socket(const std::string& path, const std::string& what);

/// Whether an existing state segment must be replaced (true), or there is none
/// (false). Fails if a live daemon owns it. `fresh_within`: heartbeat age that
/// counts as alive.
shm::Expected<bool> check_state_segment(const std::string& name, std::chrono::nanoseconds fresh_within);

struct UnixListenerOptions {
    std::string path;
    std::string what;  ///< "client socket", "admin socket"
    mode_t mode = 0660;
    std::optional<gid_t> group;  ///< chown the socket file to this group
    int backlog = 256;
};

/// A listening socket and the identity of the file it created.
struct UnixListener {
    shm::UniqueFd fd;
    std::string path;
    dev_t device = 0;
    ino_t inode = 0;

    /// Closes the socket and unlinks the path if it is still the file this
    /// listener created (same device and inode), so a daemon never removes a
    /// successor's socket. Idempotent.
    void close_and_unlink() noexcept;
};

/// socket + bind + chmod/chown + listen, non-blocking and close-on-exec. The
/// caller has cleared the path with clear_stale_socket() first.
shm::Expected<UnixListener> listen_unix(const UnixListenerOptions& options);

}  // namespace regiond::daemon

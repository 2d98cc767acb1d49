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

}  // namespace regiond::daemon

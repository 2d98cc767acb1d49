// Claiming the names this daemon instance owns on the host (STYLE.md: "detect a
// stale previous instance"): the client socket, the admin socket and the state
// segment. A name still held by a live daemon makes the start fail with a message
// that says so; a name left behind by a dead one is removed.
//
//   socket path:   connect() succeeds -> "another regiond is running at PATH (pid N)";
//                  ECONNREFUSED (nobody listens) -> stale, unlinked;
//                  exists but is not a socket -> refuse (we never delete a stranger's file).
//   state segment: see claim_state_segment() below.
//
// Two daemons starting at the same instant on the same config cannot both win:
// bind() of the socket path is the final arbiter (EADDRINUSE for the second), and
// the state segment is created with O_EXCL.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "shm/error.hpp"
#include "shm/state_segment.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon {

/// Removes a stale socket file at `path` or fails if a live daemon answers there.
/// `what` names the socket in messages ("client socket", "admin socket").
shm::Expected<void> clear_stale_socket(const std::string& path, const std::string& what);

/// Whether an existing state segment must be replaced (true), or there is none
/// (false). Fails if a live daemon owns it. `fresh_within`: heartbeat age that
/// counts as alive. Maps the segment: call it only for a name our own user holds.
shm::Expected<bool> check_state_segment(const std::string& name, std::chrono::nanoseconds fresh_within);

/// Creates the daemon's state segment (options.name is the configured name):
///   - the name is free: created there (exclusively: O_CREAT | O_EXCL);
///   - held by this daemon's user: a live daemon (pid alive, heartbeat fresher
///     than `fresh_within`) -> refused; otherwise a stale segment of ours -> replaced;
///   - held by another user (any local user can create /dev/shm/NAME first), or by
///     something that is not a regular file: never opened nor removed. The daemon
///     serves under NAME.XXXXXXXX (random hex; clients learn the name from the
///     welcome message, regionctl status shows it) and logs a warning naming the
///     holder's uid and user and what to do. If that fails too, the start is
///     refused with a message naming the holder.
/// Stale segments of ours under NAME.XXXXXXXX left by a crashed daemon are
/// removed, so a clean start after the squatter is gone uses NAME again and
/// leaves nothing behind.
shm::Expected<shm::StateSegment> claim_state_segment(shm::StateSegmentOptions options,
                                                     std::chrono::nanoseconds fresh_within);

}  // namespace regiond::daemon

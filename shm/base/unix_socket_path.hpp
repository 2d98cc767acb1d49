// Claiming the path of a listening unix socket (the daemon's client and admin
// sockets, the WAN proxy's control socket), and giving it back.
//
// A path is free when nothing is there. A socket file nobody accepts on
// (connect() says ECONNREFUSED) was left by a dead process: it is removed. A
// socket that accepts (or whose backlog is full) belongs to a live process, and a
// file that is not a socket belongs to someone else: both are left alone, and the
// caller refuses with its own words. bind() stays the final arbiter between two
// processes claiming the same path at the same instant (EADDRINUSE).
#pragma once

#include <sys/types.h>
#include <sys/un.h>

#include <optional>
#include <string>

namespace regiond::base {

/// The address of `path`; nullopt when it is empty or too long for sun_path.
std::optional<sockaddr_un> unix_address(const std::string& path) noexcept;

struct SocketPathClaim {
    enum class State {
        free,           ///< nothing at the path (now)
        stale_removed,  ///< a dead socket was there and is unlinked
        live,           ///< a process accepts connections on it
        not_a_socket,   ///< a file of another kind: never removed
        too_long,       ///< the path does not fit a unix socket address
        failed,         ///< a system call failed: `error` and `step` say which
    };
    State state = State::free;
    pid_t live_pid = 0;     ///< live: the listener's pid when the kernel tells (SO_PEERCRED), else 0
    int error = 0;          ///< failed: the errno
    const char* step = "";  ///< failed: "check", "probe" or "remove"
};

/// Frees `path` of a stale socket, or says why it cannot be used. Never blocks.
SocketPathClaim claim_socket_path(const std::string& path);

/// Unlinks `path` only if it still is the file (device, inode) we created, so a
/// process never removes the socket of a successor that replaced ours.
/// True if it removed it.
bool unlink_if_same_file(const std::string& path, dev_t device, ino_t inode) noexcept;

}  // namespace regiond::base

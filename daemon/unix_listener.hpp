// A listening unix stream socket whose file this daemon created, for the client
// socket (Acceptor) and the admin socket (AdminServer). The caller has cleared
// the path of a stale socket first (instance_guard.hpp: clear_stale_socket).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "shm/error.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon {

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

/// socket + bind + chmod/chown + listen, non-blocking and close-on-exec.
shm::Expected<UnixListener> listen_unix(const UnixListenerOptions& options);

}  // namespace regiond::daemon

#include "daemon/unix_listener.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include "shm/base/errno_text.hpp"
#include "shm/base/unix_socket_path.hpp"

namespace regiond::daemon {

using base::errno_text;

shm::Expected<UnixListener> listen_unix(const UnixListenerOptions& options) {
    const std::string& path = options.path;
    const auto address = base::unix_address(path);
    if (!address) return shm::Error::invalid(options.what + " path " + path + " is too long for a unix socket");
    UnixListener listener;
    listener.fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener.fd) return shm::Error{errno, "cannot create " + options.what + " " + path + ": " + errno_text(errno)};
    const int fd = listener.fd.get();
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0) {
        const int error = errno;
        if (error == EADDRINUSE)
            return shm::Error{error, "cannot create " + options.what + " " + path +
                                         ": the path is in use (another regiond starting at the same time?)"};
        return shm::Error{error, "cannot create " + options.what + " " + path + ": " + errno_text(error)};
    }
    auto fail = [&](const std::string& what) {
        const int error = errno;
        ::unlink(path.c_str());
        return shm::Error{error, what};
    };
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0)
        return fail("cannot stat " + options.what + " " + path + ": " + errno_text(errno));
    // Permissions before listen(): until listen() nobody can connect, so there is
    // no window in which a stranger gets in through a too-wide mode.
    if (::chmod(path.c_str(), options.mode) != 0)
        return fail("cannot set the mode of " + options.what + " " + path + ": " + errno_text(errno));
    if (options.group && ::chown(path.c_str(), static_cast<uid_t>(-1), *options.group) != 0)
        return fail("cannot give " + options.what + " " + path + " to group " + std::to_string(*options.group) + ": " +
                    errno_text(errno) + " (the daemon's user must be a member of daemon.client_group, or root)");
    if (::listen(fd, options.backlog) != 0)
        return fail("cannot listen on " + options.what + " " + path + ": " + errno_text(errno));
    listener.path = path;
    listener.device = st.st_dev;
    listener.inode = st.st_ino;
    return listener;
}

void UnixListener::close_and_unlink() noexcept {
    if (!fd) return;
    fd.reset();
    base::unlink_if_same_file(path, device, inode);
}

}  // namespace regiond::daemon

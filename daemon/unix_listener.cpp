#include "daemon/unix_listener.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace regiond::daemon {
namespace {

// TODO(merge): one copy of errno_text in shm/base (the privileges branch).
std::string errno_text(int error) {
    std::string text = std::strerror(error);
    if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    return text;
}

bool make_address(const std::string& path, sockaddr_un& address) {
    address = {};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) return false;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return true;
}

}  // namespace

shm::Expected<UnixListener> listen_unix(const UnixListenerOptions& options) {
    const std::string& path = options.path;
    sockaddr_un address;
    if (!make_address(path, address))
        return shm::Error::invalid(options.what + " path " + path + " is too long for a unix socket");
    UnixListener listener;
    listener.fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener.fd) return shm::Error{errno, "cannot create " + options.what + " " + path + ": " + errno_text(errno)};
    const int fd = listener.fd.get();
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
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
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && st.st_dev == device && st.st_ino == inode) ::unlink(path.c_str());
}

}  // namespace regiond::daemon

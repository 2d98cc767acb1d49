#include "daemon/instance_guard.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "daemon/log.hpp"
#include "daemon/text.hpp"
#include "shm/fd_passing.hpp"
#include "shm/state_segment.hpp"

namespace regiond::daemon {
namespace {

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

bool process_alive(pid_t pid) {
    if (pid <= 0) return false;
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace

shm::Expected<void> clear_stale_socket(const std::string& path, const std::string& what) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};
        return shm::Error{errno, "cannot check " + what + " " + path + ": " + errno_text(errno)};
    }
    if (!S_ISSOCK(st.st_mode))
        return shm::Error{EEXIST, what + " " + path + " exists and is not a socket: remove it or choose another path"};

    sockaddr_un address;
    if (!make_address(path, address))
        return shm::Error::invalid(what + " path " + path + " is too long for a unix socket");
    shm::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!probe) return shm::Error{errno, "cannot create a socket: " + errno_text(errno)};
    const int rc = ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
    if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
        std::string pid_text;
        if (rc == 0)
            if (auto cred = shm::peer_credentials(probe.get())) pid_text = " (pid " + std::to_string(cred->pid) + ")";
        return shm::Error{EADDRINUSE, "another regiond is running at " + path + pid_text +
                                          ": stop it first, or give this instance its own daemon.socket, "
                                          "daemon.admin_socket and daemon.state_segment"};
    }
    if (errno != ECONNREFUSED) return shm::Error{errno, "cannot check " + what + " " + path + ": " + errno_text(errno)};
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return shm::Error{errno, "cannot remove the stale " + what + " " + path + ": " + errno_text(errno)};
    log::notice("removed the stale " + what + " " + path + " (no daemon answered on it)");
    return {};
}

shm::Expected<bool> check_state_segment(const std::string& name, std::chrono::nanoseconds fresh_within) {
    auto view = shm::StateView::open(name);
    if (!view) {
        if (view.error().code == ENOENT) return false;
        log::notice("replacing state segment " + name + ": " + view.error().message);
        return true;
    }
    const pid_t pid = static_cast<pid_t>(view->daemon_pid());
    const auto age = view->heartbeat_age();
    if (pid != ::getpid() && process_alive(pid) && age <= fresh_within)
        return shm::Error{EADDRINUSE, "another regiond (pid " + std::to_string(pid) + ") owns state segment " + name +
                                          " (heartbeat " + format_duration(age) +
                                          " ago): stop it first, or give this instance its own daemon.state_segment"};
    log::notice("replacing the stale state segment " + name + " of pid " + std::to_string(pid) + " (" +
                (process_alive(pid) ? "heartbeat " + format_duration(age) + " old" : std::string("process gone")) +
                ")");
    return true;
}

}  // namespace regiond::daemon

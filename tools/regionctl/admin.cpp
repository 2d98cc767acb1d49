#include "admin.hpp"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "shm/base/errno_text.hpp"
#include "shm/base/unique_fd.hpp"
#include "shm/base/unix_socket_path.hpp"

namespace regiond::ctl {

namespace {

using Clock = std::chrono::steady_clock;

AdminReply unreachable(std::string message) {
    AdminReply r;
    r.error = std::move(message);
    return r;
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(left));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) return true;  // let the following call report the error
    }
}

}  // namespace

AdminReply parse_admin_reply(std::string_view answer) {
    AdminReply r;
    r.reached = true;
    const std::size_t nl = answer.find('\n');
    std::string_view first = answer.substr(0, nl);
    if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
    r.body = nl == std::string_view::npos ? std::string() : std::string(answer.substr(nl + 1));
    if (first == "ok") {
        r.ok = true;
    } else if (first.substr(0, 6) == "error:") {
        std::string_view message = first.substr(6);
        while (!message.empty() && message.front() == ' ') message.remove_prefix(1);
        r.error = message.empty() ? "regiond reported an error without a message" : std::string(message);
    } else if (answer.empty()) {
        r.error = "regiond closed the admin connection without an answer";
    } else {
        r.error = "unexpected answer from regiond's admin socket: \"" + std::string(first.substr(0, 200)) + "\"";
    }
    return r;
}

AdminReply admin_request(const std::string& path, std::string_view line, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    const auto addr = base::unix_address(path);
    if (!addr) return unreachable("admin socket path is empty or too long: " + path);

    const base::UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (sock.get() < 0) return unreachable(std::string("cannot create a socket: ") + base::errno_text(errno));
    int rc;
    do {
        rc = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        const int e = errno;
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) return unreachable("regiond not running at " + path);
        if (e == EACCES || e == EPERM)
            return unreachable("permission denied connecting to " + path +
                               " (run regionctl as root or the regiond user)");
        return unreachable("cannot connect to regiond at " + path + ": " + base::errno_text(e));
    }

    const std::string request = std::string(line) + "\n";
    std::size_t sent = 0;
    while (sent < request.size()) {
        if (!wait_for(sock.get(), POLLOUT, deadline)) return unreachable("timed out sending to " + path);
        const ssize_t n = ::send(sock.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return unreachable("sending to regiond at " + path + " failed: " + base::errno_text(errno));
        sent += static_cast<std::size_t>(n);
    }

    std::string answer;
    char buffer[65536];
    for (;;) {
        if (!wait_for(sock.get(), POLLIN, deadline))
            return unreachable("timed out after " + std::to_string(timeout.count()) + " ms waiting for regiond at " +
                               path);
        const ssize_t n = ::recv(sock.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) {
            if (errno == ECONNRESET && !answer.empty()) break;
            return unreachable("reading from regiond at " + path + " failed: " + base::errno_text(errno));
        }
        if (n == 0) break;
        answer.append(buffer, static_cast<std::size_t>(n));
    }
    return parse_admin_reply(answer);
}

}  // namespace regiond::ctl

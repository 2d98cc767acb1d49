#include "handshake.hpp"

#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace regiond::client {

namespace {

using Clock = std::chrono::steady_clock;
using shm::Error;
using shm::UniqueFd;

std::string remaining_ms_text(Clock::time_point start, Clock::time_point deadline) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - start).count();
    return std::to_string(ms < 0 ? 0 : ms) + " ms";
}

// SO_RCVTIMEO/SO_SNDTIMEO bound every blocking step (connect on a full backlog,
// send of the hello, receipt of the welcome) by the deadline.
bool set_socket_timeouts(int fd, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() < 1000) left = std::chrono::microseconds(1000);  // 0 would mean "forever"
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(left.count() / 1'000'000);
    tv.tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000);
    return ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
           ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0;
}

std::string program_name() {
    const char* name = program_invocation_short_name;  // glibc; "" if unknown
    return name != nullptr ? name : "";
}

// Receives the fixed-size welcome with 0 (a refusal) or kWelcomeFds descriptors.
// shm::recv_fds insists on an exact descriptor count, and a refusal carries none,
// hence this variant. Descriptors are owned (and closed on error) from the moment
// they arrive.
shm::Expected<void> receive_welcome(int sock, shm::WelcomeMessage& welcome, std::vector<UniqueFd>& fds,
                                    const std::string& path, Clock::time_point start, Clock::time_point deadline) {
    auto* bytes = reinterpret_cast<unsigned char*>(&welcome);
    std::size_t received = 0;
    while (received < sizeof welcome) {
        alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * 4)];
        iovec iov{bytes + received, sizeof welcome - received};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return Error{ETIMEDOUT, "timed out after " + remaining_ms_text(start, deadline) +
                                        " waiting for regiond's answer at " + path +
                                        " (is the daemon stuck or overloaded?)"};
        if (n < 0) return Error::system(errno, "connection to regiond at " + path + " failed during the handshake");
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds.emplace_back(fd);
            }
        }
        if (msg.msg_flags & MSG_CTRUNC)
            return Error::invalid("regiond at " + path + " sent more descriptors than the protocol allows");
        if (n == 0)
            return Error{ECONNRESET, "regiond at " + path + " closed the connection during the handshake" +
                                         (received == 0 ? std::string(" (refused without a reason)")
                                                        : " after " + std::to_string(received) + " bytes")};
        received += static_cast<std::size_t>(n);
    }
    return {};
}

std::string refusal_text(shm::WelcomeStatus status, const std::string& path) {
    switch (status) {
        case shm::WelcomeStatus::permission_denied:
            return "permission denied by regiond at " + path + ": this user is not in its client_group or allowed_uids";
        case shm::WelcomeStatus::too_many_clients:
            return "regiond at " + path + " has too many clients (daemon.max_clients): retry later";
        case shm::WelcomeStatus::shutting_down: return "regiond at " + path + " is shutting down: retry";
        case shm::WelcomeStatus::internal_error:
            return "regiond at " + path + " could not set up the connection (internal error; see its log)";
        default:
            return "regiond at " + path + " refused the connection (status " +
                   std::to_string(static_cast<unsigned>(status)) + ")";
    }
}

std::string version_mismatch_text(std::uint32_t theirs, const std::string& path) {
    return "protocol version mismatch: libregiond speaks protocol version " + std::to_string(shm::kProtocolVersion) +
           ", regiond at " + path + " speaks version " + std::to_string(theirs) +
           ": install matching versions of libregiond and regiond";
}

}  // namespace

std::string not_running_message(const std::string& path) {
    return "daemon not running at " + path;
}

shm::Expected<Welcomed> handshake(const std::string& path, Clock::time_point deadline) {
    const Clock::time_point start = Clock::now();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty()) return Error::invalid("empty regiond socket path");
    if (path.size() >= sizeof addr.sun_path)
        return Error::invalid("regiond socket path is too long (" + std::to_string(path.size()) + " bytes, at most " +
                              std::to_string(sizeof addr.sun_path - 1) + "): " + path);
    std::memcpy(addr.sun_path, path.data(), path.size());

    Welcomed w;
    w.socket.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!w.socket) return Error::system(errno, "cannot create a unix socket");
    if (!set_socket_timeouts(w.socket.get(), deadline)) return Error::system(errno, "setting socket timeouts");

    int rc;
    do {
        rc = ::connect(w.socket.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        const int e = errno;
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) return Error{e, not_running_message(path)};
        if (e == EACCES || e == EPERM)
            return Error{e, "permission denied connecting to regiond at " + path +
                                ": this user needs access to the socket (regiond's client_group)"};
        if (e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT)
            return Error{e, "timed out after " + remaining_ms_text(start, deadline) + " connecting to regiond at " +
                                path + " (its backlog is full: is the daemon stuck?)"};
        return Error::system(e, "cannot connect to regiond at " + path);
    }

    shm::HelloMessage hello{};
    std::memcpy(hello.magic, shm::kHelloMagic, sizeof hello.magic);
    hello.protocol_version = shm::kProtocolVersion;
    hello.client_pid = static_cast<std::uint32_t>(::getpid());
    const std::string name = program_name();
    std::memcpy(hello.client_name, name.data(), std::min(name.size(), sizeof hello.client_name - 1));
    const auto* out = reinterpret_cast<const unsigned char*>(&hello);
    std::size_t sent = 0;
    while (sent < sizeof hello) {
        const ssize_t n = ::send(w.socket.get(), out + sent, sizeof hello - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (errno == EPIPE || errno == ECONNRESET)
                return Error{errno, "regiond at " + path + " closed the connection during the handshake"};
            return Error::system(errno, "sending the hello to regiond at " + path);
        }
        sent += static_cast<std::size_t>(n);
    }

    std::vector<UniqueFd> fds;
    if (auto r = receive_welcome(w.socket.get(), w.welcome, fds, path, start, deadline); !r) return r.error();
    const shm::WelcomeMessage& welcome = w.welcome;
    if (std::memcmp(welcome.magic, shm::kWelcomeMagic, sizeof welcome.magic) != 0)
        return Error::invalid(path + " is not a regiond client socket (unexpected answer to the hello)");
    std::string message(welcome.message, strnlen(welcome.message, sizeof welcome.message));
    if (welcome.protocol_version != shm::kProtocolVersion)
        return Error::invalid(version_mismatch_text(welcome.protocol_version, path));
    const auto status = static_cast<shm::WelcomeStatus>(welcome.status);
    if (status != shm::WelcomeStatus::ok) {
        // The daemon's own words when it gave any: it knows why it refused.
        if (message.empty()) message = refusal_text(status, path);
        return Error{status == shm::WelcomeStatus::permission_denied ? EACCES : ECONNREFUSED, message};
    }
    if (fds.size() != shm::kWelcomeFds)
        return Error::invalid("regiond at " + path + " sent " + std::to_string(fds.size()) +
                              " descriptor(s) with its welcome, expected " + std::to_string(shm::kWelcomeFds) +
                              " (protocol error)");
    if (strnlen(welcome.state_segment, sizeof welcome.state_segment) == sizeof welcome.state_segment)
        return Error::invalid("regiond at " + path +
                              " sent a state segment name without a terminator (protocol error)");
    w.memfd = std::move(fds[0]);
    w.eventfd = std::move(fds[1]);
    w.client_eventfd = std::move(fds[2]);
    return w;
}

}  // namespace regiond::client

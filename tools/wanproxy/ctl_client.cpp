#include "ctl_client.hpp"

#include "fd.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace wanproxy {

namespace {

// Commands answer at once; a proxy that has not replied by then is wedged,
// and a test script should hear about it rather than hang.
constexpr int kReplyTimeoutSeconds = 10;

int fail(const std::string& message) {
    std::fprintf(stderr, "rgd-wanproxy ctl: %s\n", message.c_str());
    return 2;
}

}  // namespace

int run_ctl(const std::string& socket_path, const std::vector<std::string>& words) {
    std::string command;
    for (const auto& word : words) {
        if (word.find_first_of("\r\n") != std::string::npos) {
            std::fprintf(stderr, "rgd-wanproxy ctl: arguments must not contain line breaks\n");
            return 1;
        }
        command += (command.empty() ? "" : " ") + word;
    }
    command += '\n';

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path) {
        return fail("control socket path '" + socket_path + "' is too long or empty");
    }
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);

    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        return fail(std::string("socket: ") + std::strerror(errno));
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        return fail("cannot reach control socket " + socket_path + ": " + std::strerror(errno) +
                    " (is 'rgd-wanproxy serve --control " + socket_path + "' running?)");
    }
    const timeval timeout{kReplyTimeoutSeconds, 0};
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);

    for (std::size_t sent = 0; sent < command.size();) {
        const ssize_t n = ::send(fd.get(), command.data() + sent, command.size() - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail("cannot send to " + socket_path + ": " + std::strerror(errno));
        }
        sent += static_cast<std::size_t>(n);
    }

    // Read until the "." line; print every line before it.
    std::string buffer;
    std::string last_line;
    bool complete = false;
    while (!complete) {
        char chunk[4096];
        const ssize_t n = ::recv(fd.get(), chunk, sizeof chunk, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return fail("no complete reply from " + socket_path + " within " +
                            std::to_string(kReplyTimeoutSeconds) + " s");
            }
            return fail("reading from " + socket_path + ": " + std::strerror(errno));
        }
        if (n == 0) {
            return fail("the proxy closed the control connection before the reply was complete");
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
        std::size_t newline = 0;
        while (!complete && (newline = buffer.find('\n')) != std::string::npos) {
            const std::string line = buffer.substr(0, newline);
            buffer.erase(0, newline + 1);
            if (line == ".") {
                complete = true;
            } else {
                std::printf("%s\n", line.c_str());
                last_line = line;
            }
        }
    }
    std::fflush(stdout);
    // Single-line replies are "ok" or "error: ..."; status ends its link
    // lines with "ok". Either way the verdict is the last line.
    return std::string_view(last_line).starts_with("ok") ? 0 : 1;
}

}  // namespace wanproxy

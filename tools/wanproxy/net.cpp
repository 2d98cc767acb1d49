#include "net.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace wanproxy {

namespace {

// 'text' in single quotes. Built by appending because g++ 12 at -O3 reports
// a false -Wrestrict for "literal" + std::string temporaries (GCC PR 105329).
std::string quoted(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out += '\'';
    out += text;
    out += '\'';
    return out;
}

}  // namespace

Outcome<Endpoint> resolve_endpoint(std::string_view host_port, bool passive) {
    using R = Outcome<Endpoint>;
    std::string_view host;
    std::string_view port_text;
    if (!host_port.empty() && host_port.front() == '[') {
        const auto close = host_port.find(']');
        if (close == std::string_view::npos || close + 1 >= host_port.size() || host_port[close + 1] != ':') {
            return R::fail(quoted(host_port) + " is not [IPV6]:PORT");
        }
        host = host_port.substr(1, close - 1);
        port_text = host_port.substr(close + 2);
    } else {
        const auto colon = host_port.rfind(':');
        if (colon == std::string_view::npos) {
            return R::fail(quoted(host_port) + " has no port; write HOST:PORT");
        }
        host = host_port.substr(0, colon);
        port_text = host_port.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return R::fail(quoted(host_port) + ": put an IPv6 address in brackets, [::1]:PORT");
        }
    }
    if (host.empty()) {
        return R::fail(quoted(host_port) + " has no host; write HOST:PORT");
    }
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
        return R::fail("port " + quoted(port_text) + " in " + quoted(host_port) + " must be a number from 1 to 65535");
    }

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* list = nullptr;
    const std::string host_str(host);
    const std::string port_str(port_text);
    const int rc = ::getaddrinfo(host_str.c_str(), port_str.c_str(), &hints, &list);
    if (rc != 0 || list == nullptr) {
        return R::fail("cannot resolve " + quoted(host_str) + ": " + ::gai_strerror(rc));
    }
    Endpoint ep;
    ep.text = std::string(host_port);
    std::memcpy(&ep.addr, list->ai_addr, list->ai_addrlen);
    ep.addr_len = list->ai_addrlen;
    ::freeaddrinfo(list);
    return R::ok(std::move(ep));
}

Outcome<Fd> open_tcp_listener(const Endpoint& endpoint) {
    using R = Outcome<Fd>;
    Fd fd(::socket(endpoint.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        return R::fail(std::string("socket: ") + errno_text(errno));
    }
    const int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        return R::fail(std::string("SO_REUSEADDR: ") + errno_text(errno));
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&endpoint.addr), endpoint.addr_len) != 0) {
        return R::fail(errno_text(errno));
    }
    // A deep backlog: benchmarks open many connections at once.
    if (::listen(fd.get(), 4096) != 0) {
        return R::fail(std::string("listen: ") + errno_text(errno));
    }
    return R::ok(std::move(fd));
}

Outcome<ConnectStart> start_tcp_connect(const Endpoint& endpoint) {
    using R = Outcome<ConnectStart>;
    Fd fd(::socket(endpoint.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        return R::fail(std::string("socket: ") + errno_text(errno));
    }
    set_tcp_nodelay(fd.get());
    ConnectStart start;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&endpoint.addr), endpoint.addr_len) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            return R::fail(errno_text(errno));
        }
        // EINTR on a non-blocking connect also leaves it running in the
        // background; completion is reported the same way as EINPROGRESS.
        start.in_progress = true;
    }
    start.fd = std::move(fd);
    return R::ok(std::move(start));
}

void set_tcp_nodelay(int fd) noexcept {
    // Without it, Nagle would hold small writes and add delay we did not ask
    // for. Failure only costs latency, so it is not fatal.
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_linger_zero(int fd) noexcept {
    const linger lg{1, 0};
    (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

int socket_error(int fd) noexcept {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return errno;
    }
    return err;
}

}  // namespace wanproxy

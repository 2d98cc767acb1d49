// Socket helpers shared by links, connections and the control socket: name
// resolution, listeners, non-blocking connects and the socket options the
// proxy relies on.
#pragma once

#include "fd.hpp"
#include "shm/base/errno_text.hpp"

#include <sys/socket.h>

#include <optional>
#include <string>
#include <string_view>

namespace wanproxy {

struct Endpoint {
    std::string text;  // as written in the links file, e.g. "127.0.0.1:30001"
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
};

// Result of an operation that either yields a value or says what went wrong.
// (std::expected is C++23; g++ 12 does not have it.)
template <typename T>
struct Outcome {
    std::optional<T> value;
    std::string error;  // set when !value

    static Outcome ok(T v) { return Outcome{std::move(v), {}}; }
    static Outcome fail(std::string message) { return Outcome{std::nullopt, std::move(message)}; }
};

using regiond::base::errno_text;

// Parses "HOST:PORT" or "[IPV6]:PORT" and resolves it (numeric or by name).
// `passive` resolves for bind(). Blocking: only called at startup.
Outcome<Endpoint> resolve_endpoint(std::string_view host_port, bool passive);

// Non-blocking listening TCP socket with SO_REUSEADDR, so a link can be
// re-opened on its port while connections it accepted earlier still exist.
Outcome<Fd> open_tcp_listener(const Endpoint& endpoint);

struct ConnectStart {
    Fd fd;
    bool in_progress = false;  // wait for EPOLLOUT, then check socket_error()
};
// Starts a non-blocking connect with TCP_NODELAY already set.
Outcome<ConnectStart> start_tcp_connect(const Endpoint& endpoint);

void set_tcp_nodelay(int fd) noexcept;
// Makes the next close() send RST instead of FIN.
void set_linger_zero(int fd) noexcept;
// Pending error of a socket (SO_ERROR), 0 if none.
int socket_error(int fd) noexcept;

}  // namespace wanproxy

#include "link.hpp"

#include "log.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

namespace wanproxy {

namespace {

// Accepts per wake-up before other links and connections get a turn.
constexpr int kAcceptsPerWakeup = 64;
// After EMFILE/ENFILE the pending connection stays in the backlog and the
// listener stays readable; pause instead of spinning.
constexpr std::int64_t kAcceptPauseNs = 100'000'000;

}  // namespace

std::string_view cut_mode_name(CutMode mode) {
    switch (mode) {
        case CutMode::stall: return "stall";
        case CutMode::reset: return "reset";
        case CutMode::blackhole: return "blackhole";
    }
    return "?";
}

std::optional<CutMode> parse_cut_mode(std::string_view text) {
    for (const CutMode mode : {CutMode::stall, CutMode::reset, CutMode::blackhole}) {
        if (text == cut_mode_name(mode)) {
            return mode;
        }
    }
    return std::nullopt;
}

Link::Link(EventLoop& loop, BufferPool& buffers, LinkSpec spec)
    : loop_(loop), buffers_(buffers), spec_(std::move(spec)), delay_ms_(spec_.delay_ms) {
    counters_.name = spec_.name;
    counters_.delay_ns = delay_ms_to_ns(delay_ms_);
}

std::optional<std::string> Link::start() {
    if (auto error = open_listener()) {
        return "link '" + spec_.name + "': cannot listen on " + spec_.listen.text + ": " + *error;
    }
    return std::nullopt;
}

std::optional<std::string> Link::open_listener() {
    if (listener_) {
        return std::nullopt;
    }
    auto listener = open_tcp_listener(spec_.listen);
    if (!listener.value) {
        return listener.error;
    }
    listener_ = std::move(*listener.value);
    listener_watch_ = loop_.watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
    return std::nullopt;
}

void Link::on_accept() {
    for (int i = 0; i < kAcceptsPerWakeup && listener_; ++i) {
        Fd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!client) {
            const int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                return;
            }
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                log_line("link " + spec_.name + ": accept: " + errno_text(err) + "; pausing accepts for 100 ms");
                pause_accepting();
                return;
            }
            // ECONNABORTED, EINTR, EPROTO...: this one connection is lost,
            // the next may be fine.
            continue;
        }
        const std::uint64_t id = next_connection_id_++;
        // A blackhole accepts but holds the connection, without even
        // connecting to the target, as a partition would.
        const bool stalled = cut_.has_value();
        auto on_closed = [this, id] { connections_.erase(id); };
        connections_.emplace(id, std::make_unique<Connection>(loop_, buffers_, counters_, spec_.target,
                                                              std::move(client), std::move(on_closed), stalled));
    }
}

void Link::pause_accepting() {
    listener_watch_.reset();
    accept_retry_ = loop_.at(monotonic_ns() + kAcceptPauseNs, [this] {
        if (listener_) {
            listener_watch_ = loop_.watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
        }
    });
}

std::string Link::status_line() const {
    std::string line = spec_.name + " " + spec_.listen.text + " " + spec_.target.text +
                       " delay_ms=" + format_delay_ms(delay_ms_) + " state=";
    if (cut_) {
        line += "cut(";
        line += cut_mode_name(*cut_);
        line += ")";
    } else {
        line += "up";
    }
    std::size_t open = 0;
    for (const auto& [id, connection] : connections_) {
        open += connection->closed() ? 0 : 1;
    }
    line += " conns=" + std::to_string(open) + " bytes_up=" + std::to_string(counters_.bytes_up) +
            " bytes_down=" + std::to_string(counters_.bytes_down);
    return line;
}

void Link::set_delay(double ms) {
    delay_ms_ = ms;
    counters_.delay_ns = delay_ms_to_ns(ms);
    log_line("link " + spec_.name + ": delay " + format_delay_ms(ms) + " ms");
}

std::optional<std::string> Link::cut(CutMode mode) {
    cut_ = mode;
    // Connections first, so they are cut even if the listener step fails.
    for (auto& [id, connection] : connections_) {
        if (mode == CutMode::reset) {
            connection->reset();  // its removal from the map is deferred
        } else {
            connection->stall();
        }
    }
    log_line("link " + spec_.name + ": cut (" + std::string(cut_mode_name(mode)) + ")");
    if (mode == CutMode::blackhole) {
        // Keep (or re-open) the listener so connects still succeed.
        if (auto error = open_listener()) {
            return "link '" + spec_.name + "': open connections are cut, but cannot listen on " + spec_.listen.text +
                   " for blackhole: " + *error + "; free the port and repeat the cut";
        }
    } else {
        // Closing the listening socket makes new connects fail with
        // ECONNREFUSED at once, like a host that is down.
        accept_retry_.cancel();
        listener_watch_.reset();
        listener_.reset();
    }
    return std::nullopt;
}

std::optional<std::string> Link::restore() {
    if (auto error = open_listener()) {
        // Stay cut: resuming connections while new ones are refused would be
        // a state nobody asked for.
        return "link '" + spec_.name + "': cannot re-open listener on " + spec_.listen.text + ": " + *error +
               "; the link stays cut, free the port and retry restore";
    }
    const bool was_cut = cut_.has_value();
    cut_.reset();
    for (auto& [id, connection] : connections_) {
        connection->resume();
    }
    if (was_cut) {
        log_line("link " + spec_.name + ": restored");
    }
    return std::nullopt;
}

}  // namespace wanproxy

#include "connection.hpp"

#include "log.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace wanproxy {

namespace {

// Reads per wake-up on one socket before yielding to other connections; the
// socket stays readable (level-triggered) so nothing is lost.
constexpr int kReadsPerWakeup = 16;
// Reads smaller than this are copied into a buffer of their own size, so
// that many small messages in flight do not each pin a 64 KiB buffer; larger
// ones keep the pool buffer they were read into.
constexpr std::size_t kCopyBelow = 8 * 1024;

}  // namespace

Connection::Connection(EventLoop& loop, BufferPool& buffers, LinkCounters& link, const Endpoint& target, Fd client,
                       std::function<void()> on_closed, bool stalled)
    : loop_(loop),
      buffers_(buffers),
      link_(link),
      target_(target),
      on_closed_(std::move(on_closed)),
      state_(State::awaiting_link),
      stalled_(stalled) {
    set_tcp_nodelay(client.get());
    sockets_[Side::client] = std::move(client);
    if (stalled_) {
        // Watch only for the client giving up (FIN, RST), so a long blackhole
        // with retrying clients does not pile up dead descriptors.
        watches_[Side::client] =
            loop_.watch(sockets_[Side::client].get(), EPOLLRDHUP, [this](std::uint32_t) { close(false); });
    } else {
        start_connect();
    }
}

void Connection::start_connect() {
    auto start = start_tcp_connect(target_);
    if (!start.value) {
        log_line("link " + link_.name + ": connect to " + target_.text + " failed: " + start.error);
        // RST tells the client the connection failed rather than that the
        // server closed it cleanly.
        close(true);
        return;
    }
    sockets_[Side::upstream] = std::move(start.value->fd);
    state_ = start.value->in_progress ? State::connecting : State::open;
    update_interest();
    if (state_ == State::open) {
        pump(Dir::up);
    }
}

void Connection::finish_connect(std::uint32_t events) {
    const int err = socket_error(sockets_[Side::upstream].get());
    if (err == 0 && (events & EPOLLOUT) == 0 && (events & (EPOLLERR | EPOLLHUP)) == 0) {
        return;  // not finished yet
    }
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
        log_line("link " + link_.name + ": connect to " + target_.text +
                 " failed: " + errno_text(err != 0 ? err : ECONNRESET));
        close(true);
        return;
    }
    state_ = State::open;
    update_interest();
    // The client may have sent data while we were connecting.
    pump(Dir::up);
}

void Connection::on_event(Side side, std::uint32_t events) {
    if (state_ == State::closed) {
        return;
    }
    if (stalled_) {
        // Stalling unregisters both sockets, so this is only a stale event
        // from the batch in which the stall happened: ignore it.
        return;
    }
    if (side == Side::upstream && state_ == State::connecting) {
        finish_connect(events);
        return;
    }
    if ((events & EPOLLERR) != 0) {
        // RST or another socket error on one side: propagate as a close of
        // the pair, queued data is dropped as a real reset would drop it.
        close(false);
        return;
    }
    const Dir in = reading_from(side);
    if ((events & (EPOLLIN | EPOLLHUP)) != 0 && !dirs_[in].read_eof && dirs_[in].queued_bytes < kMaxQueuedBytes) {
        read_from(side);
        if (state_ == State::closed) {
            return;
        }
    }
    if ((events & EPOLLOUT) != 0) {
        pump(writing_to(side));
        if (state_ == State::closed) {
            return;
        }
    }
    update_interest();
}

void Connection::read_from(Side side) {
    const Dir dir = reading_from(side);
    Direction& d = dirs_[dir];
    const int fd = sockets_[side].get();
    const std::int64_t now = monotonic_ns();
    // Never release before an earlier chunk: after the delay is lowered at
    // run time, arrival + delay may be earlier than what is already queued.
    const std::int64_t release = std::max(now + link_.delay_ns, d.last_release_ns);
    for (int i = 0; i < kReadsPerWakeup && !d.read_eof && d.queued_bytes < kMaxQueuedBytes; ++i) {
        BufferPool::Buffer buffer = buffers_.take();
        const ssize_t n = ::recv(fd, buffer.get(), BufferPool::kBufferSize, 0);
        if (n > 0) {
            const auto size = static_cast<std::size_t>(n);
            Chunk chunk{release, nullptr, size, 0, false, false};
            if (size < kCopyBelow) {
                chunk.data.reset(new std::byte[size]);
                std::memcpy(chunk.data.get(), buffer.get(), size);
                buffers_.give(std::move(buffer));
            } else {
                chunk.data = std::move(buffer);
                chunk.pooled = true;
            }
            d.queue.push_back(std::move(chunk));
            d.queued_bytes += size;
            d.last_release_ns = release;
            if (size < BufferPool::kBufferSize) {
                // A short read means the socket is drained for now; skipping
                // the recv() that would only say EAGAIN saves a syscall per
                // message (epoll reports anything that arrives later).
                break;
            }
            continue;
        }
        buffers_.give(std::move(buffer));
        if (n == 0) {
            // FIN: it travels with the same delay, after all earlier data.
            d.read_eof = true;
            d.queue.push_back(Chunk{release, nullptr, 0, 0, false, true});
            d.last_release_ns = release;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            close(false);
            return;
        }
    }
    pump(dir);
}

void Connection::pump(Dir dir) {
    if (state_ != State::open || stalled_) {
        return;
    }
    Direction& d = dirs_[dir];
    const int fd = sockets_[sink_of(dir)].get();
    std::uint64_t& counter = dir == Dir::up ? link_.bytes_up : link_.bytes_down;
    const std::int64_t now = monotonic_ns();
    d.write_blocked = false;
    while (!d.queue.empty()) {
        Chunk& chunk = d.queue.front();
        if (chunk.release_ns > now) {
            // Release times in the queue never decrease, so one timer for the
            // head is enough; it re-runs pump, which re-arms for the next.
            if (!d.timer.pending()) {
                d.timer = loop_.at(chunk.release_ns, [this, dir] { pump(dir); });
            }
            break;
        }
        if (chunk.eof) {
            if (::shutdown(fd, SHUT_WR) != 0) {
                close(false);
                return;
            }
            d.eof_delivered = true;
            d.queue.pop_front();
            continue;
        }
        // MSG_NOSIGNAL: a peer that has gone away must not kill the proxy
        // (SIGPIPE is ignored too, this is belt and braces).
        const ssize_t n = ::send(fd, chunk.data.get() + chunk.sent, chunk.size - chunk.sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                d.write_blocked = true;
                break;
            }
            close(false);
            return;
        }
        const auto written = static_cast<std::size_t>(n);
        chunk.sent += written;
        d.queued_bytes -= written;
        counter += written;
        if (chunk.sent == chunk.size) {
            if (chunk.pooled) {
                buffers_.give(std::move(chunk.data));
            }
            d.queue.pop_front();
        }
    }
    if (dirs_[Dir::up].eof_delivered && dirs_[Dir::down].eof_delivered) {
        // Both sides have sent FIN and received ours: nothing left to carry.
        close(false);
        return;
    }
    // Writing may have brought the queue under the cap (read again) or hit
    // EAGAIN (wait for EPOLLOUT); every caller needs the interest refreshed.
    update_interest();
}

std::uint32_t Connection::wanted_events(Side side) const {
    if (state_ == State::closed || stalled_ || !sockets_[side]) {
        return 0;
    }
    if (side == Side::upstream && state_ == State::connecting) {
        return EPOLLOUT;
    }
    std::uint32_t events = 0;
    const Direction& in = dirs_[reading_from(side)];
    if (!in.read_eof && in.queued_bytes < kMaxQueuedBytes) {
        events |= EPOLLIN;
    }
    if (dirs_[writing_to(side)].write_blocked) {
        events |= EPOLLOUT;
    }
    return events;
}

void Connection::update_interest(Side side) {
    const std::uint32_t events = wanted_events(side);
    Watch& watch = watches_[side];
    if (events == 0) {
        // Unregister rather than set an empty mask: epoll reports EPOLLHUP
        // regardless of the mask, and a half-closed socket we are not reading
        // (over the cap) would then wake us in a busy loop.
        watch.reset();
    } else if (!watch.active()) {
        watch = loop_.watch(sockets_[side].get(), events, [this, side](std::uint32_t ev) { on_event(side, ev); });
    } else {
        watch.set_events(events);
    }
}

void Connection::update_interest() {
    update_interest(Side::client);
    update_interest(Side::upstream);
}

void Connection::stall() {
    if (state_ == State::closed || stalled_) {
        return;
    }
    stalled_ = true;
    // Nothing is read or written until resume(); what the peers send waits
    // in our queues or in the kernel, as it would behind a partition.
    update_interest();
}

void Connection::resume() {
    if (state_ == State::closed || !stalled_) {
        return;
    }
    stalled_ = false;
    if (state_ == State::awaiting_link) {
        watches_[Side::client].reset();
        start_connect();
        return;
    }
    pump(Dir::up);
    if (state_ == State::closed) {
        return;
    }
    pump(Dir::down);
    if (state_ == State::closed) {
        return;
    }
    update_interest();
}

void Connection::close(bool with_rst) {
    if (state_ == State::closed) {
        return;
    }
    state_ = State::closed;
    for (auto& watch : watches_) {
        watch.reset();
    }
    for (auto& d : dirs_) {
        d.timer.cancel();
    }
    for (auto& socket : sockets_) {
        if (socket && with_rst) {
            set_linger_zero(socket.get());
        }
        socket.reset();
    }
    loop_.defer(on_closed_);
}

}  // namespace wanproxy

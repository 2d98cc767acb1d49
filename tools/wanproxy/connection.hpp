// One proxied TCP connection: the accepted client socket, the socket to the
// target, and for each direction a FIFO of chunks held until their release
// time (arrival + the link's delay).
#pragma once

#include "buffer_pool.hpp"
#include "event_loop.hpp"
#include "fd.hpp"
#include "net.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>

namespace wanproxy {

// Per-link values a connection reads and updates; owned by the Link.
struct LinkCounters {
    std::string name;              // for log lines
    std::int64_t delay_ns = 0;     // one-way delay applied to newly read data
    std::uint64_t bytes_up = 0;    // client -> target, counted when written
    std::uint64_t bytes_down = 0;  // target -> client, counted when written
};

class Connection {
public:
    // Bytes held per direction before we stop reading from its source; the
    // source then feels TCP backpressure as it would on a slow WAN.
    static constexpr std::size_t kMaxQueuedBytes = std::size_t{4} << 20;

    // `on_closed` runs (deferred) once the connection is finished and may
    // destroy it. A connection created `stalled` does not connect to the
    // target until resume(): that is a new connection during a blackhole.
    Connection(EventLoop& loop, BufferPool& buffers, LinkCounters& link, const Endpoint& target, Fd client,
               std::function<void()> on_closed, bool stalled);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() = default;

    // Stop forwarding in both directions, keeping sockets and queued data.
    void stall();
    // Undo stall(): connect if never connected, deliver whatever is due.
    void resume();
    // Close both sockets with RST.
    void reset() { close(true); }
    // True once closed; the owner erases it shortly after (deferred).
    [[nodiscard]] bool closed() const { return state_ == State::closed; }

private:
    enum class State {
        awaiting_link,  // accepted while blackholed; no target connection yet
        connecting,     // non-blocking connect to the target in flight
        open,
        closed,
    };
    enum Side : std::size_t { client = 0, upstream = 1 };
    // Direction d carries data read from side d to the other side, so
    // up == read from client, down == read from upstream.
    enum Dir : std::size_t { up = 0, down = 1 };

    struct Chunk {
        std::int64_t release_ns;
        BufferPool::Buffer data;  // null for the EOF marker
        std::size_t size = 0;
        std::size_t sent = 0;
        bool pooled = false;  // data is a BufferPool buffer, to be given back
        bool eof = false;
    };
    struct Direction {
        std::deque<Chunk> queue;
        std::size_t queued_bytes = 0;
        std::int64_t last_release_ns = 0;
        bool read_eof = false;       // source sent FIN; an EOF marker is queued
        bool eof_delivered = false;  // shutdown(SHUT_WR) done on the destination
        bool write_blocked = false;  // a due chunk met EAGAIN; wait for EPOLLOUT
        TimerHandle timer;
    };

    static Side source_of(Dir d) { return d == up ? client : upstream; }
    static Side sink_of(Dir d) { return d == up ? upstream : client; }
    static Dir reading_from(Side s) { return s == client ? up : down; }
    static Dir writing_to(Side s) { return s == client ? down : up; }

    void start_connect();
    void finish_connect(std::uint32_t events);
    void on_event(Side side, std::uint32_t events);
    void read_from(Side side);
    void pump(Dir dir);
    std::uint32_t wanted_events(Side side) const;
    void update_interest(Side side);
    void update_interest();
    void close(bool with_rst);

    EventLoop& loop_;
    BufferPool& buffers_;
    LinkCounters& link_;
    const Endpoint& target_;
    std::function<void()> on_closed_;
    State state_;
    bool stalled_;
    std::array<Fd, 2> sockets_;
    std::array<Direction, 2> dirs_;
    // Declared after sockets_ and dirs_ so the watches are removed before
    // the descriptors close.
    std::array<Watch, 2> watches_;
};

}  // namespace wanproxy

// One configured link: a listening socket, the connections it accepted, the
// current delay, and the cut/restore state the control socket changes.
#pragma once

#include "buffer_pool.hpp"
#include "connection.hpp"
#include "event_loop.hpp"
#include "fd.hpp"
#include "links_file.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace wanproxy {

enum class CutMode {
    stall,      // refuse new connections; open ones keep their sockets but nothing moves
    reset,      // refuse new connections; open ones are closed with RST
    blackhole,  // accept new connections but forward nothing; open ones stall
};

std::string_view cut_mode_name(CutMode mode);
std::optional<CutMode> parse_cut_mode(std::string_view text);

class Link {
public:
    Link(EventLoop& loop, BufferPool& buffers, LinkSpec spec);
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;
    ~Link() = default;

    [[nodiscard]] const std::string& name() const { return spec_.name; }
    // Opens the listening socket; the error names the link and the address.
    [[nodiscard]] std::optional<std::string> start();
    // "NAME LISTEN TARGET delay_ms=D state=up|cut(MODE) conns=N bytes_up=N bytes_down=N"
    [[nodiscard]] std::string status_line() const;
    // Applies to data read from now on; already queued data keeps its time.
    void set_delay(double ms);
    [[nodiscard]] std::optional<std::string> cut(CutMode mode);
    [[nodiscard]] std::optional<std::string> restore();

private:
    std::optional<std::string> open_listener();
    void on_accept();
    void pause_accepting();

    EventLoop& loop_;
    BufferPool& buffers_;
    const LinkSpec spec_;
    double delay_ms_;
    LinkCounters counters_;
    std::optional<CutMode> cut_;
    // Connections refer to spec_ and counters_, so they are declared after
    // them and destroyed first.
    std::map<std::uint64_t, std::unique_ptr<Connection>> connections_;
    std::uint64_t next_connection_id_ = 1;
    Fd listener_;
    Watch listener_watch_;
    TimerHandle accept_retry_;
};

}  // namespace wanproxy

// cache_healthy of one region: a PING to the region's Redis every
// health.check_interval, with hysteresis (health.down_after / up_after).
//
// Never blocks the loop: a non-blocking connect (bounded by
// health.connect_timeout), then "AUTH" (when the URL has a password), "SELECT"
// (when it names a db) and "PING" pipelined in one write; the replies are parsed
// with hiredis' RESP reader. The connection is kept for the next check and
// re-opened after any failure. A host name (not an address) is resolved once,
// when the probe is created, which is before the loop serves anything; a name
// that does not resolve leaves that cache down (last_error says why) until a
// restart. Use addresses in redis URLs where that matters.
//
// Only the region and "host:port" ever appear in messages: the URL may carry a
// password.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "config/redis_url.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/hysteresis.hpp"

struct redisReader;

namespace regiond::daemon {

struct RedisProbeSettings {
    std::string region;
    config::RedisEndpoint address;
    std::chrono::nanoseconds connect_timeout{std::chrono::seconds(2)};
    std::chrono::nanoseconds check_interval{std::chrono::milliseconds(500)};
    unsigned down_after = 3;
    unsigned up_after = 2;
};

class RedisProbe {
public:
    RedisProbe(EventLoop& loop, RedisProbeSettings settings, std::function<void()> on_change);
    ~RedisProbe();
    RedisProbe(const RedisProbe&) = delete;
    RedisProbe& operator=(const RedisProbe&) = delete;

    /// Starts checking (the first check runs at once).
    void start();
    /// New timing and thresholds (SIGHUP); the address stays.
    void update(std::chrono::nanoseconds connect_timeout, std::chrono::nanoseconds check_interval, unsigned down_after,
                unsigned up_after);

    const std::string& region() const noexcept { return settings_.region; }
    /// "host:port" or the socket path: safe to show.
    const std::string& display_name() const noexcept { return display_name_; }
    bool healthy() const noexcept { return hysteresis_.up(); }
    bool checked() const noexcept { return hysteresis_.known(); }
    std::uint32_t rtt_us() const noexcept { return rtt_us_; }
    const std::string& last_error() const noexcept { return last_error_; }

private:
    enum class Phase { idle, connecting, waiting };

    void schedule_next();
    void check();
    bool open_connection();
    void on_events(std::uint32_t events);
    void send_commands(bool fresh_connection);
    bool flush_output();
    void read_replies();
    void finish(bool success, std::string error);
    std::string without_secrets(std::string text) const;
    void close_connection();
    void resolve();

    EventLoop& loop_;
    RedisProbeSettings settings_;
    std::function<void()> on_change_;
    std::string display_name_;
    sockaddr_storage address_{};
    socklen_t address_length_ = 0;
    std::string resolve_error_;

    Hysteresis hysteresis_;
    int fd_ = -1;
    Phase phase_ = Phase::idle;
    bool fresh_ = false;  // the current connection has not run AUTH/SELECT yet
    redisReader* reader_ = nullptr;
    std::string output_;
    std::size_t output_sent_ = 0;
    unsigned replies_expected_ = 0;
    std::size_t bytes_read_ = 0;
    EventLoop::Clock::time_point sent_at_{};
    EventLoop::TimerId tick_timer_ = 0;
    EventLoop::TimerId deadline_timer_ = 0;
    std::uint32_t rtt_us_ = 0;
    std::string last_error_;
    bool started_ = false;
};

}  // namespace regiond::daemon

// cache_healthy of one region: a PING to the region's Redis every
// health.check_interval, with hysteresis (health.down_after / up_after).
//
// Runs on a RedisConnection (daemon/redis/redis_connection.hpp: hiredis' async API
// on the daemon's loop), so it never blocks the loop and writes no RESP itself. A
// new connection gets "AUTH" (when the URL has a password), "SELECT" (when it
// names a db) and "PING" pipelined; later checks reuse it with one PING. The
// connect and the answer are each bounded by health.connect_timeout. After a
// failure the connection is dropped and re-opened with backoff: the first retry
// at the next check, then after 2, 4, ... check intervals (at most 16, and at
// most 5 s unless the interval itself is longer); a check that falls inside the
// backoff counts as one more failure with the same error, so the hysteresis keeps
// its pace.
//
// A host name (not an address) is resolved once, when the probe is created,
// which is before the loop serves anything; a name that does not resolve leaves
// that cache down (last_error says why) until a restart. Use addresses in redis
// URLs where that matters.
//
// Only the region and "host:port" ever appear in messages: the URL may carry a
// password.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/redis_url.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/hysteresis.hpp"
#include "daemon/redis/redis_connection.hpp"

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
    void check();
    void open_connection();
    void on_setup_reply(const RedisReply& reply);
    void on_pong(const RedisReply& reply);
    void finish(bool success, std::string error);
    /// One verdict into the hysteresis (logs and reports a change).
    void record(bool success);
    std::chrono::nanoseconds backoff() const;

    EventLoop& loop_;
    RedisProbeSettings settings_;
    std::function<void()> on_change_;
    std::string display_name_;
    RedisTarget target_;
    std::string resolve_error_;

    Hysteresis hysteresis_;
    std::unique_ptr<RedisConnection> connection_;
    bool in_flight_ = false;  // a PING waits for its answer
    unsigned consecutive_failures_ = 0;
    EventLoop::Clock::time_point retry_at_{};  // no new connection before this
    EventLoop::Clock::time_point sent_at_{};
    TimerHandle tick_;
    std::uint32_t rtt_us_ = 0;
    std::string last_error_;
    bool started_ = false;
};

}  // namespace regiond::daemon

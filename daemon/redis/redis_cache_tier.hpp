// One region's Redis as the cache tier behind the hot cache (issue 9): GET a
// value, SET one with a TTL, and invalidate keys (DEL them and PUBLISH the
// invalidation message, pipelined). One per region; the daemon's own region's
// Redis also carries the replication-events subscription (RedisSubscriber, on a
// connection of its own). Not the health signal: that is RedisProbe's
// (cache_healthy); healthy() here only says how this tier's own connection fares.
//
// One RedisConnection (hiredis' async API on the daemon's loop; commands formatted
// by hiredis, binary-safe, pipelined). A new connection starts with AUTH and
// SELECT when the URL asks for them, and a PING, in the same flush as whatever
// commands are already waiting. Each command is bounded by command_timeout (the
// connect by connect_timeout); a connection that fails in any way is dropped and
// a new one opened after a backoff (min_backoff doubling up to max_backoff; reset
// by any successful reply), also when the tier is idle, so healthy() recovers on
// its own. While the tier waits out a backoff, commands fail at once (on the
// loop) with the last error: a cache tier that is down must not slow the
// database path behind it.
//
// Threading and callbacks: the loop's thread only. A get() callback runs exactly
// once, on the loop, never inside get(); it may destroy the tier or issue more
// commands. Destroying the tier drops the callbacks of the gets still
// outstanding without calling them. set() and invalidate() are fire and forget:
// their failures are counted (counters().failures) and kept (last_error()).
//
// A host name in the URL is resolved when the tier is created (blocking
// getaddrinfo, before the loop serves); messages only ever show the region and
// "host:port" (the URL may carry a password).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "config/redis_url.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/redis/reconnect_backoff.hpp"
#include "daemon/redis/redis_connection.hpp"

namespace regiond::daemon {

struct RedisCacheTierSettings {
    std::string region;
    config::RedisEndpoint address;
    std::chrono::nanoseconds connect_timeout{std::chrono::seconds(1)};
    /// How long any command may wait for its reply.
    std::chrono::nanoseconds command_timeout{std::chrono::seconds(1)};
    std::chrono::nanoseconds min_backoff{std::chrono::milliseconds(100)};
    std::chrono::nanoseconds max_backoff{std::chrono::seconds(5)};
    /// A GET answer larger than this is a failure (the connection refuses to
    /// buffer much more than this of one reply).
    std::size_t max_value_bytes = 16 * 1024 * 1024;
};

/// What a get() found.
class RedisGetResult {
public:
    enum class Status : std::uint8_t { hit, miss, failed };

    static RedisGetResult hit(std::string value) { return {Status::hit, std::move(value)}; }
    static RedisGetResult miss() { return {Status::miss, {}}; }
    static RedisGetResult failed(std::string reason) { return {Status::failed, std::move(reason)}; }

    [[nodiscard]] Status status() const noexcept { return status_; }
    [[nodiscard]] bool is_hit() const noexcept { return status_ == Status::hit; }
    [[nodiscard]] bool is_miss() const noexcept { return status_ == Status::miss; }
    [[nodiscard]] bool is_failed() const noexcept { return status_ == Status::failed; }
    /// Hit: the value's bytes (any bytes). Empty otherwise.
    [[nodiscard]] const std::string& value() const noexcept { return status_ == Status::hit ? text_ : empty(); }
    [[nodiscard]] std::string& value() noexcept { return text_; }
    /// Failed: why (safe to show). Empty otherwise.
    [[nodiscard]] const std::string& failure() const noexcept { return status_ == Status::failed ? text_ : empty(); }

private:
    RedisGetResult(Status status, std::string text) : status_(status), text_(std::move(text)) {}
    static const std::string& empty() noexcept {
        static const std::string nothing;
        return nothing;
    }

    Status status_;
    std::string text_;
};

struct RedisCacheTierCounters {
    std::uint64_t gets = 0;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t sets = 0;
    std::uint64_t invalidations = 0;
    /// Commands that failed: no connection, connection lost, timeout, an error
    /// reply, an unexpected reply (one invalidate() is two commands).
    std::uint64_t failures = 0;
};

class RedisCacheTier {
public:
    using GetCallback = std::function<void(RedisGetResult&& result)>;

    RedisCacheTier(EventLoop& loop, RedisCacheTierSettings settings);
    ~RedisCacheTier();
    RedisCacheTier(const RedisCacheTier&) = delete;
    RedisCacheTier& operator=(const RedisCacheTier&) = delete;

    /// Connects now (otherwise the first command does).
    void start();

    /// GET key.
    void get(std::string_view key, GetCallback callback);
    /// SET key value PX ttl (at least 1 ms).
    void set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl);
    /// DEL keys... (when there are any) and PUBLISH replication:events payload,
    /// queued back to back so they leave in one write. The caller bounds the key
    /// count and the payload (invalidation_message.hpp). An empty payload: DEL
    /// only, nothing published.
    void invalidate(std::span<const std::string> keys, std::string_view payload);

    /// Connected, and the last command did not fail.
    [[nodiscard]] bool healthy() const noexcept;
    [[nodiscard]] bool connected() const noexcept { return connection_ && connection_->connected(); }
    [[nodiscard]] const RedisCacheTierCounters& counters() const noexcept { return counters_; }
    /// Why the last failure happened (safe to show); empty before any.
    [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
    [[nodiscard]] const std::string& region() const noexcept { return settings_.region; }
    /// "host:port" or the socket path: safe to show.
    [[nodiscard]] const std::string& display_name() const noexcept { return display_name_; }

private:
    /// A connection that is open or opening; false while the backoff runs (or the
    /// address did not resolve).
    bool ensure_connection();
    void open_connection();
    void on_closed(const std::string& reason);
    void on_setup_reply(const RedisReply& reply);
    void on_get_reply(const RedisReply& reply, const GetCallback& callback);
    /// A fire-and-forget command's reply: anything but `expected_type` is a
    /// failure (recorded; false).
    bool check_reply(const RedisReply& reply, std::string_view command, int expected_type);
    void succeeded();
    void failed(std::string reason);
    /// Fails a command that could not be sent; returns the reason.
    std::string unavailable();
    std::string safe(std::string_view text) const;

    EventLoop& loop_;
    RedisCacheTierSettings settings_;
    std::string display_name_;
    RedisTarget target_;
    std::string resolve_error_;
    RedisConnectionSettings connection_settings_;

    std::unique_ptr<RedisConnection> connection_;
    ReconnectBackoff backoff_;
    TimerHandle retry_;         // pending: no connection until it fires
    std::string setup_error_;   // AUTH or SELECT refused on the current connection
    bool last_failed_ = false;  // the last command failed
    std::string last_error_;
    RedisCacheTierCounters counters_;
    LoopScope scope_;  // last: deferred calls die first
};

}  // namespace regiond::daemon

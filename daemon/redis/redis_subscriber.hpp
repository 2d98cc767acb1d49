// The daemon's replication-event subscription: SUBSCRIBE replication:events on
// the daemon's own region's Redis, on a connection of its own (a subscribed
// connection takes no other commands), and hand every message's payload to the
// daemon. It only carries bytes: parsing them is invalidation_message.hpp's job.
//
// Lifecycle, reported through Hooks:
//   start() -> connecting -> on_subscribed() -> on_message(payload)...
//           -> (loss) on_lost(reason) -> backoff -> reconnect -> on_subscribed() ...
// A loss is anything that ends the subscription: the connection closed (server
// restarted or killed, network reset), a reply timeout (connect, SUBSCRIBE or a
// heartbeat), a reply hiredis cannot take safely. Each loss is reported exactly
// once, and only after an on_subscribed(): failed attempts while resubscribing
// are not losses of their own. Messages published between on_lost and the next
// on_subscribed were missed (pub/sub keeps nothing): the daemon flushes what it
// can no longer vouch for at on_lost and must not trust the fast path again
// before on_subscribed. Resubscribing backs off from min_backoff doubling up to
// max_backoff (about 2 s), reset once subscribed.
//
// Liveness: a loss that does not close the socket (a stalled link, a hung
// server) is found by a heartbeat: every heartbeat_interval the subscriber sends
// SUBSCRIBE for the same channel again; Redis answers with one more
// ["subscribe", channel, 1] and the subscription is unchanged. Its confirmation
// must come within reply_timeout, or the subscription is lost. Not PING: in
// RESP2 subscribe mode Redis answers PING with ["pong", ""], which hiredis 0.14
// routes like a pattern message to a pattern named "" that does not exist: the
// PING's callback is never called (and stays queued in hiredis for the life of
// the connection), and the reply is dropped or handed to whichever callback
// hiredis ran last in that batch (seen with the installed 0.14.1). A re-SUBSCRIBE
// is routed to the channel's own callback every time, leaks nothing, and proves
// the subscription itself is still in place.
//
// What Redis sends is not trusted: a message is delivered only when it is
// exactly ["message", channel, payload] with a bulk-string payload of at most
// max_payload_bytes; any other reply the connection lets through is dropped and
// counted (counters().dropped); one hiredis 0.14 cannot take safely closes the
// connection (redis_connection.hpp), which is a loss like any other.
//
// Threading and callbacks: the loop's thread only. Hooks run on the loop, never
// inside start(); any hook may destroy the subscriber. on_message's payload is
// valid only during the call.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "config/redis_url.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/redis/invalidation_message.hpp"
#include "daemon/redis/reconnect_backoff.hpp"
#include "daemon/redis/redis_connection.hpp"

namespace regiond::daemon {

struct RedisSubscriberSettings {
    std::string region;
    config::RedisEndpoint address;
    std::string channel{kInvalidationChannel};
    std::chrono::nanoseconds connect_timeout{std::chrono::seconds(1)};
    /// SUBSCRIBE's confirmation (first and heartbeat) must come within this.
    std::chrono::nanoseconds reply_timeout{std::chrono::seconds(1)};
    std::chrono::nanoseconds heartbeat_interval{std::chrono::seconds(1)};
    std::chrono::nanoseconds min_backoff{std::chrono::milliseconds(50)};
    std::chrono::nanoseconds max_backoff{std::chrono::seconds(2)};
    std::size_t max_payload_bytes = kMaxInvalidationBytes;
};

struct RedisSubscriberCounters {
    std::uint64_t subscribed = 0;  // times on_subscribed was reported
    std::uint64_t lost = 0;        // times on_lost was reported
    std::uint64_t messages = 0;    // payloads delivered
    std::uint64_t dropped = 0;     // replies dropped: malformed or too large
};

class RedisSubscriber {
public:
    struct Hooks {
        std::function<void()> on_subscribed;
        std::function<void(std::string_view payload)> on_message;
        std::function<void(const std::string& reason)> on_lost;
    };

    RedisSubscriber(EventLoop& loop, RedisSubscriberSettings settings, Hooks hooks);
    ~RedisSubscriber();
    RedisSubscriber(const RedisSubscriber&) = delete;
    RedisSubscriber& operator=(const RedisSubscriber&) = delete;

    /// Connects and subscribes (on the loop, not inside this call).
    void start();

    /// Subscribed now: messages published from here on are delivered.
    [[nodiscard]] bool subscribed() const noexcept { return subscribed_; }
    [[nodiscard]] const RedisSubscriberCounters& counters() const noexcept { return counters_; }
    /// Why the last attempt or subscription failed (safe to show); empty before.
    [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
    [[nodiscard]] const std::string& region() const noexcept { return settings_.region; }
    /// "host:port" or the socket path: safe to show.
    [[nodiscard]] const std::string& display_name() const noexcept { return display_name_; }

private:
    void connect();
    void on_setup_reply(const RedisReply& reply);
    void on_push(const RedisReply& reply);
    void heartbeat();
    void on_closed(const std::string& reason);
    void retry_later();

    EventLoop& loop_;
    RedisSubscriberSettings settings_;
    Hooks hooks_;
    std::string display_name_;
    RedisTarget target_;
    std::string resolve_error_;

    std::unique_ptr<RedisConnection> connection_;
    ReconnectBackoff backoff_;
    TimerHandle retry_;
    TimerHandle heartbeat_;
    std::string setup_error_;
    bool started_ = false;
    bool subscribed_ = false;
    std::string last_error_;
    RedisSubscriberCounters counters_;
    LoopScope scope_;  // last: deferred calls die first
};

}  // namespace regiond::daemon

#include "daemon/redis/redis_cache_tier.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <vector>

#include "daemon/log.hpp"
#include "daemon/redis/invalidation_message.hpp"
#include "daemon/redis/redis_endpoint.hpp"
#include "daemon/text.hpp"

namespace regiond::daemon {
namespace {


// Room for the bulk-string header and whatever follows a maximal value in the
// same read: a value a little over the limit is a failed get, not a dropped
// connection.
constexpr std::size_t kReplySlack = 64 * 1024;

}  // namespace

RedisCacheTier::RedisCacheTier(EventLoop& loop, RedisCacheTierSettings settings)
    : loop_(loop),
      settings_(std::move(settings)),
      display_name_(redis_display_name(settings_.address)),
      backoff_(settings_.min_backoff, settings_.max_backoff),
      scope_(loop) {
    ResolvedRedis resolved = resolve_redis(settings_.address);
    target_ = std::move(resolved.target);
    resolve_error_ = std::move(resolved.error);
    connection_settings_.connect_timeout = settings_.connect_timeout;
    connection_settings_.reply_timeout = settings_.command_timeout;
    connection_settings_.max_buffered_bytes = settings_.max_value_bytes + kReplySlack;
    connection_settings_.max_array_elements = 16;  // no command of ours answers with an array
}

RedisCacheTier::~RedisCacheTier() = default;

std::string RedisCacheTier::safe(std::string_view text) const {
    return redis_server_text(text, settings_.address);
}

void RedisCacheTier::start() {
    ensure_connection();
}

bool RedisCacheTier::healthy() const noexcept {
    return connected() && !last_failed_;
}

// A closed connection is replaced only when its retry timer fires (on_closed set
// it), never here: this may run inside that connection's failure callbacks.
bool RedisCacheTier::ensure_connection() {
    if (connection_) return connection_->open();
    if (!resolve_error_.empty()) {
        failed(resolve_error_);
        return false;
    }
    open_connection();
    return true;
}

void RedisCacheTier::open_connection() {
    setup_error_.clear();
    RedisConnection::Hooks hooks;
    hooks.on_closed = [this](const std::string& reason) { on_closed(reason); };
    connection_ = std::make_unique<RedisConnection>(loop_, target_, connection_settings_, std::move(hooks));
    queue_redis_setup(*connection_, settings_.address, [this](const RedisReply& reply) { on_setup_reply(reply); });
    // Proves the new connection (and clears a past failure) without waiting for
    // traffic; leaves in the same flush as the setup and any waiting commands.
    connection_->command({"PING"}, [this](const RedisReply& reply) { check_reply(reply, "PING", REDIS_REPLY_STATUS); });
}

void RedisCacheTier::on_setup_reply(const RedisReply& reply) {
    if (!reply.arrived()) return;  // the connection failed: on_closed says why
    if (!reply.is_error()) {
        succeeded();
        return;
    }
    if (!setup_error_.empty()) return;  // the first error says why (AUTH's, not SELECT's NOAUTH)
    // Wrong password or db: every command behind it would fail too. Drop the
    // connection (its commands fail with the reason) and retry after the backoff.
    setup_error_ = "server answered: " + safe(reply.text());
    failed(setup_error_);
    connection_->close(setup_error_);
}

// From RedisConnection::fail, after the callbacks of the outstanding commands.
void RedisCacheTier::on_closed(const std::string& reason) {
    const std::string why = !setup_error_.empty() ? setup_error_ : safe(reason);
    const bool first = backoff_.failures() == 0;
    const auto wait = backoff_.next();
    failed(why);
    if (first)
        log::warning("redis cache tier " + settings_.region + " " + display_name_ + ": " + why + "; reconnecting");
    retry_ = loop_.timer(loop_duration(wait), [this] {
        connection_.reset();  // closed, nothing outstanding
        open_connection();
    });
}

void RedisCacheTier::succeeded() {
    if (backoff_.failures() != 0)
        log::info("redis cache tier " + settings_.region + " " + display_name_ + " is connected again");
    backoff_.reset();
    last_failed_ = false;
}

void RedisCacheTier::failed(std::string reason) {
    last_failed_ = true;
    last_error_ = std::move(reason);
}

std::string RedisCacheTier::unavailable() {
    ++counters_.failures;
    return "redis " + settings_.region + " unavailable: " + (last_error_.empty() ? "not connected" : last_error_);
}

void RedisCacheTier::get(std::string_view key, GetCallback callback) {
    ++counters_.gets;
    if (!ensure_connection()) {
        scope_.defer([callback = std::move(callback), reason = unavailable()] {
            if (callback) callback(RedisGetResult::failed(reason));
        });
        return;
    }
    connection_->command({"GET", key}, [this, callback = std::move(callback)](const RedisReply& reply) {
        on_get_reply(reply, callback);
    });
}

void RedisCacheTier::on_get_reply(const RedisReply& reply, const GetCallback& callback) {
    auto result = [&]() -> RedisGetResult {
        if (!reply.arrived()) {
            ++counters_.failures;
            failed(safe(reply.failure()));
            return RedisGetResult::failed(last_error_);
        }
        const redisReply* raw = reply.raw();
        if (raw->type == REDIS_REPLY_NIL) {
            ++counters_.misses;
            succeeded();
            return RedisGetResult::miss();
        }
        if (raw->type == REDIS_REPLY_STRING) {
            succeeded();
            if (raw->len > settings_.max_value_bytes) {
                // The server is fine; the value is not one this daemon would have stored.
                ++counters_.failures;
                return RedisGetResult::failed("a value of " + format_size(raw->len) + ", more than " +
                                              format_size(settings_.max_value_bytes));
            }
            ++counters_.hits;
            return RedisGetResult::hit(std::string(raw->str, raw->len));
        }
        ++counters_.failures;
        failed(reply.is_error() ? "GET failed: server answered: " + safe(reply.text())
                                : std::string("GET failed: an unexpected reply"));
        return RedisGetResult::failed(last_error_);
    }();
    if (callback) callback(std::move(result));  // last: it may destroy this
}

void RedisCacheTier::set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
    ++counters_.sets;
    if (!ensure_connection()) {
        unavailable();
        return;
    }
    const std::string px = std::to_string(std::max<std::chrono::milliseconds::rep>(ttl.count(), 1));
    connection_->command({"SET", key, value, "PX", px}, [this](const RedisReply& reply) {
        if (!check_reply(reply, "SET", REDIS_REPLY_STATUS)) ++counters_.failures;
    });
}

void RedisCacheTier::invalidate(std::span<const std::string> keys, std::string_view payload) {
    ++counters_.invalidations;
    if (!ensure_connection()) {
        unavailable();
        if (!keys.empty()) ++counters_.failures;  // DEL and PUBLISH both failed
        return;
    }
    auto counted = [this](std::string_view command) {
        return [this, command](const RedisReply& reply) {
            if (!check_reply(reply, command, REDIS_REPLY_INTEGER)) ++counters_.failures;
        };
    };
    // Both are queued before the loop runs again, so hiredis writes them in one go.
    if (!keys.empty()) {
        std::vector<std::string_view> del;
        del.reserve(keys.size() + 1);
        del.emplace_back("DEL");
        for (const std::string& k : keys) del.emplace_back(k);
        connection_->command(del, counted("DEL"));
    }
    // An empty payload: DEL only (the durable path re-deleting in its own region).
    if (!payload.empty()) connection_->command({"PUBLISH", kInvalidationChannel, payload}, counted("PUBLISH"));
}

bool RedisCacheTier::check_reply(const RedisReply& reply, std::string_view command, int expected_type) {
    if (!reply.arrived()) {
        failed(safe(reply.failure()));
    } else if (reply.is_error()) {
        failed(std::string(command) + " failed: server answered: " + safe(reply.text()));
    } else if (reply.raw()->type != expected_type) {
        failed(std::string(command) + " failed: an unexpected reply");
    } else {
        succeeded();
        return true;
    }
    return false;
}

}  // namespace regiond::daemon

#include "daemon/redis/redis_subscriber.hpp"

#include <hiredis/hiredis.h>

#include "daemon/log.hpp"
#include "daemon/redis/redis_endpoint.hpp"

namespace regiond::daemon {
namespace {


bool is_bulk(const redisReply* r) {
    return r != nullptr && r->type == REDIS_REPLY_STRING;
}

std::string_view text_of(const redisReply* r) {
    return {r->str, r->len};
}

}  // namespace

RedisSubscriber::RedisSubscriber(EventLoop& loop, RedisSubscriberSettings settings, Hooks hooks)
    : loop_(loop),
      settings_(std::move(settings)),
      hooks_(std::move(hooks)),
      display_name_(redis_display_name(settings_.address)),
      backoff_(settings_.min_backoff, settings_.max_backoff),
      scope_(loop) {
    ResolvedRedis resolved = resolve_redis(settings_.address);
    target_ = std::move(resolved.target);
    resolve_error_ = std::move(resolved.error);
}

RedisSubscriber::~RedisSubscriber() = default;

void RedisSubscriber::start() {
    if (started_) return;
    started_ = true;
    scope_.defer([this] { connect(); });
}

void RedisSubscriber::connect() {
    connection_.reset();  // closed, or never opened
    setup_error_.clear();
    if (!resolve_error_.empty()) {
        last_error_ = resolve_error_;
        retry_later();
        return;
    }
    RedisConnectionSettings cs;
    cs.connect_timeout = settings_.connect_timeout;
    cs.reply_timeout = settings_.reply_timeout;
    // A payload a little over the limit is dropped and counted; a reply far over
    // it is not buffered at all (the connection closes).
    cs.max_buffered_bytes = 2 * settings_.max_payload_bytes + 64 * 1024;
    cs.max_array_elements = 16;
    RedisConnection::Hooks hooks;
    hooks.on_closed = [this](const std::string& reason) { on_closed(reason); };
    connection_ = std::make_unique<RedisConnection>(loop_, target_, cs, std::move(hooks));
    queue_redis_setup(*connection_, settings_.address, [this](const RedisReply& reply) { on_setup_reply(reply); });
    connection_->subscribe(settings_.channel, [this](const RedisReply& reply) { on_push(reply); });
}

void RedisSubscriber::on_setup_reply(const RedisReply& reply) {
    if (!reply.arrived() || !reply.is_error() || !setup_error_.empty()) return;  // the first error says why
    setup_error_ = "server answered: " + redis_server_text(reply.text(), settings_.address);
    connection_->close(setup_error_);
}

void RedisSubscriber::on_push(const RedisReply& reply) {
    // The connection has checked that this is an array of at least 2 whose first
    // element is "subscribe" or "message" and whose second is our channel.
    const redisReply* r = reply.raw();
    const std::string_view kind = text_of(r->element[0]);
    if (r->elements != 3) {
        ++counters_.dropped;
        return;
    }
    const redisReply* third = r->element[2];
    if (kind == "message") {
        if (!is_bulk(third) || third->len > settings_.max_payload_bytes) {
            ++counters_.dropped;
            return;
        }
        ++counters_.messages;
        if (hooks_.on_message) hooks_.on_message(text_of(third));  // may destroy this
        return;
    }
    if (kind != "subscribe" || third == nullptr || third->type != REDIS_REPLY_INTEGER) {
        ++counters_.dropped;
        return;
    }
    if (subscribed_) return;  // a heartbeat's confirmation (the connection counted it)
    subscribed_ = true;
    ++counters_.subscribed;
    if (backoff_.failures() != 0)
        log::info("redis subscription " + settings_.region + " " + display_name_ + " is back");
    backoff_.reset();
    heartbeat_ = loop_.timer(loop_duration(settings_.heartbeat_interval), [this] { heartbeat(); });
    if (hooks_.on_subscribed) hooks_.on_subscribed();  // may destroy this
}

void RedisSubscriber::heartbeat() {
    heartbeat_ = loop_.timer(loop_duration(settings_.heartbeat_interval), [this] { heartbeat(); });
    // Its confirmation counts as an outstanding reply: reply_timeout bounds it.
    if (connection_ && connection_->open())
        connection_->subscribe(settings_.channel, [this](const RedisReply& reply) { on_push(reply); });
}

// From RedisConnection::fail (outside hiredis); the connection is closed.
void RedisSubscriber::on_closed(const std::string& reason) {
    last_error_ = !setup_error_.empty() ? setup_error_ : redis_server_text(reason, settings_.address);
    heartbeat_.cancel();
    const bool was_subscribed = subscribed_;
    subscribed_ = false;
    if (backoff_.failures() == 0)
        log::warning("redis subscription " + settings_.region + " " + display_name_ + " " +
                     (was_subscribed ? "lost: " : "failed: ") + last_error_ + "; resubscribing");
    retry_later();
    if (!was_subscribed) return;
    ++counters_.lost;
    if (hooks_.on_lost) hooks_.on_lost(last_error_);  // last: may destroy this
}

void RedisSubscriber::retry_later() {
    retry_ = loop_.timer(loop_duration(backoff_.next()), [this] { connect(); });
}

}  // namespace regiond::daemon

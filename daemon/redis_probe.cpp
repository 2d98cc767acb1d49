#include "daemon/redis_probe.hpp"

#include <algorithm>

#include "daemon/log.hpp"
#include "daemon/redis/redis_endpoint.hpp"
#include "daemon/text.hpp"

namespace regiond::daemon {
RedisProbe::RedisProbe(EventLoop& loop, RedisProbeSettings settings, std::function<void()> on_change)
    : loop_(loop),
      settings_(std::move(settings)),
      on_change_(std::move(on_change)),
      hysteresis_(settings_.down_after, settings_.up_after) {
    display_name_ = redis_display_name(settings_.address);
    // A name is resolved once, here (see the header for why this is not on the loop).
    ResolvedRedis resolved = resolve_redis(settings_.address);
    target_ = std::move(resolved.target);
    resolve_error_ = std::move(resolved.error);
}

RedisProbe::~RedisProbe() = default;

void RedisProbe::start() {
    if (started_) return;
    started_ = true;
    loop_.defer([this] { check(); });
}

void RedisProbe::update(std::chrono::nanoseconds connect_timeout, std::chrono::nanoseconds check_interval,
                        unsigned down_after, unsigned up_after) {
    settings_.connect_timeout = connect_timeout;
    settings_.check_interval = check_interval;
    settings_.down_after = down_after;
    settings_.up_after = up_after;
    hysteresis_.set_thresholds(down_after, up_after);
}

std::chrono::nanoseconds RedisProbe::backoff() const {
    const auto interval = settings_.check_interval;
    const auto cap = std::max(interval, std::min<std::chrono::nanoseconds>(16 * interval, std::chrono::seconds(5)));
    const unsigned doublings = std::min(consecutive_failures_ == 0 ? 0u : consecutive_failures_ - 1, 16u);
    return std::min<std::chrono::nanoseconds>(interval * (1LL << doublings), cap);
}

void RedisProbe::check() {
    tick_ = loop_.timer(std::chrono::duration_cast<EventLoop::Clock::duration>(settings_.check_interval),
                        [this] { check(); });
    if (in_flight_) return;  // the previous PING is still out; its reply timeout ends it
    if (!resolve_error_.empty()) {
        finish(false, resolve_error_);
        return;
    }
    // An idle connection the server closed (its timeout): open a new one, no failure.
    if (connection_ && !connection_->open()) connection_.reset();
    if (!connection_) {
        // Within the backoff: one more failure with the same error, no new attempt.
        // (The first retry after a failure is never held back: backoff() is one
        // check interval then.)
        if (consecutive_failures_ > 1 && EventLoop::Clock::now() < retry_at_) {
            record(false);
            return;
        }
        open_connection();
    }
    in_flight_ = true;
    sent_at_ = EventLoop::Clock::now();
    connection_->command({"PING"}, [this](const RedisReply& reply) { on_pong(reply); });
}

void RedisProbe::open_connection() {
    RedisConnectionSettings cs;
    cs.connect_timeout = settings_.connect_timeout;
    cs.reply_timeout = settings_.connect_timeout;
    cs.max_buffered_bytes = 64 * 1024;  // a PING's answer is tiny: more is not a Redis we trust
    cs.max_array_elements = 16;
    RedisConnection::Hooks hooks;
    // The round trip is timed from the established connection, not from the connect.
    hooks.on_connected = [this] { sent_at_ = EventLoop::Clock::now(); };
    connection_ = std::make_unique<RedisConnection>(loop_, target_, cs, std::move(hooks));
    queue_redis_setup(*connection_, settings_.address, [this](const RedisReply& reply) { on_setup_reply(reply); });
}

// AUTH or SELECT: an error ends the check (and drops the connection); a lost
// connection is reported by the PING behind it.
void RedisProbe::on_setup_reply(const RedisReply& reply) {
    if (reply.is_error()) finish(false, "server answered: " + redis_server_text(reply.text(), settings_.address));
}

void RedisProbe::on_pong(const RedisReply& reply) {
    if (!reply.arrived()) {
        finish(false, std::string(reply.failure()));
        return;
    }
    if (reply.is_error()) {
        finish(false, "server answered: " + redis_server_text(reply.text(), settings_.address));
        return;
    }
    if (!reply.is_status("PONG")) {
        finish(false, "unexpected answer to PING");
        return;
    }
    const auto rtt = EventLoop::Clock::now() - sent_at_;
    rtt_us_ = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(rtt).count());
    finish(true, {});
}

void RedisProbe::finish(bool success, std::string error) {
    in_flight_ = false;
    if (success) {
        consecutive_failures_ = 0;
    } else {
        // Destroying the connection drops its remaining callbacks (this may run
        // inside one of them: RedisConnection allows that).
        connection_.reset();
        last_error_ = std::move(error);
        ++consecutive_failures_;
        retry_at_ = EventLoop::Clock::now() + std::chrono::duration_cast<EventLoop::Clock::duration>(backoff());
    }
    record(success);
}

void RedisProbe::record(bool success) {
    const bool changed = hysteresis_.record(success);
    if (success) last_error_.clear();
    if (changed) {
        if (hysteresis_.up())
            log::info("redis " + settings_.region + " " + display_name_ + " is up");
        else
            log::warning("redis " + settings_.region + " " + display_name_ + " is down: " + last_error_);
        if (on_change_) on_change_();
    }
}

}  // namespace regiond::daemon

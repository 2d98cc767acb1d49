#include "daemon/pg/probe.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "daemon/text.hpp"

namespace regiond::daemon::pg {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPrimaryProbeSql = "select pg_current_wal_lsn()";
constexpr const char* kReplicaProbeSql = "select pg_last_wal_replay_lsn(), pg_is_in_recovery()";


}  // namespace

Probe::Probe(EndpointContext& ctx, ProbeListener& listener)
    : ctx_(ctx),
      listener_(listener),
      conn_(ctx.loop, ctx.settings, *this),
      hysteresis_(ctx.options.down_after, ctx.options.up_after),
      scope_(ctx.loop) {}

Clock::duration Probe::period() const {
    if (tracker_ && ctx_.options.lag_poll_interval.count() > 0) {
        return std::min<Clock::duration>(ctx_.options.lag_poll_interval, ctx_.options.check_interval);
    }
    return ctx_.options.check_interval;
}

void Probe::start() {
    if (started_ || stopped_) return;
    started_ = true;
    next_check_ = Clock::now();
    tick();
}

void Probe::stop() {
    stopped_ = true;
    tick_timer_.cancel();
    deadline_.cancel();
    if (in_flight_) {
        conn_.abandon(*this);
        in_flight_ = false;
        waiting_for_connect_ = false;
    }
    scope_.defer([this] { resolve(false, "endpoint " + ctx_.options.display_name + " is shutting down"); });
}

void Probe::close() {
    conn_.close("", CloseCause::reset, nullptr, false);
}

void Probe::settings_changed() {
    hysteresis_.set_thresholds(ctx_.options.down_after, ctx_.options.up_after);
    conn_.set_connect_timeout(ctx_.options.connect_timeout);
    // A shorter interval takes effect at once, not after the old one.
    next_check_ = std::min(next_check_, Clock::now() + ctx_.options.check_interval);
}

void Probe::confirm(Confirmed done) {
    if (stopped_ || !started_) {
        scope_.defer([this, done = std::move(done)] {
            done(false, "endpoint " + ctx_.options.display_name + " is not probing");
        });
        return;
    }
    if (waiting_.empty()) confirm_since_ = Clock::now();
    waiting_.push_back(std::move(done));
    if (in_flight_) {
        is_check_ = true;  // its verdict answers the caller, so it counts
        return;
    }
    // Out of schedule, but never from inside the caller.
    scope_.defer([this] {
        if (stopped_ || in_flight_ || waiting_.empty()) return;
        tick();
    });
}

void Probe::set_fast(bool fast) {
    if (fast == fast_) return;
    fast_ = fast;
    if (fast_ && started_ && !stopped_ && !in_flight_) schedule_fast_poll();
    // Back to normal: the poll scheduled next runs, then tick() re-arms the period.
}

void Probe::schedule_fast_poll() {
    // Replaces the tick timer: tick() arms the normal period again when it runs.
    tick_timer_ = ctx_.loop.timer(std::max(Clock::now(), sent_at_ + kFastPollGap), [this] { tick(); });
}

void Probe::note_replay(std::uint64_t lsn, Clock::time_point now) {
    // A replica that went back (restarted from its disk, or replaced): the
    // old samples say nothing about it.
    if (!replay_samples_.empty() && lsn < replay_samples_.back().lsn) replay_samples_.clear();
    replay_samples_.push_back({now, lsn});
    // Keep one sample at or before the window's start as its anchor.
    while (replay_samples_.size() > 2 && replay_samples_[1].at <= now - kReplayRateWindow) replay_samples_.pop_front();
    const auto span = replay_samples_.back().at - replay_samples_.front().at;
    if (span < kReplayRateMinSpan) {
        ctx_.health.replay_rate = 0;
        return;
    }
    const double bytes = static_cast<double>(replay_samples_.back().lsn - replay_samples_.front().lsn);
    ctx_.health.replay_rate = bytes / std::chrono::duration<double>(span).count();
}

void Probe::resolve(bool answered, const std::string& why) {
    if (waiting_.empty()) return;
    std::vector<Confirmed> waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& done : waiting) done(answered, why);
}

void Probe::tick() {
    if (stopped_) return;
    tick_timer_ = ctx_.loop.timer(std::max<Clock::duration>(period(), 1ms), [this] { tick(); });
    const auto now = Clock::now();
    if (!ctx_.health.healthy && hysteresis_.known() && ctx_.health.ever_connected && !ctx_.health.last_error.empty())
        listener_.endpoint_down(ctx_.health.last_error);
    if (in_flight_) {
        // A probe unanswered for a whole check interval is a failed check, each
        // interval again: a stalled link (packets vanish, no RST) is then marked
        // down after down_after x check_interval instead of waiting for the
        // probe's own deadline (2 x connect_timeout) down_after times.
        const std::string why = "health probe of " + ctx_.options.display_name + " has not answered for " +
                                std::to_string(round_ms(now - sent_at_)) + " ms";
        // Whoever waits for this probe's verdict waits as long: a query sent a
        // check interval ago, or a connect (bounded by connect_timeout itself).
        if (!waiting_.empty() && !waiting_for_connect_ &&
            now - std::max(sent_at_, confirm_since_) >= ctx_.options.check_interval)
            resolve(false, why);
        if (now >= next_check_ && now - sent_at_ >= ctx_.options.check_interval) {
            next_check_ = now + ctx_.options.check_interval;
            note_failure(why);
        }
        return;
    }
    // Every tick polls the LSN; a tick at or after the next check time is also
    // a health check (counts for hysteresis), and so is one somebody waits for.
    is_check_ = now >= next_check_ || !waiting_.empty();
    if (is_check_) next_check_ = now + ctx_.options.check_interval;
    in_flight_ = true;
    sent_at_ = now;
    reconnected_ = false;
    arm_deadline();
    if (conn_.ready()) {
        send_probe();
    } else {
        waiting_for_connect_ = true;
        conn_.connect();  // no-op while already connecting
    }
}

void Probe::arm_deadline() {
    // A probe (with its connect) gets connect_timeout plus the query's share.
    const auto limit = ctx_.options.connect_timeout + std::max<Clock::duration>(ctx_.options.connect_timeout, 100ms);
    deadline_ = ctx_.loop.timer(limit, [this, limit] {
        if (!in_flight_) return;
        in_flight_ = false;
        waiting_for_connect_ = false;
        conn_.abandon(*this);
        conn_.close("", CloseCause::reset, nullptr, false);
        failed("health probe of " + ctx_.options.display_name + " timed out after " + std::to_string(round_ms(limit)) +
               " ms");
    });
}

void Probe::send_probe() {
    sent_at_ = Clock::now();
    result_.reset();
    query_failed_ = false;
    static const Step primary_steps[] = {Step::command(kPrimaryProbeSql, {}, 0), Step::sync()};
    static const Step replica_steps[] = {Step::command(kReplicaProbeSql, {}, 0), Step::sync()};
    if (ctx_.primary()) {
        conn_.send(*this, primary_steps);
    } else {
        conn_.send(*this, replica_steps);
    }
}

void Probe::failed(const std::string& why) {
    resolve(false, why);
    if (is_check_) {
        note_failure(why);
        return;
    }
    // A lag poll failed: count it at the next tick, which is made a check.
    next_check_ = Clock::now();
    ctx_.health.last_error = why;
    listener_.health_changed();
}

void Probe::note_failure(const std::string& why) {
    ctx_.health.last_error = why;
    const bool was_healthy = ctx_.health.healthy;
    hysteresis_.record(false);
    ctx_.health.healthy = hysteresis_.up();
    if (was_healthy && !ctx_.health.healthy) listener_.endpoint_down(why);
    listener_.health_changed();
}

void Probe::note_success() {
    // The first successful check ever marks the endpoint up at once, whatever
    // failed before it (a slow first connect is no verdict to protect).
    if (!ever_up_) hysteresis_ = Hysteresis(ctx_.options.down_after, ctx_.options.up_after);
    hysteresis_.record(true);
    ever_up_ = ever_up_ || hysteresis_.up();
    ctx_.health.healthy = hysteresis_.up();
    if (ctx_.health.healthy) ctx_.health.last_error.clear();
}

void Probe::on_result(std::size_t, PgResultPtr r) {
    const ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        result_ = std::move(r);
    } else if (st != PGRES_PIPELINE_ABORTED && !query_failed_) {
        query_failed_ = true;
        error_ = sql_error_of(*r);
    }
}

void Probe::on_finished() {
    deadline_.cancel();
    in_flight_ = false;
    const auto now = Clock::now();
    last_answer_ = now;  // the server answered (even if with an error)
    PgResultPtr r = std::move(result_);
    if (query_failed_ || !r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
        const std::string why = query_failed_
                                    ? "health probe of " + ctx_.options.display_name + " failed: " + error_.message
                                    : "health probe of " + ctx_.options.display_name + " returned no row";
        query_failed_ = false;
        failed(why);
        return;
    }
    Health& health = ctx_.health;
    const auto sample = std::chrono::duration_cast<std::chrono::microseconds>(now - sent_at_).count();
    const double us = static_cast<double>(std::max<std::int64_t>(sample, 1));
    rtt_us_ = rtt_us_ == 0 ? us : rtt_us_ + (us - rtt_us_) / 8;  // EWMA, like TCP's SRTT
    health.rtt_us = static_cast<std::uint32_t>(std::min(rtt_us_, 4e9));
    if (auto sysid = conn_.system_identifier(); sysid != 0) health.system_identifier = sysid;
    std::optional<std::uint64_t> lsn;
    if (!PQgetisnull(r.get(), 0, 0)) lsn = parse_lsn(PQgetvalue(r.get(), 0, 0));
    std::string warning;
    if (ctx_.primary()) {
        if (lsn) {
            health.replay_lsn = *lsn;
            if (tracker_) tracker_->record_primary(now, *lsn);
        }
    } else {
        const bool in_recovery =
            PQnfields(r.get()) > 1 && !PQgetisnull(r.get(), 0, 1) && std::string_view(PQgetvalue(r.get(), 0, 1)) == "t";
        if (!in_recovery) warning = ctx_.options.display_name + " is not in recovery (promoted?): it is no replica";
        if (lsn) {
            health.replay_lsn = *lsn;
            note_replay(*lsn, now);
        }
        if (tracker_ && tracker_->has_primary() && lsn) {
            const auto lag = tracker_->lag_of(*lsn, now);
            health.lag_bytes = lag.bytes;
            health.lag_ms = lag.ms;
        } else {
            health.lag_bytes = 0;
            health.lag_ms = 0;
        }
    }
    if (is_check_) note_success();
    if (!warning.empty()) health.last_error = warning;
    ++polls_;
    if (fast_ && !stopped_) schedule_fast_poll();
    resolve(true, "");
    // Fast polls republish no more often than normal polling would.
    if (!fast_ || is_check_ || now - last_notified_ >= period()) {
        last_notified_ = now;
        listener_.health_changed();
    }
    if (!ctx_.primary() && lsn) listener_.replay_lsn_polled(*lsn);
}

void Probe::on_connection_closed(const CloseInfo& info) {
    if (!in_flight_) return;
    if (!reconnected_) {
        // The probe's connection was open before this probe and died under it
        // (the same reset that took pool connections, say): that says nothing
        // about the server yet. Ask once more on a new connection (on_closed).
        reconnected_ = true;
        reconnect_ = true;
        return;
    }
    deadline_.cancel();
    in_flight_ = false;
    result_.reset();
    failed(info.why);
}

void Probe::on_connected(Connection&) {
    ctx_.health.ever_connected = true;
    reconnected_ = true;  // a probe on a new connection gets no second chance
    if (waiting_for_connect_) {
        waiting_for_connect_ = false;
        send_probe();
    }
}

void Probe::on_closed(Connection&, const CloseInfo& info, bool) {
    if (reconnect_) {
        reconnect_ = false;
        waiting_for_connect_ = true;
        result_.reset();
        query_failed_ = false;
        conn_.connect();
        return;
    }
    if (waiting_for_connect_) {
        deadline_.cancel();
        waiting_for_connect_ = false;
        in_flight_ = false;
        failed(info.why);
    }
}

}  // namespace regiond::daemon::pg

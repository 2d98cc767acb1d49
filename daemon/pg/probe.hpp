// An endpoint's health, from its own probe only (docs/design.md, "Health").
//
// A dedicated connection (not counted in pool_size) runs one query at a time:
// primary `select pg_current_wal_lsn()`, replica `select
// pg_last_wal_replay_lsn(), pg_is_in_recovery()`. It ticks every
// lag_poll_interval when a LagTracker is set (else every check_interval); a
// tick at or after the next check time is a check and counts for the
// hysteresis (daemon/hysteresis.hpp: down_after failures mark the endpoint
// down, up_after successes up again). A failed lag poll makes the next tick a
// check. A probe unanswered for a whole check_interval is a failed check, each
// interval again (a stalled link is marked down after down_after x
// check_interval); a probe still unanswered after 2 x connect_timeout is
// abandoned and its connection closed.
//
// Nothing else changes the health: a pool connection lost or refused calls
// confirm(), which makes the next probe a check at once and tells the caller
// whether the server answered it. Job timeouts and SQL errors never count.
//
// The LSN watch (set_fast): while fast, the next poll is sent as soon as the
// previous one answered (at least kFastPollGap after the previous one was
// sent) instead of at the next tick; the ticks still run (a poll unanswered
// for a check interval is still a failed check). Every answered poll of a
// replica reaches ProbeListener::replay_lsn_polled; health_changed runs after
// a check and otherwise at most once per period(): the fast polls alone never
// republish more often than normal polling does. Health::replay_rate is the
// replay LSN's progress over the last ~1 s of polls.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/hysteresis.hpp"
#include "daemon/pg/connection.hpp"
#include "daemon/pg/endpoint_context.hpp"
#include "daemon/pg/lag_tracker.hpp"

namespace regiond::daemon::pg {

class ProbeListener {
public:
    virtual ~ProbeListener() = default;
    /// The endpoint was marked down, and again at every tick while it stays down.
    virtual void endpoint_down(const std::string& why) = 0;
    /// After every probe and state change (the core republishes the state
    /// segment); while the LSN watch is fast, after a check or at most once per
    /// period.
    virtual void health_changed() = 0;
    /// After every answered LSN poll of a replica, with its replay LSN.
    virtual void replay_lsn_polled(std::uint64_t lsn) = 0;
};

/// Fast LSN watch: the least time between the sends of two polls.
inline constexpr std::chrono::milliseconds kFastPollGap{1};
/// Health::replay_rate: the window of polls it is measured over, and the
/// least span of samples that gives a rate (below it: 0, unknown).
inline constexpr std::chrono::milliseconds kReplayRateWindow{1000};
inline constexpr std::chrono::milliseconds kReplayRateMinSpan{50};

class Probe final : Connection::Listener, Work {
public:
    /// answered: the server answered a probe sent after the request (or the one
    /// in flight); false: the check failed. why: the failure, if any.
    using Confirmed = std::function<void(bool answered, const std::string& why)>;

    Probe(EndpointContext& ctx, ProbeListener& listener);
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;

    void start();
    /// Stops ticking (drain); pending confirmations are answered with false.
    void stop();
    /// A check now (or the probe in flight, made a check): `done` runs with its
    /// verdict. Never calls `done` from inside this call.
    void confirm(Confirmed done);
    void set_lag_tracker(std::shared_ptr<LagTracker> tracker) { tracker_ = std::move(tracker); }
    /// The LSN watch: fast polls back to back, or back to the normal period.
    void set_fast(bool fast);
    bool fast() const { return fast_; }
    /// LSN polls answered so far (tests, measurements).
    std::uint64_t polls() const { return polls_; }
    /// SIGHUP: thresholds and intervals from ctx.options, from the next tick.
    void settings_changed();
    void close();

    /// When the server last answered a probe (epoch: never).
    Clock::time_point last_answer() const { return last_answer_; }
    double rtt_us() const { return rtt_us_; }
    /// Time between ticks.
    Clock::duration period() const;

private:
    void tick();
    void arm_deadline();
    void send_probe();
    void failed(const std::string& why);
    void note_failure(const std::string& why);
    void note_success();
    void resolve(bool answered, const std::string& why);
    void answered();
    void schedule_fast_poll();
    void note_replay(std::uint64_t lsn, Clock::time_point now);

    // Connection::Listener
    void on_connected(Connection&) override;
    void on_closed(Connection&, const CloseInfo& info, bool was_ready) override;
    void on_work_done(Connection&) override {}
    // Work
    void on_result(std::size_t, PgResultPtr r) override;
    void on_finished() override;
    void on_connection_closed(const CloseInfo& info) override;

    EndpointContext& ctx_;
    ProbeListener& listener_;
    Connection conn_;
    Hysteresis hysteresis_;
    std::shared_ptr<LagTracker> tracker_;
    std::vector<Confirmed> waiting_;  ///< confirm() callers, answered by the next verdict
    Clock::time_point confirm_since_{};
    TimerHandle tick_timer_;
    TimerHandle deadline_;
    bool started_ = false;
    bool fast_ = false;
    std::uint64_t polls_ = 0;
    Clock::time_point last_notified_{};
    struct ReplaySample {
        Clock::time_point at;
        std::uint64_t lsn;
    };
    std::deque<ReplaySample> replay_samples_;  ///< the last kReplayRateWindow (+ one older)
    bool ever_up_ = false;
    bool stopped_ = false;
    bool in_flight_ = false;
    bool waiting_for_connect_ = false;
    bool is_check_ = false;
    /// This probe already had its second chance on a new connection (or was
    /// sent on a fresh one); reconnect_: on_closed opens that new connection.
    bool reconnected_ = false;
    bool reconnect_ = false;
    PgResultPtr result_;
    SqlError error_;
    bool query_failed_ = false;
    Clock::time_point sent_at_{};
    Clock::time_point last_answer_{};
    Clock::time_point next_check_{};
    double rtt_us_ = 0;
    LoopScope scope_;
};

}  // namespace regiond::daemon::pg

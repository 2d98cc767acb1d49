// The durable path of cache invalidation: tails regiond.invalidations on the
// local region's PostgreSQL endpoint (its replica, or the primary in the
// primary's region) and hands every row's keys to the cache, with an LSN that
// bounds the row's commit from above. docs/cache-durable.md has the design.
//
// Every poll_interval one poll runs on the tailer's own connection (a
// pg::Connection: non-blocking libpq in pipeline mode on the daemon's loop),
// one round trip, one implicit transaction:
//
//   select <snapshot xmin>, <rows with xid >= position and id > after, by id, limit page_rows>
//   select <replay LSN (insert LSN when not in recovery)>, <last replayed commit's time>
//   Sync
//
// The rows statement reads the table and pg_current_snapshot() with one
// snapshot; which rows to deliver is the OutboxCursor's (daemon/pg/
// outbox_cursor.hpp): transactions that commit out of id order are never
// skipped, and no row is delivered twice. The LSN is read after the rows, so
// every delivered row's commit is at or below it: a cache value read at a
// floor >= that LSN saw the write. A full page is followed at once by the next.
//
// Gaps (Hooks::on_gap): when the tailer cannot vouch that every row committed
// since its last good poll has been delivered, or will be within replica lag
// plus one poll interval: at start (rows before the first poll are not
// delivered); no good poll for gap_after_polls intervals (endpoint down, query
// failing or stalled); the table missing or not readable (the position is
// dropped: a new table's ids start over); too many rows in the window
// (OutboxCursor overflow); another cluster behind the conninfo (system
// identifier changed); a replica whose replay crossed half the retention
// between two polls (rows may have been deleted unseen). One on_gap per cause
// per episode (a start followed by a missing table gives two, a failing poll
// repeated gives one); Hooks::on_caught_up when a poll cycle completes after
// it: from then
// on every row that commits is delivered again. Rows committed during the gap
// may never be delivered: whoever trusts the cache must treat everything read
// before the catch-up (last_lsn() inside on_caught_up) as unvouched.
//
// Retention: with cleanup_interval > 0 (the tailers of the daemons in the
// primary's region), every cleanup_interval, when the endpoint is not in
// recovery: `delete ... where at < now() - retention`, cleanup_batch rows per
// statement (again at once while a batch is full), one cleaner at a time
// through a transaction-level advisory lock.
//
// Loop thread only. The hooks run on the loop, from inside the connection's
// callbacks: they may call anything but must not destroy the tailer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/event_loop.hpp"
#include "daemon/pg/connection.hpp"
#include "daemon/pg/endpoint.hpp"
#include "daemon/pg/outbox_cursor.hpp"

namespace regiond::daemon {

class InvalidationTailer final : pg::Connection::Listener {
public:
    struct Hooks {
        /// One row's keys (in its order), and an LSN at or past its commit.
        std::function<void(std::vector<std::string> keys, std::uint64_t lsn)> on_invalidation;
        /// The tailer cannot vouch for the rows since its last good poll; `reason`
        /// says why and what to do (safe to show: never the conninfo).
        std::function<void(std::string reason)> on_gap;
        /// The first complete poll after a gap (or the start).
        std::function<void()> on_caught_up;
    };

    struct Options {
        std::string conninfo;                          ///< libpq conninfo (may hold secrets: never logged)
        std::string display_name;                      ///< "host:port", safe to show
        std::chrono::milliseconds poll_interval{100};  ///< lag.poll_interval
        /// No good poll for this many poll intervals: a gap.
        unsigned gap_after_polls = 3;
        std::chrono::milliseconds connect_timeout{2000};
        /// A poll unanswered this long closes the connection (a stalled link).
        std::chrono::milliseconds poll_timeout{5000};
        std::size_t page_rows = 1000;
        std::size_t max_tracked = 100000;
        /// How old rows get before the cleanup deletes them (scripts/schema.sql).
        std::chrono::seconds retention{3600};
        /// 0: no cleanup (replicas' regions); the primary's region: 5 min.
        std::chrono::milliseconds cleanup_interval{0};
        std::size_t cleanup_batch = 10000;
    };

    /// Options for tailing `endpoint` (its conninfo, name, connect timeout, lag
    /// poll interval); cleanup every 5 minutes when `cleanup`.
    static Options options_for(const pg::EndpointOptions& endpoint, bool cleanup);

    InvalidationTailer(EventLoop& loop, Options options, Hooks hooks);
    ~InvalidationTailer() override;
    InvalidationTailer(const InvalidationTailer&) = delete;
    InvalidationTailer& operator=(const InvalidationTailer&) = delete;

    /// Connects and starts polling; on_gap("... starting ...") follows from the
    /// loop, on_caught_up after the first poll.
    void start();
    /// A poll now (once the one in flight, if any, has answered), besides the
    /// regular ones: e.g. when the fast path lost its subscription.
    void poll_now();

    struct Stats {
        std::uint64_t polls = 0;         ///< statements answered (pages)
        std::uint64_t failed_polls = 0;  ///< failed, unanswered or lost
        std::uint64_t rows = 0;          ///< rows delivered
        std::uint64_t gaps = 0;
        std::uint64_t cleanups = 0;      ///< cleanup statements that ran
        std::uint64_t rows_cleaned = 0;  ///< rows they deleted
    };
    const Stats& stats() const { return stats_; }
    /// Between on_caught_up and the next on_gap.
    bool vouching() const { return vouching_; }
    /// The LSN of the last good poll (0 before one).
    std::uint64_t last_lsn() const { return last_lsn_; }
    /// Why the last poll failed ("" after a good one).
    const std::string& last_error() const { return last_error_; }
    /// No poll in flight and none asked for (the last cycle has ended).
    bool idle() const { return !poll_in_flight_ && !poll_requested_; }
    /// Rows of the window remembered (bounded by Options::max_tracked).
    std::size_t tracked() const { return cursor_.tracked(); }

private:
    class PollWork;
    class CleanupWork;

    // pg::Connection::Listener
    void on_connected(pg::Connection& c) override;
    void on_closed(pg::Connection& c, const pg::CloseInfo& info, bool was_ready) override;
    void on_work_done(pg::Connection& c) override;

    void tick();
    void send_poll();
    void poll_answered(PollWork& work);
    void poll_failed(const std::string& why, const std::string& sqlstate);
    void maybe_cleanup();
    void cleanup_answered(CleanupWork& work);
    /// Why the tailer cannot vouch; each reported once per episode.
    enum class Gap : std::uint8_t { start, silent, table, overflow, cluster, jump };
    void gap(Gap cause, const std::string& reason);
    void reconnect_later();

    EventLoop& loop_;
    Options options_;
    Hooks hooks_;
    pg::OutboxCursor cursor_;
    std::unique_ptr<PollWork> poll_;
    std::unique_ptr<CleanupWork> cleanup_;
    pg::Connection conn_;  ///< after the works: they outlive its callbacks
    Stats stats_;
    bool started_ = false;
    bool vouching_ = true;          ///< start() reports the first gap
    std::uint32_t gap_causes_ = 0;  ///< bits of Gap reported in the current episode
    bool poll_in_flight_ = false;
    bool poll_requested_ = false;
    bool cleanup_in_flight_ = false;
    bool in_recovery_ = true;  ///< from the last good poll: no cleanup until one says otherwise
    std::chrono::steady_clock::time_point poll_sent_{};
    std::chrono::steady_clock::time_point last_good_{};  ///< when the last good poll was sent
    std::chrono::steady_clock::time_point next_cleanup_{};
    std::optional<std::int64_t> last_replay_us_;
    std::uint64_t last_lsn_ = 0;
    std::uint64_t system_identifier_ = 0;
    std::string last_error_;
    std::chrono::milliseconds backoff_{0};
    TimerHandle tick_timer_;
    TimerHandle reconnect_timer_;
    LoopScope scope_;  ///< last: deferred calls die with the tailer
};

}  // namespace regiond::daemon

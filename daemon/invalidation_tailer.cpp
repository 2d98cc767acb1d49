#include "daemon/invalidation_tailer.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <span>
#include <string_view>

namespace regiond::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kRowsTag = 1;
constexpr std::size_t kPositionTag = 2;
constexpr std::size_t kCleanupTag = 3;

constexpr auto kBackoffMin = 100ms;
constexpr auto kBackoffMax = 5s;
constexpr auto kDefaultCleanupInterval = 5min;

// One statement, so one snapshot: the rows and the xmin of the snapshot they
// were read with (pg_current_snapshot() is the statement's active snapshot).
// At least one result row: the snapshot's, with NULLs when no invalidation
// row matched. Then one result row per key (ordinality keeps the key order);
// an invalidation row with no keys gives one row with a NULL key.
// $1 NULL: the snapshot's own xmin (establishing the position).
constexpr const char* kRowsSql =
    "select s.xmin::text, i.id, i.xid::text, k.key"
    " from (select pg_snapshot_xmin(pg_current_snapshot()) as xmin) s"
    " left join lateral (select id, xid, keys from regiond.invalidations"
    " where xid >= coalesce($1::xid8, s.xmin) and id > $2::bigint order by id limit $3::bigint) i on true"
    " left join lateral unnest(i.keys) with ordinality as k(key, n) on true"
    " order by i.id, k.n";

// After the rows, in their implicit transaction: an LSN at or past every commit
// the rows' snapshot held. A replica's replay LSN; a server not in recovery
// (the primary, or a replica promoted under us: its replay LSN stops moving)
// its insert LSN. CASE evaluates only the branch taken (both are volatile:
// never folded), so pg_current_wal_insert_lsn() never runs in recovery, where
// it fails. The time of the last replayed commit detects replay jumps.
constexpr const char* kPositionSql =
    "select case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_insert_lsn() end::text,"
    " pg_is_in_recovery(),"
    " case when pg_is_in_recovery() then (extract(epoch from pg_last_xact_replay_timestamp()) * 1000000)::bigint end";

// Retention: a bounded batch of the oldest rows past it, by one cleaner at a
// time (the advisory lock is the transaction's: released at its end; a
// cleaner that does not get it deletes nothing). The CTE holds a volatile
// function, so it is evaluated once and never inlined.
constexpr const char* kCleanupSql =
    "with cleaner as (select pg_try_advisory_xact_lock(hashtext('regiond.invalidations cleanup')) as got)"
    " delete from regiond.invalidations where id in (select id from regiond.invalidations"
    " where at < now() - $1::interval and (select got from cleaner) order by at limit $2::bigint)";

std::optional<std::uint64_t> parse_u64(const char* text) {
    if (text == nullptr) return std::nullopt;
    const std::string_view s(text);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::optional<std::int64_t> parse_i64(const char* text) {
    if (text == nullptr) return std::nullopt;
    const std::string_view s(text);
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

const char* value_or_null(const PGresult& r, int row, int col) {
    return PQgetisnull(&r, row, col) ? nullptr : PQgetvalue(&r, row, col);
}

std::int64_t ms_of(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

// Named, not anonymous: it is a member's type of InvalidationTailer's works
// (-Wsubobject-linkage in a unity build, where this file is included).
namespace tailer_detail {
struct Failure {
    std::string sqlstate;
    std::string message;
};
}  // namespace tailer_detail
using tailer_detail::Failure;

namespace {

Failure failure_of(const PGresult& r) {
    Failure f;
    if (const char* s = PQresultErrorField(&r, PG_DIAG_SQLSTATE)) f.sqlstate = s;
    const char* primary = PQresultErrorField(&r, PG_DIAG_MESSAGE_PRIMARY);
    f.message = primary != nullptr ? primary : pg::clean_libpq_message(PQresultErrorMessage(&r));
    if (f.message.empty()) f.message = std::string("query failed: ") + PQresStatus(PQresultStatus(&r));
    return f;
}

}  // namespace

// ---- the works sent on the connection ----

/// One page: the rows statement and the position statement, one sync.
class InvalidationTailer::PollWork final : public pg::Work {
public:
    explicit PollWork(InvalidationTailer& t) : tailer_(t) {}

    std::span<const pg::Step> prepare(const pg::OutboxCursor::Query& q) {
        rows.reset();
        position.reset();
        failure.reset();
        low_ = q.low ? std::to_string(*q.low) : std::string();
        after_ = std::to_string(q.after_id);
        limit_ = std::to_string(q.limit);
        values_ = {q.low ? low_.c_str() : nullptr, after_.c_str(), limit_.c_str()};
        steps_[0] = pg::Step::command(kRowsSql, values_, kRowsTag);
        steps_[1] = pg::Step::command(kPositionSql, {}, kPositionTag);
        steps_[2] = pg::Step::sync();
        return steps_;
    }

    void on_result(std::size_t tag, pg::PgResultPtr r) override {
        const ExecStatusType st = PQresultStatus(r.get());
        if (st == PGRES_TUPLES_OK) {
            (tag == kRowsTag ? rows : position) = std::move(r);
        } else if (st != PGRES_PIPELINE_ABORTED && !failure) {
            failure = failure_of(*r);  // the first error is the one (the rest is skipped)
        }
    }
    void on_finished() override { tailer_.poll_answered(*this); }
    void on_connection_closed(const pg::CloseInfo& info) override { tailer_.poll_failed(info.why, ""); }

    pg::PgResultPtr rows;
    pg::PgResultPtr position;
    std::optional<Failure> failure;

private:
    InvalidationTailer& tailer_;
    std::string low_, after_, limit_;
    std::array<const char*, 3> values_{};
    std::array<pg::Step, 3> steps_{};
};

class InvalidationTailer::CleanupWork final : public pg::Work {
public:
    explicit CleanupWork(InvalidationTailer& t) : tailer_(t) {}

    std::span<const pg::Step> prepare(std::chrono::seconds retention, std::size_t batch) {
        deleted = 0;
        failure.reset();
        retention_ = std::to_string(retention.count()) + " seconds";
        batch_ = std::to_string(batch);
        values_ = {retention_.c_str(), batch_.c_str()};
        steps_[0] = pg::Step::command(kCleanupSql, values_, kCleanupTag);
        steps_[1] = pg::Step::sync();
        return steps_;
    }

    void on_result(std::size_t, pg::PgResultPtr r) override {
        if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
            deleted = parse_u64(PQcmdTuples(r.get())).value_or(0);
        } else if (PQresultStatus(r.get()) != PGRES_PIPELINE_ABORTED && !failure) {
            failure = failure_of(*r);
        }
    }
    void on_finished() override { tailer_.cleanup_answered(*this); }
    void on_connection_closed(const pg::CloseInfo& info) override {
        failure = Failure{"", info.why};
        tailer_.cleanup_answered(*this);
    }

    std::uint64_t deleted = 0;
    std::optional<Failure> failure;

private:
    InvalidationTailer& tailer_;
    std::string retention_, batch_;
    std::array<const char*, 2> values_{};
    std::array<pg::Step, 2> steps_{};
};

// ---- the tailer ----

namespace {

pg::ConnectionSettings connection_settings(const InvalidationTailer::Options& o) {
    pg::ConnectionSettings s;
    s.conninfo = o.conninfo;
    s.display_name = o.display_name;
    s.connect_timeout = o.connect_timeout;
    s.statement_cache_capacity = 8;
    // As the endpoints' connections: the server notices within a second that
    // a connection the tailer closed (a stalled poll) is gone.
    s.startup_settings = {{"client_connection_check_interval", "1s"}};
    return s;
}

}  // namespace

InvalidationTailer::Options InvalidationTailer::options_for(const pg::EndpointOptions& endpoint, bool cleanup) {
    Options o;
    o.conninfo = endpoint.conninfo;
    o.display_name = endpoint.display_name.empty() ? endpoint.region : endpoint.display_name;
    o.connect_timeout = endpoint.connect_timeout;
    o.poll_interval = endpoint.lag_poll_interval;
    if (cleanup) o.cleanup_interval = kDefaultCleanupInterval;
    return o;
}

InvalidationTailer::InvalidationTailer(EventLoop& loop, Options options, Hooks hooks)
    : loop_(loop),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      cursor_(pg::OutboxCursor::Limits{options_.page_rows, options_.max_tracked}),
      poll_(std::make_unique<PollWork>(*this)),
      cleanup_(std::make_unique<CleanupWork>(*this)),
      conn_(loop, connection_settings(options_), *this),
      scope_(loop) {
    if (options_.poll_interval <= Clock::duration::zero()) options_.poll_interval = 100ms;
    if (options_.gap_after_polls == 0) options_.gap_after_polls = 1;
}

InvalidationTailer::~InvalidationTailer() = default;

void InvalidationTailer::start() {
    if (started_) return;
    started_ = true;
    const auto now = Clock::now();
    last_good_ = now;
    next_cleanup_ = now;
    // The start is a gap: nothing committed before the first poll is
    // delivered. Recorded now (so no poll can answer first), told from the
    // loop (never from inside start()).
    vouching_ = false;
    gap_causes_ = 1u << static_cast<unsigned>(Gap::start);
    ++stats_.gaps;
    scope_.defer([this] {
        if (hooks_.on_gap)
            hooks_.on_gap("the invalidation tailer of " + options_.display_name +
                          " is starting: rows committed before its first poll are not delivered");
    });
    conn_.connect();
    tick_timer_ = loop_.timer(options_.poll_interval, [this] { tick(); });
}

void InvalidationTailer::poll_now() {
    poll_requested_ = true;
    send_poll();
}

void InvalidationTailer::gap(Gap cause, const std::string& reason) {
    const std::uint32_t bit = 1u << static_cast<unsigned>(cause);
    if (vouching_) {
        vouching_ = false;
        gap_causes_ = 0;
        ++stats_.gaps;
    }
    if ((gap_causes_ & bit) != 0) return;  // said already in this episode
    gap_causes_ |= bit;
    if (hooks_.on_gap) hooks_.on_gap(reason);
}

void InvalidationTailer::tick() {
    tick_timer_ = loop_.timer(options_.poll_interval, [this] { tick(); });
    const auto now = Clock::now();
    if (poll_in_flight_ && now - poll_sent_ >= options_.poll_timeout) {
        // A stalled link (or server): nothing else would ever end the poll.
        // Its Work is told (on_connection_closed) and the connection reopens.
        conn_.close("connection to " + options_.display_name + " closed: a poll of regiond.invalidations was " +
                        "unanswered for " + std::to_string(ms_of(now - poll_sent_)) + " ms",
                    pg::CloseCause::reset);
    }
    // Before the first good poll the start's gap says it all already.
    const auto silent = now - last_good_;
    if (stats_.polls > 0 && silent >= options_.gap_after_polls * options_.poll_interval) {
        gap(Gap::silent, "no good poll of regiond.invalidations on " + options_.display_name + " for " +
                             std::to_string(ms_of(silent)) + " ms" +
                             (last_error_.empty() ? std::string() : " (" + last_error_ + ")"));
    }
    send_poll();
    maybe_cleanup();
}

void InvalidationTailer::send_poll() {
    if (poll_in_flight_ || !conn_.ready()) return;
    poll_in_flight_ = true;
    poll_requested_ = false;
    poll_sent_ = Clock::now();
    conn_.send(*poll_, poll_->prepare(cursor_.next_query()));
}

void InvalidationTailer::poll_answered(PollWork& work) {
    poll_in_flight_ = false;
    // Taken out of the Work first: a hook may start the next poll (poll_now),
    // which reuses it.
    pg::PgResultPtr rows = std::move(work.rows);
    pg::PgResultPtr position = std::move(work.position);
    if (work.failure) {
        const Failure f = *work.failure;
        poll_failed(f.message, f.sqlstate);
        return;
    }
    if (!rows || !position || PQntuples(rows.get()) < 1 || PQnfields(rows.get()) != 4 ||
        PQntuples(position.get()) != 1 || PQnfields(position.get()) != 3) {
        poll_failed("unexpected answer to the poll of regiond.invalidations", "");
        return;
    }
    const auto xmin = parse_u64(value_or_null(*rows, 0, 0));
    const char* lsn_text = value_or_null(*position, 0, 0);
    const auto lsn = lsn_text != nullptr ? pg::parse_lsn(lsn_text) : std::nullopt;
    if (!xmin || !lsn) {
        poll_failed(
            !xmin ? "the poll returned no snapshot xmin" : "the replay LSN of " + options_.display_name + " is unknown",
            "");
        return;
    }
    // The rows, one per id (one result row per key).
    std::vector<pg::OutboxRow> page;
    for (int r = 0; r < PQntuples(rows.get()); ++r) {
        const char* id_text = value_or_null(*rows, r, 1);
        if (id_text == nullptr) continue;  // the snapshot's row: no invalidation row matched
        const auto id = parse_u64(id_text);
        const auto xid = parse_u64(value_or_null(*rows, r, 2));
        if (!id || !xid) {
            poll_failed("unexpected row in regiond.invalidations (id or xid unreadable)", "");
            return;
        }
        if (page.empty() || page.back().id != *id) page.push_back(pg::OutboxRow{*id, *xid, {}});
        if (const char* key = value_or_null(*rows, r, 3)) {
            page.back().keys.emplace_back(key, static_cast<std::size_t>(PQgetlength(rows.get(), r, 3)));
        }
    }

    // Another cluster behind the conninfo (a rebuilt primary, a replica of
    // another one): its xids and ids say nothing about the old position.
    const std::uint64_t sysid = conn_.system_identifier();
    if (sysid != 0 && system_identifier_ != 0 && sysid != system_identifier_) {
        system_identifier_ = sysid;
        cursor_.reset();
        last_replay_us_.reset();
        gap(Gap::cluster,
            options_.display_name + " is another database cluster than before (system identifier changed)");
        poll_requested_ = true;
        send_poll();
        return;
    }
    if (sysid != 0) system_identifier_ = sysid;

    ++stats_.polls;
    last_good_ = poll_sent_;
    last_lsn_ = *lsn;
    last_error_.clear();
    in_recovery_ = std::strcmp(PQgetvalue(position.get(), 0, 1), "t") == 0;
    const auto replay_us = parse_i64(value_or_null(*position, 0, 2));
    if (in_recovery_ && pg::replay_jumped_past_retention(
                            last_replay_us_, replay_us,
                            std::chrono::duration_cast<std::chrono::microseconds>(options_.retention).count())) {
        gap(Gap::jump, "replay on " + options_.display_name + " jumped by " +
                           std::to_string((*replay_us - *last_replay_us_) / 1000000) +
                           " s of commits between two polls: rows past the retention may have been deleted unseen");
    }
    if (replay_us) last_replay_us_ = replay_us;

    std::vector<std::size_t> deliver;
    const auto step = cursor_.page(*xmin, page, deliver);
    for (const std::size_t i : deliver) {
        ++stats_.rows;
        if (hooks_.on_invalidation) hooks_.on_invalidation(std::move(page[i].keys), *lsn);
    }
    switch (step) {
        case pg::OutboxCursor::Step::next_page: poll_requested_ = true; break;
        case pg::OutboxCursor::Step::caught_up:
            if (!vouching_) {
                vouching_ = true;
                if (hooks_.on_caught_up) hooks_.on_caught_up();
            }
            break;
        case pg::OutboxCursor::Step::overflow:
            gap(Gap::overflow,
                "more than " + std::to_string(cursor_.limits().max_tracked) +
                    " invalidation rows committed while an older transaction on " + options_.display_name +
                    " is still open: the tailer cannot track them; it starts again once that transaction has ended");
            break;
        case pg::OutboxCursor::Step::waiting: break;
    }
    if (poll_requested_) send_poll();
    maybe_cleanup();
}

void InvalidationTailer::poll_failed(const std::string& why, const std::string& sqlstate) {
    poll_in_flight_ = false;
    ++stats_.failed_polls;
    last_error_ = why;
    if (sqlstate == "42P01" || sqlstate == "3F000") {
        // The table is missing. A table created later starts its ids over,
        // so nothing remembered of the old one may be used.
        cursor_.reset();
        gap(Gap::table, "regiond.invalidations does not exist on " + options_.display_name + " (" + why +
                            "): create it on the primary with scripts/schema.sql (psql -d DATABASE -v app_role=ROLE -f "
                            "scripts/schema.sql); until then no invalidation is durable");
    } else if (sqlstate == "42501") {
        gap(Gap::table, "the application role may not read regiond.invalidations on " + options_.display_name + " (" +
                            why + "): scripts/schema.sql grants it");
    } else if (sqlstate == "42703" || sqlstate == "42883" || sqlstate == "42804") {
        gap(Gap::table, "regiond.invalidations on " + options_.display_name + " is not what regiond expects (" + why +
                            "): apply scripts/schema.sql (PostgreSQL 13 or later)");
    }
    // Anything else (the connection lost, a transient error) is a gap only
    // once no poll has succeeded for gap_after_polls intervals (tick()).
}

void InvalidationTailer::maybe_cleanup() {
    if (options_.cleanup_interval <= Clock::duration::zero() || in_recovery_ || cleanup_in_flight_ || !conn_.ready())
        return;
    if (Clock::now() < next_cleanup_) return;
    cleanup_in_flight_ = true;
    conn_.send(*cleanup_, cleanup_->prepare(options_.retention, options_.cleanup_batch));
}

void InvalidationTailer::cleanup_answered(CleanupWork& work) {
    cleanup_in_flight_ = false;
    const auto now = Clock::now();
    next_cleanup_ = now + options_.cleanup_interval;
    if (work.failure) return;  // tried again at the next interval
    ++stats_.cleanups;
    stats_.rows_cleaned += work.deleted;
    // A full batch: more are past the retention; the next tick goes on.
    if (work.deleted >= options_.cleanup_batch) next_cleanup_ = now;
}

void InvalidationTailer::on_connected(pg::Connection&) {
    backoff_ = std::chrono::milliseconds{0};
    send_poll();
}

void InvalidationTailer::on_closed(pg::Connection&, const pg::CloseInfo&, bool was_ready) {
    // The Works in flight were told first (poll_failed, cleanup_answered).
    poll_in_flight_ = false;
    cleanup_in_flight_ = false;
    if (was_ready) {
        backoff_ = std::chrono::milliseconds{0};  // lost while open: at once
    } else {
        backoff_ = std::clamp<std::chrono::milliseconds>(
            backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffMin),
            std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffMax));
    }
    reconnect_later();
}

void InvalidationTailer::reconnect_later() {
    // Never from inside the connection's own callback.
    reconnect_timer_ = loop_.timer(backoff_, [this] { conn_.connect(); });
}

void InvalidationTailer::on_work_done(pg::Connection&) {}

}  // namespace regiond::daemon

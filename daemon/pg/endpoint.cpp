// Endpoint: a pool of pipelined libpq connections to one server, a bounded FIFO
// queue of jobs, deadlines, and a health probe with hysteresis. See
// daemon/pg/README.md for the design (pipelining rules, cancellation by closing,
// prepared-statement cache) and endpoint.hpp for the contract.
#include "daemon/pg/endpoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "daemon/pg/connection.hpp"
#include "daemon/pg/outcome.hpp"
#include "daemon/pg/statements.hpp"

namespace regiond::daemon::pg {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// Reads pipelined on one connection at most (writes are never pipelined).
constexpr std::size_t kMaxPipelineDepth = 8;
/// Reads that arrive in one loop pass share a batch on one connection up to
/// this many before another idle connection is used (see pick()).
constexpr unsigned kBatchTarget = 4;
/// A job submitted without a deadline gets the client API's default timeout.
constexpr auto kDefaultTimeout = 30s;
/// Reconnect backoff after failed connects.
constexpr auto kBackoffMin = 100ms;
constexpr auto kBackoffMax = 5s;
/// A read whose connection dies under it is sent again (reads are idempotent).
constexpr unsigned kReadAttempts = 2;
/// Prepared statements kept per connection.
constexpr std::size_t kStatementCacheCapacity = 256;
constexpr Oid kTextOid = 25;
constexpr std::size_t kMaxParams = 65535;  // the protocol's limit (Bind has a 16-bit count)
constexpr std::size_t kLsnTag = static_cast<std::size_t>(-1);
constexpr const char* kWriteLsnSql = "select pg_current_wal_insert_lsn()";
constexpr const char* kPrimaryProbeSql = "select pg_current_wal_lsn()";
constexpr const char* kReplicaProbeSql = "select pg_last_wal_replay_lsn(), pg_is_in_recovery()";

std::int64_t round_ms(Clock::duration d) {
    const double ms = std::chrono::duration<double, std::milli>(d).count();
    return ms <= 0 ? 0 : static_cast<std::int64_t>(std::llround(ms));
}

class EndpointImpl;
struct Slot;

/// One submitted job, from submit() to its completion.
struct JobState final : Work {
    EndpointImpl& ep;
    std::uint64_t id;
    Job job;
    Completion done;
    std::int64_t total_ms = 0;
    EventLoop::TimerId timer = 0;
    /// expired: taken off the queue by dispatch() after its deadline passed; its
    /// timer (due now) answers it.
    enum class Where : std::uint8_t { queued, sent, expired } where = Where::queued;
    Slot* slot = nullptr;
    unsigned attempts = 0;
    Clock::time_point sent_at{};  ///< the latest send

    // What is sent: for a write, its statements (empty for a read).
    std::vector<Statement> statements;
    std::vector<const char*> values;
    std::vector<std::vector<Oid>> types;  ///< per statement (empty: all inferred)
    std::vector<Step> steps;

    // What came back (reset before each attempt).
    bool failed = false;
    /// A batched read skipped (PGRES_PIPELINE_ABORTED) because another read of
    /// its batch failed: it is sent again, this attempt does not count.
    bool aborted_by_batch = false;
    SqlError error;
    std::size_t error_tag = 0;
    PgResultPtr rows;
    std::int64_t affected = 0;
    std::optional<std::uint64_t> lsn;
    std::string lsn_error;

    JobState(EndpointImpl& e, std::uint64_t i, Job j, Completion d)
        : ep(e), id(i), job(std::move(j)), done(std::move(d)) {}

    bool is_write() const { return job.kind == Job::Kind::write; }
    void reset_results() {
        failed = false;
        aborted_by_batch = false;
        error = {};
        error_tag = 0;
        rows.reset();
        affected = 0;
        lsn.reset();
        lsn_error.clear();
    }

    void on_result(std::size_t tag, PgResultPtr result) override;
    void on_finished() override;
    void on_connection_closed(const std::string& why) override;
};

/// A pool connection with what the endpoint knows about it.
struct Slot final : Connection::Listener {
    EndpointImpl& ep;
    Connection conn;
    std::vector<JobState*> jobs;   ///< in flight on it, in send order
    bool has_write = false;        ///< a write is in flight: nothing goes behind it
    unsigned batched_in_pass = 0;  ///< reads added to its open batch in this dispatch pass
    bool closing_on_purpose = false;
    Clock::duration backoff{0};
    Clock::time_point next_attempt{};

    Slot(EndpointImpl& e, EventLoop& loop, const ConnectionSettings& s) : ep(e), conn(loop, s, *this) {}

    void on_connected(Connection&) override;
    void on_closed(Connection&, const std::string& why, bool was_ready) override;
    void on_work_done(Connection&) override;
};

/// The health probe: one query at a time on the endpoint's probe connection.
struct ProbeWork final : Work {
    EndpointImpl& ep;
    PgResultPtr result;
    SqlError error;
    bool failed = false;
    explicit ProbeWork(EndpointImpl& e) : ep(e) {}
    void on_result(std::size_t, PgResultPtr r) override;
    void on_finished() override;
    void on_connection_closed(const std::string& why) override;
};

struct ProbeListener final : Connection::Listener {
    EndpointImpl& ep;
    explicit ProbeListener(EndpointImpl& e) : ep(e) {}
    void on_connected(Connection&) override;
    void on_closed(Connection&, const std::string& why, bool was_ready) override;
    void on_work_done(Connection&) override {}
};

class EndpointImpl final : public Endpoint {
public:
    EndpointImpl(EventLoop& loop, EndpointOptions options)
        : loop_(loop),
          options_(std::move(options)),
          served_by_(options_.region + (options_.role == Role::primary ? "/primary" : "/replica")),
          batch_reads_(options_.role == Role::replica),
          probe_work_(*this),
          probe_listener_(*this) {
        if (options_.pool_size == 0) options_.pool_size = 1;
        if (options_.display_name.empty()) options_.display_name = served_by_;
        settings_.conninfo = options_.conninfo;
        settings_.display_name = options_.display_name;
        settings_.connect_timeout = options_.connect_timeout;
        settings_.statement_cache_capacity = kStatementCacheCapacity;
        probe_conn_ = std::make_unique<Connection>(loop_, settings_, probe_listener_);
        health_.pool_size = options_.pool_size;
    }

    ~EndpointImpl() override {
        alive_.reset();
        // Completions of jobs still outstanding are dropped (drain() first).
        for (auto& [id, job] : jobs_) {
            if (job->timer != 0) loop_.cancel_timer(job->timer);
        }
        if (probe_timer_ != 0) loop_.cancel_timer(probe_timer_);
        if (probe_deadline_ != 0) loop_.cancel_timer(probe_deadline_);
        if (maintain_timer_ != 0) loop_.cancel_timer(maintain_timer_);
        slots_.clear();
        probe_conn_.reset();
        jobs_.clear();
    }

    // ---- Endpoint ----

    void start() override {
        if (started_ || draining_) return;
        started_ = true;
        next_check_ = Clock::now();
        ensure_connections();
        probe_tick();
    }

    JobId submit(Job job, JobCallbacks callbacks) override {
        Completion done = std::move(callbacks.done);
        const JobId id = next_job_id_;
        submit_job(std::move(job), std::move(done));
        return id;
    }

    void resume(JobId) override {}

    void cancel(JobId id) override {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        cancel_job(*it->second, "cancelled");
    }

    void submit_job(Job job, Completion done) {
        ++next_job_id_;  // ids of refused jobs are used up too: never reused
        const auto now = Clock::now();
        if (job.deadline == Clock::time_point{}) job.deadline = now + kDefaultTimeout;
        const std::int64_t total_ms = round_ms(job.deadline - now);
        if (draining_) return answer_later(std::move(done), error(drain_reason_, "", false));
        if (job.kind == Job::Kind::write && options_.role != Role::primary) {
            return answer_later(std::move(done),
                                error("write sent to " + options_.display_name +
                                          ", a replica: writes must go to the primary (routing bug in the daemon)",
                                      "", false));
        }
        if (queue_.size() >= options_.max_queue) {
            return answer_later(std::move(done),
                                error("endpoint " + options_.display_name + " queue full (" +
                                          std::to_string(queue_.size()) + " jobs waiting): retry later",
                                      "", true));
        }
        // Checked here because libpq would truncate at a NUL silently, and a
        // refused send would cost the connection (and the jobs pipelined on it).
        if (job.sql.find('\0') != std::string::npos) {
            return answer_later(std::move(done), error("the SQL text contains a NUL byte", "22021", false));
        }
        if (job.params.size() > kMaxParams) {
            return answer_later(std::move(done),
                                error(std::to_string(job.params.size()) + " parameters: PostgreSQL accepts at most " +
                                          std::to_string(kMaxParams),
                                      "54023", false));
        }
        for (std::size_t i = 0; i < job.params.size(); ++i) {
            if (job.params[i] && job.params[i]->find('\0') != std::string::npos) {
                return answer_later(std::move(done),
                                    error("parameter $" + std::to_string(i + 1) +
                                              " contains a NUL byte, which PostgreSQL text cannot hold",
                                          "22021", false));
            }
        }
        auto state = std::make_unique<JobState>(*this, next_job_id_ - 1, std::move(job), std::move(done));
        state->total_ms = total_ms;
        if (state->is_write()) {
            if (std::string problem = prepare_write(*state); !problem.empty()) {
                return answer_later(std::move(state->done), error(problem, "", false));
            }
        } else {
            prepare_read(*state);
        }
        JobState& js = *state;
        const std::uint64_t id = js.id;
        js.timer = loop_.add_timer(js.job.deadline, [this, id] { on_deadline(id); });
        jobs_.emplace(id, std::move(state));
        queue_.push_back(&js);
        // Idle (this is the only job): send at once, latency first. Busy: let
        // every request the loop reads in this pass queue up first; one deferred
        // dispatch then batches the reads per connection (fewer syscalls and
        // wake-ups on both sides, which is what throughput is made of here).
        if (jobs_.size() == 1) {
            dispatch();
        } else {
            schedule_dispatch();
        }
    }

    const Health& health() const override {
        std::uint32_t in_use = 0;
        for (const auto& s : slots_) {
            if (!s->jobs.empty()) ++in_use;
        }
        health_.pool_in_use = in_use;
        health_.pool_size = options_.pool_size;
        return health_;
    }

    const EndpointOptions& options() const override { return options_; }

    void on_health_change(std::function<void()> fn) override { health_callbacks_.push_back(std::move(fn)); }

    void update_health(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds check_interval,
                       unsigned down_after, unsigned up_after) override {
        options_.connect_timeout = connect_timeout;
        options_.check_interval = check_interval;
        options_.down_after = down_after;
        options_.up_after = up_after;
        settings_.connect_timeout = connect_timeout;  // connections opened from now on
        for (auto& s : slots_) s->conn.set_connect_timeout(connect_timeout);
        probe_conn_->set_connect_timeout(connect_timeout);
        // A shorter interval takes effect at once, not after the old one.
        next_check_ = std::min(next_check_, Clock::now() + options_.check_interval);
    }

    void set_lag_tracker(std::shared_ptr<LagTracker> tracker) override { tracker_ = std::move(tracker); }

    void drain(std::string reason, std::function<void()> drained) override {
        draining_ = true;
        drain_reason_ = reason.empty() ? "endpoint " + options_.display_name + " is shutting down" : std::move(reason);
        drained_cb_ = std::move(drained);
        if (probe_timer_ != 0) loop_.cancel_timer(probe_timer_);
        probe_timer_ = 0;
        if (maintain_timer_ != 0) loop_.cancel_timer(maintain_timer_);
        maintain_timer_ = 0;
        if (probe_deadline_ != 0) loop_.cancel_timer(probe_deadline_);
        probe_deadline_ = 0;
        if (probe_in_flight_) {
            probe_conn_->abandon(probe_work_);
            probe_in_flight_ = false;
            probe_waiting_for_connect_ = false;
        }
        // Queued jobs are answered from the loop, not from inside drain().
        std::weak_ptr<bool> alive = alive_;
        loop_.defer([this, alive] {
            if (alive.expired()) return;
            while (!queue_.empty()) {
                JobState* job = queue_.front();
                queue_.pop_front();
                complete(*job, error(drain_reason_, "", false));
            }
            check_drained();
        });
    }

    std::size_t in_flight() const override { return jobs_.size(); }

    // ---- called by JobState / Slot / Probe ----

    void job_result(JobState& job, std::size_t tag, PgResultPtr r) {
        const ExecStatusType status = PQresultStatus(r.get());
        switch (status) {
            case PGRES_TUPLES_OK:
            case PGRES_SINGLE_TUPLE:
            case PGRES_COMMAND_OK:
            case PGRES_EMPTY_QUERY:
                if (tag == kLsnTag) {
                    if (PQntuples(r.get()) == 1 && PQnfields(r.get()) == 1 && !PQgetisnull(r.get(), 0, 0)) {
                        job.lsn = parse_lsn(PQgetvalue(r.get(), 0, 0));
                    }
                    if (!job.lsn) job.lsn_error = "pg_current_wal_insert_lsn() returned no LSN";
                    return;
                }
                if (job.is_write()) {
                    // Rows changed: DML counts; a SELECT's row count is not a change.
                    const char* tuples = PQcmdTuples(r.get());
                    const bool select =
                        std::strncmp(PQcmdStatus(r.get()), "SELECT", 6) == 0 && status == PGRES_TUPLES_OK;
                    if (!select && tuples != nullptr && *tuples != '\0')
                        job.affected += std::strtoll(tuples, nullptr, 10);
                    if (status == PGRES_TUPLES_OK) job.rows = std::move(r);
                } else if (status == PGRES_TUPLES_OK || !job.rows) {
                    job.rows = std::move(r);
                }
                return;
            case PGRES_PIPELINE_ABORTED:
                // Skipped because an earlier command of its segment failed. In a
                // write that command's error is the one to report; in a read (its own
                // Parse error came first and set `failed`) likewise; a read with no
                // error of its own was skipped for another read of its batch.
                if (!job.is_write() && !job.failed) job.aborted_by_batch = true;
                return;
            case PGRES_COPY_IN:
            case PGRES_COPY_OUT:
            case PGRES_COPY_BOTH:
                if (!job.failed) {
                    job.failed = true;
                    job.error = SqlError{"0A000", "COPY is not supported through regiond"};
                    job.error_tag = tag;
                }
                return;
            default:
                if (tag == kLsnTag) {
                    job.lsn_error = sql_error_of(*r).message;
                    return;
                }
                if (!job.failed) {
                    job.failed = true;
                    job.error = sql_error_of(*r);
                    job.error_tag = tag;
                }
                return;
        }
    }

    void job_finished(JobState& job) {
        Slot* slot = job.slot;
        detach_from_slot(job);
        if (job.aborted_by_batch && !job.failed && Clock::now() < job.job.deadline && !draining_) {
            // Another read of its batch failed: send it again, first in line.
            if (job.attempts > 0) --job.attempts;
            job.where = JobState::Where::queued;
            job.reset_results();
            queue_.push_front(&job);
            schedule_dispatch();
            return;
        }
        if (job.failed) {
            std::string message = job.error.message;
            if (job.statements.size() > 1) {
                message = "statement " + std::to_string(job.error_tag + 1) + " of " +
                          std::to_string(job.statements.size()) + " failed, the write was rolled back: " + message;
            }
            return complete(job, error(message, job.error.sqlstate, false));
        }
        if (!job.is_write()) {
            return complete(job, rows_outcome(job.rows.get(), served_by_, "", -1, options_.max_chunk_bytes));
        }
        const std::uint64_t sysid = slot != nullptr ? slot->conn.system_identifier() : 0;
        if (!job.lsn || sysid == 0) {
            std::string why =
                !job.lsn ? job.lsn_error
                         : (slot != nullptr && !slot->conn.setup_error().empty() ? slot->conn.setup_error()
                                                                                 : "system identifier unknown");
            return complete(
                job, error("the write committed on " + options_.display_name +
                               " but its consistency token could not be read (" + why + "): do not retry it blindly",
                           "", false));
        }
        if (health_.system_identifier == 0) health_.system_identifier = sysid;
        const std::string token = std::to_string(sysid) + "/" + format_lsn(*job.lsn);
        complete(job, rows_outcome(job.rows.get(), served_by_, token, job.affected, options_.max_chunk_bytes));
    }

    void job_connection_closed(JobState& job, const std::string& why) {
        // A connection closed on purpose (to cancel another job) is no failure of
        // this read: it does not use up its retry.
        const bool on_purpose = job.slot != nullptr && job.slot->closing_on_purpose;
        detach_from_slot(job);
        if (!job.is_write() && (on_purpose || job.attempts < kReadAttempts) && Clock::now() < job.job.deadline &&
            !draining_) {
            // Reads are idempotent: send it again on another connection.
            job.where = JobState::Where::queued;
            job.reset_results();
            queue_.push_front(&job);
            schedule_dispatch();
            return;
        }
        std::string message = why;
        if (job.is_write()) message += "; the write may or may not have committed";
        complete(job, error(message, "", true));
    }

    void slot_connected(Slot& slot) {
        slot.backoff = Clock::duration{0};
        health_.ever_connected = true;
        dispatch();
    }

    void slot_closed(Slot& slot, const std::string& why, bool was_ready) {
        const bool on_purpose = slot.closing_on_purpose;
        slot.closing_on_purpose = false;
        slot.has_write = false;
        if (on_purpose) {
            slot.next_attempt = Clock::now();
        } else {
            if (!was_ready) {
                slot.backoff = std::clamp<Clock::duration>(slot.backoff * 2, kBackoffMin, kBackoffMax);
                slot.next_attempt = Clock::now() + slot.backoff;
            } else {
                slot.next_attempt = Clock::now();  // lost while open: try again at once, once
                slot.backoff = kBackoffMin / 2;
            }
            note_failure(why);
            if (!was_ready && !any_slot_ready()) {
                // Nothing can serve the queue now: answer it at once (the router can
                // go elsewhere) instead of letting every job wait for its deadline.
                fail_queue(why);
            }
        }
        schedule_dispatch();
    }

    void slot_work_done(Slot&) { schedule_dispatch(); }

    void probe_result(PgResultPtr r) { probe_work_.result = std::move(r); }

    void probe_finished() {
        if (probe_deadline_ != 0) loop_.cancel_timer(probe_deadline_);
        probe_deadline_ = 0;
        probe_in_flight_ = false;
        const auto now = Clock::now();
        last_probe_answer_ = now;  // the server answered (even if with an error)
        PgResultPtr r = std::move(probe_work_.result);
        if (probe_work_.failed || !r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
            const std::string why =
                probe_work_.failed
                    ? "health probe of " + options_.display_name + " failed: " + probe_work_.error.message
                    : "health probe of " + options_.display_name + " returned no row";
            probe_work_.failed = false;
            return probe_failed(why);
        }
        const auto sample = std::chrono::duration_cast<std::chrono::microseconds>(now - probe_sent_at_).count();
        const double us = static_cast<double>(std::max<std::int64_t>(sample, 1));
        rtt_us_ = rtt_us_ == 0 ? us : rtt_us_ + (us - rtt_us_) / 8;  // EWMA, like TCP's SRTT
        health_.rtt_us = static_cast<std::uint32_t>(std::min(rtt_us_, 4e9));
        if (auto sysid = probe_conn_->system_identifier(); sysid != 0) health_.system_identifier = sysid;
        std::optional<std::uint64_t> lsn;
        if (!PQgetisnull(r.get(), 0, 0)) lsn = parse_lsn(PQgetvalue(r.get(), 0, 0));
        std::string warning;
        if (options_.role == Role::primary) {
            if (lsn) {
                health_.replay_lsn = *lsn;
                if (tracker_) tracker_->record_primary(now, *lsn);
            }
        } else {
            const bool in_recovery = PQnfields(r.get()) > 1 && !PQgetisnull(r.get(), 0, 1) &&
                                     std::string_view(PQgetvalue(r.get(), 0, 1)) == "t";
            if (!in_recovery) warning = options_.display_name + " is not in recovery (promoted?): it is no replica";
            if (lsn) health_.replay_lsn = *lsn;
            if (tracker_ && tracker_->has_primary() && lsn) {
                const auto lag = tracker_->lag_of(*lsn, now);
                health_.lag_bytes = lag.bytes;
                health_.lag_ms = lag.ms;
            } else {
                health_.lag_bytes = 0;
                health_.lag_ms = 0;
            }
        }
        if (probe_is_check_) note_success();
        if (!warning.empty()) health_.last_error = warning;
        notify_health();
    }

    void probe_connection_closed(const std::string& why) {
        if (probe_deadline_ != 0) loop_.cancel_timer(probe_deadline_);
        probe_deadline_ = 0;
        if (!probe_in_flight_) return;
        probe_in_flight_ = false;
        probe_work_.result.reset();
        probe_failed(why);
    }

    void probe_connected() {
        health_.ever_connected = true;
        if (probe_waiting_for_connect_) {
            probe_waiting_for_connect_ = false;
            send_probe();
        }
    }

    void probe_closed(const std::string& why) {
        if (probe_waiting_for_connect_) {
            if (probe_deadline_ != 0) loop_.cancel_timer(probe_deadline_);
            probe_deadline_ = 0;
            probe_waiting_for_connect_ = false;
            probe_in_flight_ = false;
            probe_failed(why);
        }
    }

private:
    // ---- jobs ----

    Outcome error(const std::string& message, std::string_view sqlstate, bool retry_elsewhere) const {
        return error_outcome(served_by_, message, sqlstate, retry_elsewhere, options_.max_chunk_bytes);
    }

    void answer_later(Completion done, Outcome outcome) {
        std::weak_ptr<bool> alive = alive_;
        loop_.defer([alive, done = std::move(done), outcome = std::move(outcome)]() mutable {
            if (alive.expired()) return;
            done(std::move(outcome));
        });
    }

    static void fill_values(JobState& job) {
        job.values.clear();
        job.values.reserve(job.job.params.size());
        for (const auto& p : job.job.params) job.values.push_back(p ? p->c_str() : nullptr);
    }

    void prepare_read(JobState& job) {
        fill_values(job);
        job.steps.clear();
        job.steps.push_back(Step::command(job.job.sql, job.values, 0));
        job.steps.push_back(Step::sync());
    }

    // Splits the write and builds its steps; returns "" or why it cannot be sent.
    std::string prepare_write(JobState& job) {
        SplitResult split = split_statements(job.job.sql);
        fill_values(job);
        job.steps.clear();
        job.types.clear();
        if (!split.ok) {
            // The server will report the syntax error with its SQLSTATE and position.
            Statement whole;
            whole.sql = job.job.sql;
            job.statements.push_back(std::move(whole));
            job.steps.push_back(Step::command(job.statements[0].sql, job.values, 0));
        } else {
            job.statements = std::move(split.statements);
            if (job.statements.empty()) return "the write contains no SQL statement";
            for (std::size_t i = 0; i < job.statements.size(); ++i) {
                const auto& st = job.statements[i];
                if (!st.transaction_control.empty()) {
                    return "statement " + std::to_string(i + 1) + " is " + st.transaction_control +
                           ": regiond runs the statements of one write as one transaction itself; send them without "
                           "BEGIN/COMMIT/ROLLBACK/SAVEPOINT";
                }
                if (st.max_param() > job.values.size()) {
                    return "statement " + std::to_string(i + 1) + " uses $" + std::to_string(st.max_param()) +
                           " but the write has " + std::to_string(job.values.size()) + " parameter(s)";
                }
            }
            if (job.statements.size() == 1) {
                // One statement gets every parameter, as a read does (the server checks them).
                job.steps.push_back(Step::command(job.statements[0].sql, job.values, 0));
            } else {
                std::size_t highest = 0;
                for (const auto& st : job.statements) highest = std::max(highest, st.max_param());
                if (highest < job.values.size()) {
                    return "the write has " + std::to_string(job.values.size()) +
                           " parameters but its statements use only $1..$" + std::to_string(highest);
                }
                job.types.resize(job.statements.size());
                for (std::size_t i = 0; i < job.statements.size(); ++i) {
                    const auto& st = job.statements[i];
                    const std::size_t k = st.max_param();
                    // $n the statement skips still has to be bound: give it type text.
                    if (std::find(st.referenced.begin(), st.referenced.end(), false) != st.referenced.end()) {
                        job.types[i].resize(k);
                        for (std::size_t n = 0; n < k; ++n) job.types[i][n] = st.referenced[n] ? 0 : kTextOid;
                    }
                    job.steps.push_back(Step::command(
                        job.statements[i].sql, std::span<const char* const>(job.values.data(), k), i, job.types[i]));
                }
            }
        }
        // One implicit transaction, then the LSN in the next one (ENVIRONMENT.md:
        // never in the same transaction as the write).
        job.steps.push_back(Step::sync());
        Step lsn = Step::command(kWriteLsnSql, {}, kLsnTag);
        job.steps.push_back(lsn);
        job.steps.push_back(Step::sync());
        return "";
    }

    void on_deadline(std::uint64_t id) {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        JobState& job = *it->second;
        job.timer = 0;
        cancel_job(job, "timed out after " + std::to_string(job.total_ms) + " ms");
    }

    // Stops a job (deadline or cancel()): a queued one is taken off the queue, a
    // sent one is abandoned or its connection closed (see below).
    void cancel_job(JobState& job, std::string message) {
        const bool cancelled = message == "cancelled";
        if (job.where == JobState::Where::queued) {
            if (auto q = std::find(queue_.begin(), queue_.end(), &job); q != queue_.end()) queue_.erase(q);
        } else if (Slot* slot = job.slot) {
            detach_from_slot(job);
            const bool running = slot->conn.abandon(job);
            if (running || job.is_write()) {
                // The only way to stop a running statement without PQcancel's blocking
                // round trip (libpq 15 has no PQcancelCreate): close the connection. The
                // server aborts the query (client_connection_check_interval) and rolls
                // back an uncommitted write; reads behind it are sent again elsewhere.
                // A read with a live job ahead of it has not started: it is only
                // abandoned (its results will be dropped), the connection stays.
                slot->closing_on_purpose = true;
                slot->conn.close("connection to " + options_.display_name + " closed to cancel a job that timed out");
            }
            if (job.is_write()) message += "; the write may or may not have committed";
        }
        Outcome outcome = error(message, "", false);
        outcome.cancelled = cancelled;
        complete(job, std::move(outcome));
    }

    void detach_from_slot(JobState& job) {
        Slot* slot = job.slot;
        if (slot == nullptr) return;
        auto it = std::find(slot->jobs.begin(), slot->jobs.end(), &job);
        if (it != slot->jobs.end()) slot->jobs.erase(it);
        if (job.is_write()) slot->has_write = false;
        job.slot = nullptr;
    }

    void complete(JobState& job, Outcome outcome) {
        if (job.timer != 0) loop_.cancel_timer(job.timer);
        job.timer = 0;
        detach_from_slot(job);
        auto it = jobs_.find(job.id);
        std::unique_ptr<JobState> holder = std::move(it->second);
        jobs_.erase(it);
        Completion done = std::move(holder->done);
        holder.reset();
        if (done) done(std::move(outcome));
        check_drained();
    }

    void fail_queue(const std::string& why) {
        std::deque<JobState*> failing;
        failing.swap(queue_);
        for (JobState* job : failing) complete(*job, error(why, "", true));
    }

    void check_drained() {
        if (!draining_ || !jobs_.empty() || !drained_cb_) return;
        auto cb = std::move(drained_cb_);
        drained_cb_ = nullptr;
        for (auto& s : slots_) s->conn.close("", false);
        probe_conn_->close("", false);
        std::weak_ptr<bool> alive = alive_;
        loop_.defer([alive, cb = std::move(cb)] {
            if (!alive.expired()) cb();
        });
    }

    // ---- pool ----

    bool any_slot_ready() const {
        return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->conn.ready(); });
    }

    bool can_grow(Clock::time_point now) const {
        if (slots_.size() < options_.pool_size) return true;
        return std::any_of(slots_.begin(), slots_.end(), [&](const auto& s) {
            return s->conn.state() == Connection::State::closed && s->next_attempt <= now;
        });
    }

    Slot* pick(const JobState& job, Clock::time_point now) {
        Slot* best = nullptr;
        if (batch_reads_ && !job.is_write()) {
            // Reads arriving together join an open batch (up to kBatchTarget) before
            // they take another idle connection: fewer, larger batches cost the
            // server and the daemon fewer system calls per read.
            for (auto& s : slots_) {
                if (s->conn.ready() && s->batched_in_pass > 0 && s->batched_in_pass < kBatchTarget && !s->has_write &&
                    s->conn.depth() < kMaxPipelineDepth)
                    return s.get();
            }
        }
        for (auto& s : slots_) {
            if (s->conn.ready() && s->conn.depth() == 0 && s->jobs.empty()) return s.get();
        }
        if (job.is_write() || can_grow(now)) return nullptr;
        for (auto& s : slots_) {
            if (!s->conn.ready() || s->has_write || s->conn.depth() >= kMaxPipelineDepth) continue;
            if (best == nullptr || s->conn.depth() < best->conn.depth()) best = s.get();
        }
        return best;
    }

    void schedule_dispatch() {
        if (dispatch_scheduled_) return;
        dispatch_scheduled_ = true;
        std::weak_ptr<bool> alive = alive_;
        loop_.defer([this, alive] {
            if (alive.expired()) return;
            dispatch_scheduled_ = false;
            dispatch();
        });
    }

    void dispatch() {
        if (dispatching_) {
            redispatch_ = true;
            return;
        }
        dispatching_ = true;
        do {
            redispatch_ = false;
            const auto now = Clock::now();
            while (!queue_.empty() && !draining_) {
                JobState* job = queue_.front();
                if (job->job.deadline <= now) {
                    queue_.pop_front();
                    job->where = JobState::Where::expired;
                    continue;
                }
                Slot* slot = pick(*job, now);
                if (slot == nullptr) break;
                queue_.pop_front();
                send(*job, *slot);
            }
        } while (redispatch_);
        for (auto& s : slots_) {
            s->conn.end_batch();
            s->batched_in_pass = 0;
        }
        dispatching_ = false;
        ensure_connections();
    }

    void send(JobState& job, Slot& slot) {
        job.where = JobState::Where::sent;
        job.sent_at = Clock::now();
        job.slot = &slot;
        ++job.attempts;
        slot.jobs.push_back(&job);
        if (job.is_write()) slot.has_write = true;
        if (batch_reads_ && !job.is_write()) {
            // A read is one command and a sync (prepare_read): batched, the sync
            // is the batch's (dispatch() ends the batches).
            slot.conn.send_batched(job, std::span<const Step>(job.steps.data(), 1));
            ++slot.batched_in_pass;
        } else {
            slot.conn.send(job, job.steps);
        }
    }

    // Opens connections: at least one, and one more per queued job that waits for
    // one, up to pool_size, respecting each slot's reconnect backoff.
    void ensure_connections() {
        if (!started_ || draining_) return;
        const auto now = Clock::now();
        std::size_t open = 0, connecting = 0;
        for (const auto& s : slots_) {
            if (s->conn.state() != Connection::State::closed) ++open;
            if (s->conn.state() == Connection::State::connecting) ++connecting;
        }
        std::size_t wanted = queue_.size() > connecting ? queue_.size() - connecting : 0;
        if (open == 0) wanted = std::max<std::size_t>(wanted, 1);
        Clock::time_point retry_at = Clock::time_point::max();
        for (auto& s : slots_) {
            if (wanted == 0) break;
            if (s->conn.state() != Connection::State::closed) continue;
            if (s->next_attempt > now) {
                retry_at = std::min(retry_at, s->next_attempt);
                continue;
            }
            s->conn.connect();
            --wanted;
        }
        while (wanted > 0 && slots_.size() < options_.pool_size) {
            slots_.push_back(std::make_unique<Slot>(*this, loop_, settings_));
            slots_.back()->conn.connect();
            --wanted;
        }
        if (wanted > 0 && retry_at != Clock::time_point::max() && maintain_timer_ == 0) {
            std::weak_ptr<bool> alive = alive_;
            maintain_timer_ = loop_.add_timer(retry_at, [this, alive] {
                if (alive.expired()) return;
                maintain_timer_ = 0;
                dispatch();
            });
        }
    }

    // ---- health ----

    void note_failure(const std::string& why) {
        health_.last_error = why;
        successes_ = 0;
        ++failures_;
        if (health_.healthy && failures_ >= std::max(1u, options_.down_after)) {
            health_.healthy = false;
            fail_in_flight(why);
        }
        notify_health();
    }

    // While the endpoint is down (called when it is marked down and at every
    // probe tick after): jobs queued or sent on it would wait for their
    // deadlines, and on a stalled link (packets vanish, no RST) nothing else
    // ever ends them. The queue is answered with retry_elsewhere. When the
    // server itself has gone silent (the health probe has had no answer for a
    // check interval plus its round trip), so is every job on a connection that
    // owes an answer and has been silent for a whole check interval (since its
    // last input or the job's send, whichever is later); such a connection is
    // closed (its state is unknown; the pool reconnects with backoff). The
    // router sends a read to the next endpoint while its caller still has time.
    // While the probe still gets answers, the jobs sent stay: the endpoint may
    // be down because new connections are refused (max_connections) while the
    // open ones work, a long query is no stalled link, and a write there must
    // not be cut off. Idle connections stay: they cost nothing.
    void fail_in_flight(const std::string& why) {
        if (draining_) return;
        const std::string message = options_.display_name + " was marked down (" + why + ")";
        fail_queue(message);
        const auto now = Clock::now();
        const auto rtt = std::chrono::microseconds(static_cast<std::int64_t>(rtt_us_));
        if (now - last_probe_answer_ < options_.check_interval + 2 * rtt + probe_period()) return;
        for (auto& slot : slots_) {
            if (slot->jobs.empty()) continue;
            Clock::time_point silent_since = slot->conn.last_input();
            for (const JobState* job : slot->jobs) silent_since = std::max(silent_since, job->sent_at);
            if (now - silent_since < options_.check_interval) continue;
            const std::vector<JobState*> jobs = slot->jobs;
            for (JobState* job : jobs) {
                slot->conn.abandon(*job);
                std::string text = message;
                if (job->is_write()) text += "; the write may or may not have committed";
                complete(*job, error(text, "", true));
            }
            slot->closing_on_purpose = true;
            slot->conn.close("connection to " + options_.display_name + " closed: the endpoint was marked down");
        }
    }

    void note_success() {
        failures_ = 0;
        ++successes_;
        if (!health_.healthy && (!ever_healthy_ || successes_ >= std::max(1u, options_.up_after))) {
            health_.healthy = true;
            ever_healthy_ = true;
        }
        if (health_.healthy) health_.last_error.clear();
    }

    void notify_health() {
        for (auto& fn : health_callbacks_) fn();
    }

    Clock::duration probe_period() const {
        if (tracker_ && options_.lag_poll_interval.count() > 0) {
            return std::min<Clock::duration>(options_.lag_poll_interval, options_.check_interval);
        }
        return options_.check_interval;
    }

    void probe_tick() {
        probe_timer_ = 0;
        if (draining_) return;
        std::weak_ptr<bool> alive = alive_;
        probe_timer_ = loop_.add_timer(std::max<Clock::duration>(probe_period(), 1ms), [this, alive] {
            if (!alive.expired()) probe_tick();
        });
        const auto now = Clock::now();
        if (!health_.healthy && ever_healthy_) fail_in_flight(health_.last_error);
        if (probe_in_flight_) {
            // A probe unanswered for a whole check interval is a failed check, each
            // interval again: a stalled link (packets vanish, no RST) is then marked
            // down after down_after x check_interval instead of waiting for the
            // probe's own deadline (2 x connect_timeout) down_after times.
            if (now >= next_check_ && now - probe_sent_at_ >= options_.check_interval) {
                next_check_ = now + options_.check_interval;
                note_failure("health probe of " + options_.display_name + " has not answered for " +
                             std::to_string(round_ms(now - probe_sent_at_)) + " ms");
            }
            return;
        }
        // Every tick polls the LSN; a tick at or after the next check time is also
        // a health check (counts for hysteresis). A failed poll makes the next tick
        // a check at once.
        probe_is_check_ = now >= next_check_;
        if (probe_is_check_) next_check_ = now + options_.check_interval;
        probe_in_flight_ = true;
        probe_sent_at_ = now;
        arm_probe_deadline();
        if (probe_conn_->ready()) {
            send_probe();
        } else {
            probe_waiting_for_connect_ = true;
            probe_conn_->connect();  // no-op while already connecting
        }
    }

    void arm_probe_deadline() {
        if (probe_deadline_ != 0) loop_.cancel_timer(probe_deadline_);
        // A probe (with its connect) gets connect_timeout plus the query's share.
        const auto limit = options_.connect_timeout + std::max<Clock::duration>(options_.connect_timeout, 100ms);
        std::weak_ptr<bool> alive = alive_;
        probe_deadline_ = loop_.add_timer(limit, [this, alive, limit] {
            if (alive.expired()) return;
            probe_deadline_ = 0;
            if (!probe_in_flight_) return;
            probe_in_flight_ = false;
            probe_waiting_for_connect_ = false;
            probe_conn_->abandon(probe_work_);
            probe_conn_->close("", false);
            probe_failed("health probe of " + options_.display_name + " timed out after " +
                         std::to_string(round_ms(limit)) + " ms");
        });
    }

    void send_probe() {
        probe_sent_at_ = Clock::now();
        probe_work_.result.reset();
        probe_work_.failed = false;
        static const Step primary_steps[] = {Step::command(kPrimaryProbeSql, {}, 0), Step::sync()};
        static const Step replica_steps[] = {Step::command(kReplicaProbeSql, {}, 0), Step::sync()};
        if (options_.role == Role::primary) {
            probe_conn_->send(probe_work_, primary_steps);
        } else {
            probe_conn_->send(probe_work_, replica_steps);
        }
    }

    void probe_failed(const std::string& why) {
        if (probe_is_check_) {
            note_failure(why);
            return;
        }
        // A lag poll failed: count it at the next tick, which is made a check.
        next_check_ = Clock::now();
        health_.last_error = why;
        notify_health();
    }

    EventLoop& loop_;
    EndpointOptions options_;
    const std::string served_by_;
    /// Reads sent in batches (Connection::send_batched): only on a replica,
    /// where nothing a read does can be rolled back with its batch. On the
    /// primary a "read" may call a function that writes; it keeps its own sync.
    const bool batch_reads_;
    ConnectionSettings settings_;
    mutable Health health_;
    std::vector<std::function<void()>> health_callbacks_;
    std::shared_ptr<LagTracker> tracker_;

    std::unordered_map<std::uint64_t, std::unique_ptr<JobState>> jobs_;
    std::deque<JobState*> queue_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::uint64_t next_job_id_ = 1;
    bool started_ = false;
    bool dispatching_ = false;
    bool redispatch_ = false;
    bool dispatch_scheduled_ = false;
    EventLoop::TimerId maintain_timer_ = 0;

    bool draining_ = false;
    std::string drain_reason_;
    std::function<void()> drained_cb_;

    ProbeWork probe_work_;
    ProbeListener probe_listener_;
    std::unique_ptr<Connection> probe_conn_;
    EventLoop::TimerId probe_timer_ = 0;
    EventLoop::TimerId probe_deadline_ = 0;
    bool probe_in_flight_ = false;
    bool probe_waiting_for_connect_ = false;
    bool probe_is_check_ = false;
    Clock::time_point probe_sent_at_{};
    Clock::time_point last_probe_answer_{};  ///< the server last answered a probe (epoch: never)
    Clock::time_point next_check_{};
    double rtt_us_ = 0;
    unsigned failures_ = 0;
    unsigned successes_ = 0;
    bool ever_healthy_ = false;

    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

void JobState::on_result(std::size_t tag, PgResultPtr result) {
    ep.job_result(*this, tag, std::move(result));
}
void JobState::on_finished() {
    ep.job_finished(*this);
}
void JobState::on_connection_closed(const std::string& why) {
    ep.job_connection_closed(*this, why);
}

void Slot::on_connected(Connection&) {
    ep.slot_connected(*this);
}
void Slot::on_closed(Connection&, const std::string& why, bool was_ready) {
    ep.slot_closed(*this, why, was_ready);
}
void Slot::on_work_done(Connection&) {
    ep.slot_work_done(*this);
}

void ProbeWork::on_result(std::size_t, PgResultPtr r) {
    const ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        ep.probe_result(std::move(r));
    } else if (st != PGRES_PIPELINE_ABORTED && !failed) {
        failed = true;
        error = sql_error_of(*r);
    }
}
void ProbeWork::on_finished() {
    ep.probe_finished();
}
void ProbeWork::on_connection_closed(const std::string& why) {
    ep.probe_connection_closed(why);
}

void ProbeListener::on_connected(Connection&) {
    ep.probe_connected();
}
void ProbeListener::on_closed(Connection&, const std::string& why, bool) {
    ep.probe_closed(why);
}

}  // namespace

std::unique_ptr<Endpoint> Endpoint::create(EventLoop& loop, EndpointOptions options) {
    return std::make_unique<EndpointImpl>(loop, std::move(options));
}

}  // namespace regiond::daemon::pg

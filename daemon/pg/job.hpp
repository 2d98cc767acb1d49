// One submitted job, from Endpoint::submit() to its `done`: what it sends
// (PreparedJob), what came back in the current attempt, its streamed rows
// (ResultStream), and how it is being stopped. The scheduler owns JobStates
// and decides what happens to them; absorb() only records results.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "daemon/event_loop.hpp"
#include "daemon/pg/connection.hpp"
#include "daemon/pg/endpoint.hpp"
#include "daemon/pg/endpoint_context.hpp"
#include "daemon/pg/job_steps.hpp"
#include "daemon/pg/outcome.hpp"
#include "daemon/pg/result_stream.hpp"

namespace regiond::daemon::pg {

class Scheduler;
struct Slot;

/// SQLSTATEs of a backend that ended (57P01 admin_shutdown, 57P02
/// crash_shutdown, 57P03 cannot_connect_now): when a job receives one as its
/// own result, its statement may have ended its own backend.
bool backend_ended(const std::string& sqlstate);

struct JobState final : Work {
    JobState(Scheduler& s, JobId i, Job j, JobCallbacks cb, EncoderPool& encoders, std::string_view served_by,
             std::size_t max_chunk);

    Scheduler& sched;
    const JobId id;
    Job job;
    JobCallbacks callbacks;
    std::int64_t total_ms = 0;
    TimerHandle deadline_timer;
    /// expired: taken off the queue by dispatch after its deadline passed; its
    /// timer (due now) answers it. confirming: its connection was lost while
    /// it may have been running; the probe's answer decides.
    enum class Where : std::uint8_t { queued, sent, confirming, expired } where = Where::queued;
    Slot* slot = nullptr;
    Clock::time_point sent_at{};
    PreparedJob prepared;
    bool no_batch = false;  ///< a batch's sync showed changed session state: sent alone

    // What came back in the current attempt (reset_attempt() before each send).
    bool failed = false;
    SqlError error;
    std::size_t error_tag = 0;
    /// Skipped (PGRES_PIPELINE_ABORTED) because another read of its batch
    /// failed: sent again, for free.
    bool aborted_by_batch = false;
    /// 57014 while it was not being cancelled, on a connection that had a
    /// cancel for another job moments before: sent again, for free.
    bool stray_cancel = false;
    std::int64_t affected = 0;
    std::optional<std::uint64_t> lsn;  ///< the token's LSN (kLsnTag, or a batch's shared step)
    /// The system identifier of the connection that read `lsn`, taken with it
    /// (0: unknown; then no token: none is better than a wrong one).
    std::uint64_t lsn_sysid = 0;
    std::string lsn_error;
    /// A guarded read (Job::min_lsn or want_floor on a replica): the guard's
    /// answer. Until it has passed, no row is kept or streamed. Without a
    /// min_lsn it passes whatever it says (it is only the floor).
    std::optional<std::uint64_t> guard_lsn;
    bool guard_passed = false;
    /// A primary read with Job::want_floor: the insert LSN read before it.
    std::optional<std::uint64_t> floor_insert_lsn;
    /// The guard found the replica below min_lsn (or its LSN unknown): the
    /// answer is Outcome::behind; the read's rows are dropped.
    bool behind = false;
    std::uint64_t behind_dropped = 0;  ///< bytes of rows dropped since
    PgResultPtr kept_rows;             ///< a write's rows of an earlier statement (the last one with rows wins)
    ResultStream stream;
    std::string lost_why;  ///< the connection loss it waits on the probe for

    bool streamed = false;  ///< JobCallbacks::partial has been called: never sent again
    bool paused = false;    ///< partial returned false: its connection is not read

    enum class Stop : std::uint8_t { none, cancel, deadline, limit, behind } stop = Stop::none;
    std::string stop_message;
    std::string stop_sqlstate;
    bool cancelled = false;  ///< cancel() was called (Outcome::cancelled)

    bool is_write() const { return job.kind == Job::Kind::write; }
    bool batchable() const { return prepared.batchable && !no_batch; }
    void reset_attempt();

    /// What the scheduler must do after a result. behind_running: a read
    /// whose guard failed is still sending rows (worth a cancel).
    enum class Absorbed : std::uint8_t { nothing, chunks, over_limit, behind_running };
    Absorbed absorb(std::size_t tag, PgResultPtr result);
    /// "replica at X is behind token Y" (the guard's answer).
    std::string behind_message() const;
    /// Outcome::floor_lsn of this attempt (0: unknown).
    std::uint64_t floor_lsn() const;

    void on_result(std::size_t tag, PgResultPtr result) override;
    void on_finished() override;
    void on_connection_closed(const CloseInfo& info) override;
    void on_batch_result(const PGresult& r) override;

private:
    void absorb_lsn(const PGresult& r, bool rows_or_done);
};

}  // namespace regiond::daemon::pg

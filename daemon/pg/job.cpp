#include "daemon/pg/job.hpp"

#include <cstdlib>
#include <cstring>

#include "daemon/pg/scheduler.hpp"

namespace regiond::daemon::pg {
namespace {

/// A read whose guard failed but that still sends this many bytes of rows is
/// cancelled on the server. Below it the read usually ends by itself sooner
/// than a cancel would (PQcancel opens a connection to the server).
constexpr std::uint64_t kBehindCancelBytes = 64 * 1024;

std::optional<std::uint64_t> single_lsn(const PGresult& r) {
    if (PQntuples(&r) != 1 || PQnfields(&r) != 1 || PQgetisnull(&r, 0, 0)) return std::nullopt;
    return parse_lsn(PQgetvalue(&r, 0, 0));
}

std::size_t value_bytes(const PGresult& r) {
    std::size_t n = 0;
    for (int row = 0; row < PQntuples(&r); ++row)
        for (int c = 0; c < PQnfields(&r); ++c) n += static_cast<std::size_t>(PQgetlength(&r, row, c));
    return n;
}

}  // namespace

bool backend_ended(const std::string& sqlstate) {
    return sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

JobState::JobState(Scheduler& s, JobId i, Job j, JobCallbacks cb, EncoderPool& encoders, std::string_view served_by,
                   std::size_t max_chunk)
    : sched(s),
      id(i),
      job(std::move(j)),
      callbacks(std::move(cb)),
      stream(encoders, served_by, max_chunk, job.max_result, job.route_reason) {}

void JobState::reset_attempt() {
    failed = false;
    error = {};
    error_tag = 0;
    aborted_by_batch = false;
    stray_cancel = false;
    affected = 0;
    lsn.reset();
    lsn_sysid = 0;
    lsn_error.clear();
    guard_lsn.reset();
    guard_passed = false;
    floor_insert_lsn.reset();
    behind = false;
    behind_dropped = 0;
    kept_rows.reset();
    stream.reset();
    lost_why.clear();
}

JobState::Absorbed JobState::absorb(std::size_t tag, PgResultPtr r) {
    const ExecStatusType status = PQresultStatus(r.get());
    const bool rows_or_done = status == PGRES_TUPLES_OK || status == PGRES_SINGLE_TUPLE || status == PGRES_COMMAND_OK ||
                              status == PGRES_EMPTY_QUERY;
    if (tag == kLsnTag) {
        absorb_lsn(*r, rows_or_done);
        return Absorbed::nothing;
    }
    if (tag == kGuardTag && rows_or_done) {
        // Arrives before any result of the read (the pipeline is in order).
        // Without a min_lsn (want_floor only) there is no threshold: an
        // unknown replay LSN (not in recovery) only leaves the floor unknown.
        guard_lsn = single_lsn(*r);
        guard_passed = job.min_lsn == 0 || (guard_lsn && *guard_lsn >= job.min_lsn);
        behind = !guard_passed;
        return Absorbed::nothing;
    }
    if (tag == kFloorTag && rows_or_done) {
        floor_insert_lsn = single_lsn(*r);
        return Absorbed::nothing;
    }
    if (tag == kInvalidationTag && rows_or_done) {
        return Absorbed::nothing;  // its row count is not the write's; its failure is (below)
    }
    if (rows_or_done) {
        if (stop != Stop::none || tag == kReadOnlyTag) return Absorbed::nothing;  // rows of a stopped job are dropped
        if (prepared.guarded && !guard_passed) {
            // The guard did not pass (behind, or it failed): not a row of this
            // read may leave. A read still sending a lot is worth a cancel.
            if (status != PGRES_SINGLE_TUPLE && status != PGRES_TUPLES_OK) return Absorbed::nothing;
            behind_dropped += value_bytes(*r);
            return behind && behind_dropped >= kBehindCancelBytes ? Absorbed::behind_running : Absorbed::nothing;
        }
        const bool tuples = status == PGRES_TUPLES_OK || status == PGRES_SINGLE_TUPLE;
        if (is_write()) {
            // Rows changed: DML counts; a SELECT's row count is not a change. The
            // command tag comes with the command's last result.
            if (status != PGRES_SINGLE_TUPLE) {
                const char* count = PQcmdTuples(r.get());
                const bool select = status == PGRES_TUPLES_OK && std::strncmp(PQcmdStatus(r.get()), "SELECT", 6) == 0;
                if (!select && count != nullptr && *count != '\0') affected += std::strtoll(count, nullptr, 10);
            }
            if (!tuples) return Absorbed::nothing;
            if (tag + 1 < prepared.statements.size()) {
                // An earlier statement: its rows count unless a later one returns rows.
                if (status == PGRES_TUPLES_OK) kept_rows = std::move(r);
                return Absorbed::nothing;
            }
            kept_rows.reset();
        } else if (!tuples) {
            return Absorbed::nothing;
        }
        switch (stream.add(*r)) {
            case ResultStream::Added::ok: return stream.ready().empty() ? Absorbed::nothing : Absorbed::chunks;
            case ResultStream::Added::over_limit:
            case ResultStream::Added::row_too_large: return Absorbed::over_limit;
        }
        return Absorbed::nothing;
    }
    if (status == PGRES_PIPELINE_ABORTED) {
        // Skipped because an earlier command of its segment failed. In a write
        // that command's error is the one to report; in a read (its own Parse
        // error came first and set `failed`) likewise; a read with no error of
        // its own was skipped for another read of its batch.
        if (!is_write() && !failed) aborted_by_batch = true;
        return Absorbed::nothing;
    }
    if (failed) return Absorbed::nothing;  // the first error is the one
    failed = true;
    error_tag = tag;
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
        // The classifier refuses COPY; this is the net behind it. The connection
        // is reset right after (Connection::handle_result).
        error = SqlError{kRefusedSqlstate, "COPY is not supported through regiond"};
    } else if (status == PGRES_FATAL_ERROR) {
        error = sql_error_of(*r);
    } else {
        error = SqlError{"", std::string("unexpected result from the server (") + PQresStatus(status) +
                                 "): regiond cannot handle it"};
    }
    return Absorbed::nothing;
}

void JobState::absorb_lsn(const PGresult& r, bool rows_or_done) {
    lsn = rows_or_done ? single_lsn(r) : std::nullopt;
    lsn_sysid = slot != nullptr ? slot->conn.system_identifier() : 0;
    if (!lsn) lsn_error = rows_or_done ? "the LSN query returned no LSN" : sql_error_of(r).message;
}

std::string JobState::behind_message() const {
    if (!guard_lsn)
        return "the replay LSN of the replica is unknown (not in recovery?): it cannot show it has reached token " +
               format_lsn(job.min_lsn);
    return "replica at " + format_lsn(*guard_lsn) + " is behind token " + format_lsn(job.min_lsn);
}

std::uint64_t JobState::floor_lsn() const {
    if (prepared.guarded) return guard_lsn.value_or(0);
    // Primary: one below the insert position read before the read (endpoint.hpp,
    // Outcome::floor_lsn, says why equality with a token proves nothing).
    if (floor_insert_lsn && *floor_insert_lsn > 0) return *floor_insert_lsn - 1;
    return 0;
}

void JobState::on_batch_result(const PGresult& r) {
    const ExecStatusType status = PQresultStatus(&r);
    absorb_lsn(r, status == PGRES_TUPLES_OK);
}

void JobState::on_result(std::size_t tag, PgResultPtr result) {
    sched.job_result(*this, tag, std::move(result));
}
void JobState::on_finished() {
    sched.job_finished(*this);
}
void JobState::on_connection_closed(const CloseInfo& info) {
    sched.job_closed(*this, info);
}

}  // namespace regiond::daemon::pg

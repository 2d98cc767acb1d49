#include "daemon/pg/job.hpp"

#include <cstdlib>
#include <cstring>

#include "daemon/pg/scheduler.hpp"

namespace regiond::daemon::pg {

bool backend_ended(const std::string& sqlstate) {
    return sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

JobState::JobState(Scheduler& s, JobId i, Job j, JobCallbacks cb, EncoderPool& encoders, std::string_view served_by,
                   std::size_t max_chunk)
    : sched(s),
      id(i),
      job(std::move(j)),
      callbacks(std::move(cb)),
      stream(encoders, served_by, max_chunk, job.max_result) {}

void JobState::reset_attempt() {
    failed = false;
    error = {};
    error_tag = 0;
    aborted_by_batch = false;
    stray_cancel = false;
    affected = 0;
    lsn.reset();
    lsn_error.clear();
    kept_rows.reset();
    stream.reset();
    lost_why.clear();
}

JobState::Absorbed JobState::absorb(std::size_t tag, PgResultPtr r) {
    const ExecStatusType status = PQresultStatus(r.get());
    const bool rows_or_done = status == PGRES_TUPLES_OK || status == PGRES_SINGLE_TUPLE || status == PGRES_COMMAND_OK ||
                              status == PGRES_EMPTY_QUERY;
    if (tag == kLsnTag) {
        if (rows_or_done && PQntuples(r.get()) == 1 && PQnfields(r.get()) == 1 && !PQgetisnull(r.get(), 0, 0))
            lsn = parse_lsn(PQgetvalue(r.get(), 0, 0));
        if (!lsn) lsn_error = rows_or_done ? "pg_current_wal_insert_lsn() returned no LSN" : sql_error_of(*r).message;
        return Absorbed::nothing;
    }
    if (rows_or_done) {
        if (stop != Stop::none || tag == kReadOnlyTag) return Absorbed::nothing;  // rows of a stopped job are dropped
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

#include "daemon/pg/job_steps.hpp"

#include <algorithm>
#include <array>

#include "daemon/pg/pg_array.hpp"

namespace regiond::daemon::pg {
namespace {

constexpr Oid kTextOid = 25;
constexpr Oid kTextArrayOid = 1009;
constexpr std::array<Oid, 2> kInvalidationTypes{kTextArrayOid, kTextOid};
constexpr std::size_t kMaxParams = 65535;  // the protocol's limit (Bind has a 16-bit count)
constexpr const char* kWriteLsnSql = "select pg_current_wal_insert_lsn()";
// A primary read's token: the insert position after the read, in its own
// read-only implicit transaction (a read-only function, allowed there).
constexpr const char* kPrimaryReadLsnSql = kWriteLsnSql;
constexpr const char* kReadOnlySql = "select set_config('transaction_read_only', 'on', true)";

// Refused before anything is sent: libpq would cut the text at a NUL silently,
// and a send libpq refuses would cost the connection (and the jobs pipelined on it).
std::optional<Refusal> refuse_unsendable(const Job& job) {
    if (job.sql.find('\0') != std::string::npos) return Refusal{"the SQL text contains a NUL byte", "22021"};
    if (job.params.size() > kMaxParams) {
        return Refusal{
            std::to_string(job.params.size()) + " parameters: PostgreSQL accepts at most " + std::to_string(kMaxParams),
            "54023"};
    }
    for (std::size_t i = 0; i < job.params.size(); ++i) {
        if (job.params[i] && job.params[i]->find('\0') != std::string::npos) {
            return Refusal{
                "parameter $" + std::to_string(i + 1) + " contains a NUL byte, which PostgreSQL text cannot hold",
                "22021"};
        }
    }
    if (job.kind == Job::Kind::write && !job.invalidate_keys.empty()) {
        // The row is text[]: a key PostgreSQL text cannot hold would fail the
        // insert and with it the write; refused here, with the key's number.
        for (std::size_t i = 0; i < job.invalidate_keys.size(); ++i) {
            const std::string& key = job.invalidate_keys[i];
            if (key.find('\0') != std::string::npos)
                return Refusal{"invalidation key " + std::to_string(i + 1) + " contains a NUL byte", "22021"};
            if (!valid_utf8(key)) {
                return Refusal{"invalidation key " + std::to_string(i + 1) +
                                   " is not valid UTF-8 (keys are stored as PostgreSQL text)",
                               "22021"};
            }
        }
        if (job.origin.find('\0') != std::string::npos || !valid_utf8(job.origin))
            return Refusal{"the invalidation origin is not valid UTF-8 text", "22021"};
    }
    return std::nullopt;
}

void fill_values(const Job& job, PreparedJob& out) {
    out.values.clear();
    out.values.reserve(job.params.size());
    for (const auto& p : job.params) out.values.push_back(p ? p->c_str() : nullptr);
}

void prepare_read(const Job& job, const Classification& c, Role role, PreparedJob& out) {
    // A read is one statement (the classifier refuses more); a text the parser
    // rejects is sent whole so that the server reports the error itself.
    out.reset_after = c.changes_session;
    out.guarded = role == Role::replica && (job.min_lsn != 0 || job.want_floor);
    out.batchable =
        role == Role::replica && c.parsed && c.batchable && !c.changes_session && !out.guarded && !job.want_floor;
    if (role == Role::primary && job.want_floor) {
        // The floor: the insert position before the read's snapshot exists.
        // Its own implicit transaction, for the reason the replica's guard has
        // one (below): under REPEATABLE READ the read's transaction takes its
        // snapshot at its first statement, the read-only prefix, and a position
        // read after that could be past what the snapshot holds.
        out.steps.push_back(Step::command(kWriteLsnSql, {}, kFloorTag));
        out.steps.push_back(Step::sync());
    }
    if (role == Role::primary) {
        Step prefix = Step::command(kReadOnlySql, {}, kReadOnlyTag);
        out.steps.push_back(prefix);
    }
    if (out.guarded) {
        // Why a guard read right before the read, on the same connection, is
        // enough against the race "passed the check, then went back": within
        // one session the replay LSN only moves forward (it is the startup
        // process's position in shared memory; a restart of the replica ends
        // every session, and a replaced replica is reached on new connections,
        // each of which guards its own reads). So the snapshot of a read that
        // starts after the guard answered G reflects at least every commit up
        // to G (replay applies a commit to the snapshot data before it advances
        // the replay LSN past it), whatever the dispatcher's check saw earlier.
        //
        // The guard has a segment (implicit transaction) of its own rather than
        // sharing the read's: under REPEATABLE READ (a role's or database's
        // default_transaction_isolation, or a function's set_config) a
        // transaction's snapshot is taken by its first statement, i.e. before
        // the guard reads the LSN, and replay may pass the token in between:
        // the guard would pass while the read saw the older snapshot. A read
        // in the next implicit transaction takes its snapshot after the guard
        // answered at any isolation level. Same flush, no extra round trip.
        out.steps.push_back(Step::command(kReplayLsnSql, {}, kGuardTag));
        out.steps.push_back(Step::sync());
    }
    Step read = Step::command(job.sql, out.values, 0);
    read.single_row = true;
    out.steps.push_back(read);
    // The token: a position read after the read, in its segment, so it bounds
    // from above what the read's snapshot saw (the snapshot was taken before).
    out.steps.push_back(Step::command(role == Role::primary ? kPrimaryReadLsnSql : kReplayLsnSql, {}, kLsnTag));
    out.steps.push_back(Step::sync());
}

std::optional<Refusal> prepare_write(const Job& job, const Classification& c, PreparedJob& out) {
    out.reset_after = c.changes_session;
    if (!c.parsed) {
        // The server will report the syntax error with its SQLSTATE and position.
        out.statements.push_back(job.sql);
        out.steps.push_back(Step::command(out.statements[0], out.values, 0));
    } else {
        if (c.statements.empty()) return Refusal{"the write contains no SQL statement", ""};
        for (std::size_t i = 0; i < c.statements.size(); ++i) {
            const auto& st = c.statements[i];
            if (st.max_param() > out.values.size()) {
                return Refusal{"statement " + std::to_string(i + 1) + " uses $" + std::to_string(st.max_param()) +
                                   " but the write has " + std::to_string(out.values.size()) + " parameter(s)",
                               ""};
            }
            out.statements.push_back(st.sql);
        }
        if (out.statements.size() == 1) {
            // One statement gets every parameter, as a read does (the server checks them).
            out.steps.push_back(Step::command(out.statements[0], out.values, 0));
        } else {
            std::size_t highest = 0;
            for (const auto& st : c.statements) highest = std::max(highest, st.max_param());
            if (highest < out.values.size()) {
                return Refusal{"the write has " + std::to_string(out.values.size()) +
                                   " parameters but its statements use only $1..$" + std::to_string(highest),
                               ""};
            }
            out.types.resize(out.statements.size());
            for (std::size_t i = 0; i < out.statements.size(); ++i) {
                const auto& st = c.statements[i];
                const std::size_t k = st.max_param();
                // $n the statement skips still has to be bound: give it type text.
                if (std::find(st.referenced.begin(), st.referenced.end(), false) != st.referenced.end()) {
                    out.types[i].resize(k);
                    for (std::size_t n = 0; n < k; ++n) out.types[i][n] = st.referenced[n] ? 0 : kTextOid;
                }
                out.steps.push_back(Step::command(out.statements[i], std::span<const char* const>(out.values.data(), k),
                                                  i, out.types[i]));
            }
        }
    }
    // Rows a write returns are those of its last statement that returned any;
    // only the last statement's can stream (earlier ones may still be replaced).
    out.steps.back().single_row = true;
    if (!job.invalidate_keys.empty()) {
        // The durable invalidation record, in the write's own implicit
        // transaction (before its Sync): it commits exactly when the write
        // does, and if it fails (table missing, no privilege) the Sync rolls
        // the whole write back. Last, so that its `at` default is the time
        // right before the commit, and its rows never replace the write's.
        out.invalidation_keys = text_array_literal(job.invalidate_keys);
        out.invalidation_values = {out.invalidation_keys.c_str(), job.origin.c_str()};
        out.steps.push_back(
            Step::command(kInvalidationInsertSql, out.invalidation_values, kInvalidationTag, kInvalidationTypes));
    }
    // One implicit transaction, then the LSN in the next one (ENVIRONMENT.md:
    // never in the same transaction as the write).
    out.steps.push_back(Step::sync());
    out.steps.push_back(Step::command(kWriteLsnSql, {}, kLsnTag));
    out.steps.push_back(Step::sync());
    return std::nullopt;
}

}  // namespace

std::string invalidation_failure_message(const std::string& sqlstate, const std::string& server_message) {
    std::string what;
    if (sqlstate == "42P01" || sqlstate == "3F000") {
        what =
            "the table regiond.invalidations does not exist: create it on the primary with scripts/schema.sql "
            "(psql -d DATABASE -v app_role=ROLE -f scripts/schema.sql)";
    } else if (sqlstate == "42501") {
        what =
            "the application role may not insert into regiond.invalidations: scripts/schema.sql grants it "
            "(psql -d DATABASE -v app_role=ROLE -f scripts/schema.sql)";
    } else if (sqlstate == "42703" || sqlstate == "42804") {
        what = "regiond.invalidations does not have the columns regiond expects: apply scripts/schema.sql";
    } else {
        what = "the insert into regiond.invalidations failed";
    }
    return "the write was rolled back: it asked for cache invalidation and its invalidation record could not be "
           "written (" +
           server_message + "); " + what;
}

std::optional<Refusal> prepare_job(const Job& job, const Classification& classification, Role role, PreparedJob& out) {
    out = PreparedJob{};
    if (auto refusal = refuse_unsendable(job)) return refusal;
    if (job.kind == Job::Kind::write && role != Role::primary) {
        return Refusal{"write sent to a replica: writes must go to the primary (routing bug in the daemon)", ""};
    }
    if (!classification.refusal.empty()) return Refusal{classification.refusal, kRefusedSqlstate};
    fill_values(job, out);
    if (job.kind == Job::Kind::read) {
        prepare_read(job, classification, role, out);
        return std::nullopt;
    }
    return prepare_write(job, classification, out);
}

}  // namespace regiond::daemon::pg

// What a job sends: its classification (StatementClassifier) turned into the
// Steps of one pipeline round trip, or a refusal answered before anything is
// sent (docs/design.md, "Session isolation").
//
//   read on the primary   select set_config('transaction_read_only', 'on', true)
//                         <the read>                                (single-row)
//                         select pg_current_wal_insert_lsn()        (its token)
//                         Sync
//   read on a replica     <the read>                                (single-row)
//                         select pg_last_wal_replay_lsn()           (its token)
//                         Sync; or, batchable, only <the read>: the batch ends
//                         with one shared replay-LSN step and sync
//                         (ConnectionSettings::batch_trailer_sql); the
//                         connection runs with default_transaction_read_only
//   read on a replica     select pg_last_wal_replay_lsn()           (the guard)
//   with Job::min_lsn     Sync
//   or Job::want_floor    <the read>; select pg_last_wal_replay_lsn(); Sync
//                         (never batched; see prepare_read for why the guard
//                         has a segment of its own)
//   read on the primary   select pg_current_wal_insert_lsn()        (the floor)
//   with Job::want_floor  Sync
//                         then as a read on the primary (never batched)
//   write                 stmt 1 .. stmt n (the last one single-row: RETURNING)
//                         [insert into regiond.invalidations ...    (invalidate_keys)]
//                         Sync     (one implicit transaction)
//                         select pg_current_wal_insert_lsn()
//                         Sync
//   changes_session       DISCARD ALL; Sync right behind (Connection::send)
//
// The read-only prefix is a first command of the read's own implicit
// transaction rather than BEGIN READ ONLY ... COMMIT: a failed read inside
// BEGIN leaves the connection INERROR past the Sync (the next segment fails
// with 25P02), while an implicit transaction is rolled back by the Sync. After
// the prefix, SET TRANSACTION READ WRITE fails with 25001, so a write sent as a
// read fails with 25006 and changes nothing.
#pragma once

#include <libpq-fe.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "daemon/pg/connection.hpp"
#include "daemon/pg/endpoint.hpp"
#include "daemon/pg/statement_classifier.hpp"

namespace regiond::daemon::pg {

/// Result tags beyond the statement indexes of a write.
inline constexpr std::size_t kLsnTag = static_cast<std::size_t>(-1);
inline constexpr std::size_t kReadOnlyTag = static_cast<std::size_t>(-2);
/// The replay LSN read before a replica read with Job::min_lsn or want_floor.
inline constexpr std::size_t kGuardTag = static_cast<std::size_t>(-3);
/// The insert LSN read before a primary read with Job::want_floor.
inline constexpr std::size_t kFloorTag = static_cast<std::size_t>(-4);
/// A write's invalidation row (Job::invalidate_keys).
inline constexpr std::size_t kInvalidationTag = static_cast<std::size_t>(-5);

/// The durable invalidation record a write with keys appends to its own
/// transaction ($1 text[] keys, $2 text origin). scripts/schema.sql creates
/// the table. Its default columns (xid, at) are evaluated by this statement,
/// the last of the transaction: `at` precedes the commit by the commit alone.
inline constexpr const char* kInvalidationInsertSql =
    "insert into regiond.invalidations (keys, origin) values ($1::text[], $2::text)";

/// A replica's replay position: the guard, a replica read's token, a batch's
/// shared token step.
inline constexpr const char* kReplayLsnSql = "select pg_last_wal_replay_lsn()";

/// SQLSTATE of a request refused by the classifier (transaction control,
/// session state, COPY, several statements in a read): feature_not_supported.
inline constexpr const char* kRefusedSqlstate = "0A000";

/// The steps of one job; Steps point into `statements`, `values` and `types`,
/// so a PreparedJob must not be copied (move it only as a whole, before use).
struct PreparedJob {
    std::vector<std::string> statements;  ///< a write's statements ([0]: the whole text otherwise)
    std::vector<const char*> values;
    std::vector<std::vector<Oid>> types;  ///< per statement (empty: all inferred)
    std::vector<Step> steps;
    bool reset_after = false;  ///< changes_session: DISCARD ALL follows
    bool batchable = false;    ///< a plain read that may share a replica batch
    bool guarded = false;      ///< a replica read with Job::min_lsn or want_floor: its guard step comes first
    /// A write with Job::invalidate_keys: the keys as a text[] literal, and the
    /// insert's parameter values (pointing into it and into Job::origin).
    std::string invalidation_keys;
    std::vector<const char*> invalidation_values;
    /// Steps of a batched send: the read alone (its token comes from the
    /// batch's shared LSN step, its sync is the batch's).
    std::span<const Step> batch_steps() const { return {steps.data(), 1}; }
};

struct Refusal {
    std::string message;
    std::string sqlstate;  ///< "" or 5 characters
};

/// The answer to a write whose invalidation insert failed (it was rolled
/// back): names the table and how to create or grant it.
std::string invalidation_failure_message(const std::string& sqlstate, const std::string& server_message);

/// Builds the steps of `job` for an endpoint of `role`; a refusal when it must
/// not be sent. `classification` is the classifier's verdict on job.sql.
/// `job` must stay where it is while the steps are used (they point into it).
std::optional<Refusal> prepare_job(const Job& job, const Classification& classification, Role role, PreparedJob& out);

}  // namespace regiond::daemon::pg

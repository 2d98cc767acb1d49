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
//                         <the read>; select pg_last_wal_replay_lsn(); Sync
//                         (never batched; see prepare_read for why the guard
//                         has a segment of its own)
//   write                 stmt 1 .. stmt n (the last one single-row: RETURNING)
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
/// The replay LSN read before a replica read with Job::min_lsn.
inline constexpr std::size_t kGuardTag = static_cast<std::size_t>(-3);

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
    bool guarded = false;      ///< a replica read with Job::min_lsn: its guard step comes first
    /// Steps of a batched send: the read alone (its token comes from the
    /// batch's shared LSN step, its sync is the batch's).
    std::span<const Step> batch_steps() const { return {steps.data(), 1}; }
};

struct Refusal {
    std::string message;
    std::string sqlstate;  ///< "" or 5 characters
};

/// Builds the steps of `job` for an endpoint of `role`; a refusal when it must
/// not be sent. `classification` is the classifier's verdict on job.sql.
std::optional<Refusal> prepare_job(const Job& job, const Classification& classification, Role role, PreparedJob& out);

}  // namespace regiond::daemon::pg

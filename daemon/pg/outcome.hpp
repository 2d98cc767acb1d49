// Building Outcomes: rows of a PGresult, or an error, encoded as response chunks
// with shm::ResponseEncoder (the encoding that travels in the response rings).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/pg/endpoint.hpp"

namespace regiond::daemon::pg {

struct SqlError {
    std::string sqlstate;  ///< 5 characters, or "" when the server gave none
    std::string message;   ///< primary message (+ "; DETAIL: ..." + "; HINT: ...")
};

/// The error of a failed result (PG_DIAG_* fields; falls back to libpq's text).
SqlError sql_error_of(const PGresult& result);

/// An error response. `sqlstate` must be "" or 5 characters; `route_reason`
/// goes into the head (Job::route_reason).
Outcome error_outcome(std::string_view served_by, std::string_view message, std::string_view sqlstate,
                      bool retry_elsewhere, std::size_t max_chunk_bytes, std::string_view route_reason = {});

/// A successful response with the rows and column names of `rows` (null: no
/// columns, no rows). A row too large for one chunk turns it into an error.
Outcome rows_outcome(const PGresult* rows, std::string_view served_by, std::string_view token, std::int64_t affected,
                     std::size_t max_chunk_bytes);

}  // namespace regiond::daemon::pg

#include "daemon/pg/outcome.hpp"

#include <optional>
#include <vector>

#include "daemon/pg/connection.hpp"

namespace regiond::daemon::pg {
namespace {

std::vector<std::byte> copy_chunk(std::span<const std::byte> chunk) {
    return std::vector<std::byte>(chunk.begin(), chunk.end());
}

}  // namespace

SqlError sql_error_of(const PGresult& result) {
    SqlError e;
    const char* state = PQresultErrorField(&result, PG_DIAG_SQLSTATE);
    if (state != nullptr && std::string_view(state).size() == 5) e.sqlstate = state;
    const char* primary = PQresultErrorField(&result, PG_DIAG_MESSAGE_PRIMARY);
    e.message = primary != nullptr ? primary : clean_libpq_message(PQresultErrorMessage(&result));
    if (e.message.empty()) e.message = std::string("query failed: ") + PQresStatus(PQresultStatus(&result));
    if (const char* detail = PQresultErrorField(&result, PG_DIAG_MESSAGE_DETAIL)) {
        e.message += "; DETAIL: ";
        e.message += detail;
    }
    if (const char* hint = PQresultErrorField(&result, PG_DIAG_MESSAGE_HINT)) {
        e.message += "; HINT: ";
        e.message += hint;
    }
    return e;
}

Outcome error_outcome(std::string_view served_by, std::string_view message, std::string_view sqlstate,
                      bool retry_elsewhere, std::size_t max_chunk_bytes, std::string_view route_reason) {
    Outcome out;
    out.ok = false;
    out.retry_elsewhere = retry_elsewhere;
    shm::ResponseEncoder enc(max_chunk_bytes);
    shm::ResponseHeadView head;
    head.status = shm::Status::error;
    head.sqlstate = sqlstate.size() == 5 ? sqlstate : std::string_view{};
    head.served_by = served_by;
    head.route_reason = route_reason;
    // The head must fit in one chunk: cut an enormous message rather than fail.
    const std::size_t fixed = 256 + served_by.size() + route_reason.size();
    const std::size_t room = enc.max_chunk() > fixed ? enc.max_chunk() - fixed : 0;
    head.error = message.substr(0, room);
    if (enc.begin(head) != shm::CodecError::ok) {
        head.error = "error message too large to encode";
        head.served_by = {};
        head.route_reason = {};
        enc.begin(head);
    }
    out.chunks.push_back(copy_chunk(enc.take_chunk(true)));
    return out;
}

Outcome rows_outcome(const PGresult* rows, std::string_view served_by, std::string_view token, std::int64_t affected,
                     std::size_t max_chunk_bytes) {
    Outcome out;
    shm::ResponseEncoder enc(max_chunk_bytes);
    const int ncols = rows != nullptr ? PQnfields(rows) : 0;
    const int nrows = rows != nullptr ? PQntuples(rows) : 0;
    std::vector<std::string_view> names;
    names.reserve(static_cast<std::size_t>(ncols));
    for (int c = 0; c < ncols; ++c) names.emplace_back(PQfname(rows, c));
    shm::ResponseHeadView head;
    head.status = shm::Status::ok;
    head.served_by = served_by;
    head.token = token;
    head.affected = affected;
    head.columns = names;
    if (auto e = enc.begin(head); e != shm::CodecError::ok) {
        return error_outcome(
            served_by,
            std::string("the result's column names do not fit in a response chunk (") + shm::to_string(e) + ")", "",
            false, max_chunk_bytes);
    }
    std::vector<std::optional<std::string_view>> values(static_cast<std::size_t>(ncols));
    for (int r = 0; r < nrows; ++r) {
        for (int c = 0; c < ncols; ++c) {
            if (PQgetisnull(rows, r, c) != 0) {
                values[static_cast<std::size_t>(c)] = std::nullopt;
            } else {
                values[static_cast<std::size_t>(c)] =
                    std::string_view(PQgetvalue(rows, r, c), static_cast<std::size_t>(PQgetlength(rows, r, c)));
            }
        }
        auto e = enc.add_row(values);
        if (e == shm::CodecError::chunk_full) {
            out.chunks.push_back(copy_chunk(enc.take_chunk(false)));
            e = enc.add_row(values);
        }
        if (e != shm::CodecError::ok) {
            return error_outcome(served_by,
                                 "row " + std::to_string(r + 1) +
                                     " of the result does not fit in a response chunk of " +
                                     std::to_string(enc.max_chunk()) + " bytes (" + shm::to_string(e) +
                                     "): select fewer or smaller columns",
                                 "", false, max_chunk_bytes);
        }
    }
    out.chunks.push_back(copy_chunk(enc.take_chunk(true)));
    out.ok = true;
    return out;
}

}  // namespace regiond::daemon::pg

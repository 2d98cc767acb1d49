// A small RAII libpq session for the integration tests: they talk to the real
// servers directly to check what the cluster (and later regiond) did.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace regiond::testing {

class PgSession {
public:
    explicit PgSession(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str()), &PQfinish) {
        if (PQstatus(conn_.get()) != CONNECTION_OK) {
            throw std::runtime_error(std::string("connect failed: ") + PQerrorMessage(conn_.get()));
        }
    }

    // Runs SQL and returns the first column of the first row ("" when no rows).
    std::string scalar(const std::string& sql) {
        std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(conn_.get(), sql.c_str()), &PQclear);
        auto st = PQresultStatus(r.get());
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            throw std::runtime_error("query failed: " + sql + ": " + PQerrorMessage(conn_.get()));
        }
        if (st == PGRES_COMMAND_OK || PQntuples(r.get()) == 0) return "";
        return PQgetisnull(r.get(), 0, 0) ? "" : PQgetvalue(r.get(), 0, 0);
    }

    void exec(const std::string& sql) { (void)scalar(sql); }

private:
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
};

// Polls cond every millisecond until it holds or the deadline passes.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return cond();
}

}  // namespace regiond::testing

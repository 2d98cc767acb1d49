// Splitting a write's SQL into its statements, with libpg_query (PostgreSQL's own
// scanner and grammar, so semicolons inside strings, comments, dollar quotes and
// CREATE RULE bodies are handled as the server would).
//
// A write may carry several statements; regiond sends each one separately in the
// same pipeline segment (one implicit transaction), which needs, per statement:
//   - its text,
//   - which parameters $n it references (it is sent $1..$k, k = the highest one;
//     parameters it does not reference get type text so the server can bind them),
//   - whether it is explicit transaction control (BEGIN, COMMIT, ...), which a
//     write must not contain because the daemon makes the transaction itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::daemon::pg {

struct Statement {
    std::string sql;
    /// referenced[n-1] is true when the statement uses $n; size() = highest $n.
    std::vector<bool> referenced;
    /// The keyword(s) of transaction control ("BEGIN", "COMMIT", "PREPARE
    /// TRANSACTION", ...) when the statement is one, else "".
    std::string transaction_control;

    std::size_t max_param() const { return referenced.size(); }
};

struct SplitResult {
    /// false when the parser rejected the text (a syntax error): `error` says why
    /// and `statements` is empty. The caller may send the text unsplit so that the
    /// server reports the error with its SQLSTATE.
    bool ok = false;
    std::string error;
    std::vector<Statement> statements;
};

SplitResult split_statements(std::string_view sql);

/// The highest $n referenced and which ones, for one statement (the scanner only:
/// "$1" inside a string, a comment or a dollar-quoted body does not count).
/// nullopt when the scanner fails.
std::optional<std::vector<bool>> referenced_params(std::string_view statement);

}  // namespace regiond::daemon::pg

// The statement table of docs/isolation.md, applied to the facts that
// statement_analysis.cpp reads from PostgreSQL's parse tree.
#include "daemon/pg/statement_classifier.hpp"

#include "daemon/pg/statement_analysis.hpp"

namespace regiond::daemon::pg {
namespace {

using detail::AnalyzedStatement;
using detail::StatementFacts;

constexpr std::int64_t kCursorOptHold = 0x0020;  // PostgreSQL's CURSOR_OPT_HOLD

struct Verdict {
    std::string refusal;
    bool changes_session = false;
    bool plain_query = false;
};

std::string set_refusal(const StatementFacts& f, Operation op) {
    const std::string& name = f.name;
    if (f.kind == "VAR_RESET" || f.kind == "VAR_RESET_ALL") {
        const std::string what = f.kind == "VAR_RESET_ALL" ? "RESET ALL" : "RESET " + name;
        return what +
               " would change the pooled connection's session for later requests: every request already starts "
               "with the configured settings; for this request only, use SET LOCAL " +
               (name.empty() ? std::string("<name>") : name) + " TO DEFAULT";
    }
    if (name == "client_encoding" || name == "standard_conforming_strings" || name == "backslash_quote") {
        return "SET " + name +
               " would make the server read the statements after it differently from regiond, which checks every "
               "statement as UTF-8 with standard_conforming_strings on: leave it at its default (use E'...' "
               "strings or convert_from()/convert_to() for other encodings)";
    }
    if (f.kind == "VAR_SET_MULTI" && name == "session characteristics") {
        return "SET SESSION CHARACTERISTICS would change every later transaction of the pooled connection: use SET "
               "TRANSACTION in a write for its own transaction";
    }
    if (f.kind == "VAR_SET_MULTI" && (name == "transaction" || name == "transaction snapshot")) {
        if (op == Operation::read)
            return "SET TRANSACTION in a read could lift its read-only mode: a read always runs read-only; send it "
                   "as a write to choose the transaction's characteristics";
        return "";
    }
    if (!f.is_local) {
        if (name == "role")
            return "SET ROLE would change the role of the pooled connection for later requests: use SET LOCAL ROLE, "
                   "which lasts for this request only";
        if (name == "session_authorization")
            return "SET SESSION AUTHORIZATION would change the user of the pooled connection for later requests: "
                   "use SET LOCAL SESSION AUTHORIZATION, which lasts for this request only";
        return "SET " + name + " (a session setting) would outlive the request on a pooled connection: use SET LOCAL " +
               name + " or set_config('" + name + "', ..., true), which last for this request only";
    }
    if (op == Operation::read && (name.rfind("transaction_", 0) == 0 || name.rfind("default_transaction_", 0) == 0))
        return "SET LOCAL " + name +
               " in a read could lift its read-only mode: a read always runs read-only; send it as a write";
    return "";
}

Verdict judge(const AnalyzedStatement& st, Operation op) {
    const StatementFacts& f = st.facts;
    const std::string& s = f.subject;
    const bool read = op == Operation::read;
    Verdict v;

    if (s == "TransactionStmt") {
        v.refusal = st.tag +
                    " is transaction control: regiond runs every request as its own transaction (the statements of "
                    "a write together, committed when they all succeed); send the statements without "
                    "BEGIN/COMMIT/ROLLBACK/SAVEPOINT";
    } else if (s == "VariableSetStmt") {
        v.refusal = set_refusal(f, op);
    } else if (s == "PrepareStmt") {
        v.refusal =
            "PREPARE would leave a prepared statement on the pooled connection: regiond prepares statements itself; "
            "send the statement with its parameters ($1, $2, ...) instead";
    } else if (s == "ExecuteStmt" || (f.flags & detail::kExecute) != 0) {
        v.refusal =
            "EXECUTE runs a prepared statement of the pooled connection, and there are none of yours: send the "
            "statement itself with its parameters ($1, $2, ...)";
    } else if (s == "DeallocateStmt") {
        v.refusal =
            "DEALLOCATE would drop the statements regiond prepares on the pooled connection: regiond manages "
            "prepared statements itself, there is nothing of yours to deallocate";
    } else if (s == "ListenStmt") {
        v.refusal =
            "LISTEN is not supported through regiond: notifications are never delivered to its clients; listen on a "
            "direct connection to PostgreSQL (NOTIFY and UNLISTEN are allowed)";
    } else if (s == "DeclareCursorStmt" && (f.options & kCursorOptHold) != 0) {
        v.refusal =
            "DECLARE ... WITH HOLD would leave the cursor open on the pooled connection after the request: declare "
            "it without WITH HOLD and FETCH in the same write, or run the query itself";
    } else if (s == "DiscardStmt") {
        v.refusal =
            "DISCARD is not needed: regiond resets pooled connections itself, every request starts on a clean "
            "session";
    } else if (s == "LoadStmt") {
        v.refusal =
            "LOAD would change the server process of the pooled connection for every later request: load "
            "libraries with shared_preload_libraries or session_preload_libraries on the server";
    } else if (s == "CopyStmt") {
        v.refusal =
            "COPY is not supported through regiond: read rows with SELECT and write them with INSERT ... VALUES "
            "(or INSERT ... SELECT); use a direct connection to PostgreSQL for bulk COPY";
    }
    if (v.refusal.empty() && (f.flags & detail::kLexingSettingCall) != 0) {
        v.refusal = "set_config('" + f.call_setting +
                    "', ...) would make the server read later statements differently from regiond, which checks "
                    "every statement as UTF-8 with standard_conforming_strings on: leave it at its default";
    }
    if (v.refusal.empty() && read && (f.flags & detail::kReadOnlySettingCall) != 0) {
        v.refusal = "set_config('" + f.call_setting +
                    "', ...) in a read could lift its read-only mode: a read always runs read-only; send it as a "
                    "write";
    }
    if (v.refusal.empty() && read && (f.flags & detail::kSequencePeek) != 0) {
        v.refusal = f.call_name +
                    "() in a read can only show a sequence value that another request drew on this pooled "
                    "connection: call it in the same write as the nextval() or INSERT it follows";
    }

    const bool select = f.node == "SelectStmt";
    v.plain_query = select && (f.flags & (detail::kAnyCall | detail::kInto | detail::kLockingClause |
                                          detail::kModifyingNested | detail::kExecute | detail::kTempRelation)) == 0;

    std::uint32_t session = detail::kSetConfigSession | detail::kSetConfigAnyName | detail::kAdvisorySession |
                            detail::kSessionStateCall | detail::kSearchPathTemp;
    bool changes = (f.flags & session) != 0;
    changes = changes || ((f.flags & detail::kTempRelation) != 0 && (f.flags & detail::kOnCommitDrop) == 0);
    changes = changes || (!v.plain_query && (f.flags & detail::kPgTempName) != 0);
    changes = changes || s == "DoStmt";
    v.changes_session = changes;
    return v;
}

}  // namespace

Classification classify(std::string_view sql, Operation op) {
    Classification out;
    detail::Analysis analysis = detail::analyze(sql);
    switch (analysis.status) {
        case detail::Analysis::Status::ok: break;
        case detail::Analysis::Status::syntax_error:
            // The server's parser is the same grammar: it rejects the text too,
            // with its SQLSTATE and position, and runs nothing.
            out.parse_error = std::move(analysis.error);
            return out;
        case detail::Analysis::Status::bad_input:
            // Text regiond cannot check (it would reach the server unchecked):
            // refused, nothing is sent.
            out.parsed = true;
            out.refusal = "regiond cannot check this SQL text: " + analysis.error;
            return out;
    }
    out.parsed = true;
    const std::size_t n = analysis.statements.size();
    if (n == 0) {
        out.refusal = "the request contains no SQL statement";
        return out;
    }
    for (std::size_t i = 0; i < n; ++i) {
        AnalyzedStatement& a = analysis.statements[i];
        Verdict v = judge(a, op);
        StatementClass st;
        st.sql = std::move(a.sql);
        st.referenced = std::move(a.referenced);
        st.tag = std::move(a.tag);
        st.refusal = std::move(v.refusal);
        st.changes_session = v.changes_session;
        st.plain_query = v.plain_query;
        if (out.refusal.empty() && !st.refusal.empty())
            out.refusal = n > 1 ? "statement " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + st.refusal
                                : st.refusal;
        out.changes_session = out.changes_session || st.changes_session;
        out.statements.push_back(std::move(st));
    }
    if (out.refusal.empty() && op == Operation::read && n > 1)
        out.refusal = "a read is one statement (this one has " + std::to_string(n) +
                      "): send several statements as a write, where they run as one transaction";
    out.batchable = out.refusal.empty() && n == 1 && out.statements[0].plain_query;
    return out;
}

// ---- the cache ---------------------------------------------------------------

StatementClassifier::StatementClassifier(std::size_t capacity, std::size_t max_bytes)
    : capacity_(capacity == 0 ? 1 : capacity), max_bytes_(max_bytes) {}

std::size_t StatementClassifier::cost(const Entry& e) {
    std::size_t bytes = sizeof(Entry) + e.sql.size() + sizeof(Classification);
    for (const auto& st : e.value->statements) bytes += sizeof(StatementClass) + st.sql.size() + st.refusal.size();
    return bytes + e.value->refusal.size() + e.value->parse_error.size();
}

std::shared_ptr<const Classification> StatementClassifier::find(std::string_view sql, Operation op) {
    auto& index = index_[op == Operation::read ? 0 : 1];
    const auto it = index.find(sql);
    if (it == index.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
}

std::shared_ptr<const Classification> StatementClassifier::classify(std::string_view sql, Operation op) {
    if (auto hit = find(sql, op)) return hit;
    auto value = std::make_shared<const Classification>(pg::classify(sql, op));
    remember(sql, op, value);
    return value;
}

void StatementClassifier::remember(std::string_view sql, Operation op, std::shared_ptr<const Classification> value) {
    if (sql.size() > kMaxCachedText) return;  // classified every time: see kMaxCachedText
    auto& index = index_[op == Operation::read ? 0 : 1];
    if (index.count(sql) != 0) return;  // classified twice meanwhile: the first stays
    lru_.push_front(Entry{std::string(sql), op, std::move(value), 0});
    lru_.front().bytes = cost(lru_.front());
    bytes_ += lru_.front().bytes;
    index.emplace(std::string_view(lru_.front().sql), lru_.begin());
    while (lru_.size() > capacity_ || (bytes_ > max_bytes_ && lru_.size() > 1)) {
        const Entry& last = lru_.back();
        index_[last.op == Operation::read ? 0 : 1].erase(std::string_view(last.sql));
        bytes_ -= last.bytes;
        lru_.pop_back();
    }
}

}  // namespace regiond::daemon::pg

// The facts about each statement of a SQL text that session isolation needs,
// read from PostgreSQL's own parse tree (libpg_query): what kind of statement it
// is, and what it calls or creates anywhere in its tree. Independent of the
// operation; statement_classifier.cpp applies the per-operation table to these
// facts, and statements.cpp splits writes with them (one copy of the splitting).
//
// Why the JSON parse tree and not the protobuf one: libpg_query 15-4.0.0 writes
// JSON about 3x faster than protobuf (3 us vs 12 us for a one-table SELECT,
// measured here) with a third of the stack depth per tree level, and JSON names
// every node type in the tree itself ({"FuncCall": {...}}), so a generic walker
// finds every function call without a copy of pg_query.proto's 250 message
// layouts (a protobuf walker cannot tell a sub-message from a string without
// them). The walk is a flat loop over JsonReader events with explicit stacks:
// no recursion, and the depth is bounded (kMaxJsonDepth).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::daemon::pg::detail {

/// Bits of StatementFacts::flags: what the statement's tree holds anywhere
/// (target lists, WHERE, subqueries, CTEs, FROM functions, arguments, ...).
enum Fact : std::uint32_t {
    kSetConfigSession = 1u << 0,      ///< set_config(n, v, x) with x not a literal true: a session setting
    kSetConfigLocal = 1u << 1,        ///< set_config(n, v, true): transaction-scoped
    kSetConfigAnyName = 1u << 2,      ///< set_config whose name is not a literal: it could set anything
    kAdvisorySession = 1u << 3,       ///< pg_advisory_lock*, pg_try_advisory_lock* (held by the session)
    kAdvisoryXact = 1u << 4,          ///< pg_advisory_xact_lock*, pg_try_advisory_xact_lock*
    kSideEffectCall = 1u << 5,        ///< pg_notify, advisory unlocks, nextval/setval, backend signals, ...
    kSessionStateCall = 1u << 6,      ///< other calls known to keep session state (dblink_connect)
    kLockingClause = 1u << 7,         ///< FOR UPDATE/SHARE/...
    kInto = 1u << 8,                  ///< SELECT ... INTO
    kModifyingNested = 1u << 9,       ///< INSERT/UPDATE/DELETE/MERGE inside another statement (a CTE)
    kTempRelation = 1u << 10,         ///< CREATE TEMP ... / SELECT INTO TEMP
    kOnCommitDrop = 1u << 11,         ///< ON COMMIT DROP
    kPgTempName = 1u << 12,           ///< a name qualified with pg_temp (an object in the temp schema)
    kSearchPathTemp = 1u << 13,       ///< SET args or set_config('search_path', ...) that may put pg_temp first
    kExecute = 1u << 14,              ///< EXECUTE of a prepared statement, anywhere (e.g. CREATE TABLE AS EXECUTE)
    kReadOnlySettingCall = 1u << 15,  ///< set_config('transaction_*' / 'default_transaction_*', ...)
    kLexingSettingCall = 1u << 16,    ///< set_config of a setting that changes how SQL text is read
    kSequencePeek = 1u << 17,         ///< currval()/lastval(): the session's last sequence values
};

/// Calls that make a query more than "its result": never batched.
inline constexpr std::uint32_t kAnyCall = kSetConfigSession | kSetConfigLocal | kSetConfigAnyName | kAdvisorySession |
                                          kAdvisoryXact | kSideEffectCall | kSessionStateCall | kReadOnlySettingCall |
                                          kLexingSettingCall | kSequencePeek;

struct StatementFacts {
    std::string node;          ///< the statement's node type ("SelectStmt", "ExplainStmt", ...)
    std::string subject;       ///< the node the rules apply to: EXPLAIN's statement, else == node
    std::string kind;          ///< the subject's "kind" field (TransactionStmt, VariableSetStmt)
    std::string name;          ///< the subject's "name" field (VariableSetStmt), lower case
    bool is_local = false;     ///< VariableSetStmt: SET LOCAL
    std::int64_t options = 0;  ///< DeclareCursorStmt: CURSOR_OPT_* bits
    std::uint32_t flags = 0;   ///< Fact bits
    std::string call_setting;  ///< the first set_config name behind kReadOnlySettingCall / kLexingSettingCall
    std::string call_name;     ///< the first function behind kSequencePeek
};

struct AnalyzedStatement {
    std::string sql;               ///< the statement's text, trimmed
    std::vector<bool> referenced;  ///< referenced[n-1]: uses $n (scanner: not inside strings/comments)
    std::string tag;               ///< the command as written: "SELECT", "BEGIN", "END", "SET", ...
    StatementFacts facts;
};

struct Analysis {
    enum class Status : std::uint8_t {
        ok,
        syntax_error,  ///< PostgreSQL's scanner or grammar rejects the text: the server would too
        bad_input,     ///< regiond cannot read it (NUL byte, bad $n, nested too deeply, out of memory)
    };
    Status status = Status::ok;
    std::string error;  ///< when not ok
    std::vector<AnalyzedStatement> statements;
};

/// Parse trees nested deeper than this (JSON containers) are not walked:
/// Analysis::Status::bad_input. About 30k expression levels; PostgreSQL's own
/// analysis stops far earlier (`select 1+1+...` of 5000 levels: "stack depth
/// limit exceeded" with the default max_stack_depth of 2 MB, measured).
inline constexpr std::size_t kMaxJsonDepth = 60000;

/// The highest $n the protocol allows.
inline constexpr std::size_t kMaxParamNumber = 65535;

/// Analyzes `sql`. Never throws except std::bad_alloc; never crashes on any
/// input (see sql_parser.hpp for the stack).
Analysis analyze(std::string_view sql);

}  // namespace regiond::daemon::pg::detail

#include "daemon/pg/statement_analysis.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

#include "daemon/pg/json_reader.hpp"
#include "daemon/pg/sql_parser.hpp"

namespace regiond::daemon::pg::detail {
namespace {

// ---- names -------------------------------------------------------------------

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool is_pg_temp(std::string_view schema) {
    const std::string s = lower(schema);
    return s == "pg_temp" || starts_with(s, "pg_temp_");
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// PostgreSQL's boolin(): true for the unambiguous spellings of true.
bool text_is_true(std::string_view text) {
    const std::string s = lower(trim(text));
    return s == "t" || s == "tr" || s == "tru" || s == "true" || s == "y" || s == "ye" || s == "yes" || s == "on" ||
           s == "1";
}

// Settings that change how the server reads the statements after them: regiond
// classifies every statement as UTF-8 with standard_conforming_strings on.
bool is_lexing_setting(std::string_view name) {
    return name == "client_encoding" || name == "standard_conforming_strings" || name == "backslash_quote";
}

bool is_transaction_setting(std::string_view name) {
    return starts_with(name, "transaction_") || starts_with(name, "default_transaction_");
}

// ---- the parse tree's vocabulary ---------------------------------------------

enum class NodeKind : std::uint8_t {
    other,
    string,
    a_const,
    func_call,
    locking_clause,
    execute_stmt,
    modifying_stmt,  // InsertStmt, UpdateStmt, DeleteStmt, MergeStmt
    explain_stmt,
    variable_set_stmt,
};

NodeKind node_kind(std::string_view type) {
    if (type == "String") return NodeKind::string;
    if (type == "A_Const") return NodeKind::a_const;
    if (type == "FuncCall") return NodeKind::func_call;
    if (type == "LockingClause") return NodeKind::locking_clause;
    if (type == "ExecuteStmt") return NodeKind::execute_stmt;
    if (type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt" || type == "MergeStmt")
        return NodeKind::modifying_stmt;
    if (type == "ExplainStmt") return NodeKind::explain_stmt;
    if (type == "VariableSetStmt") return NodeKind::variable_set_stmt;
    return NodeKind::other;
}

// The fields the walk looks at; every other key is Field::other.
enum class Field : std::uint8_t { other, funcname, args, query, sval, boolval, stmts, stmt };

Field field_of(std::string_view key) {
    if (key == "funcname") return Field::funcname;
    if (key == "args") return Field::args;
    if (key == "query") return Field::query;
    if (key == "sval") return Field::sval;
    if (key == "boolval") return Field::boolval;
    if (key == "stmts") return Field::stmts;
    if (key == "stmt") return Field::stmt;
    return Field::other;
}

enum class Literal : std::uint8_t { none, string, boolean_true, boolean_false, other_constant };

// ---- the walk ----------------------------------------------------------------

struct Container {  // an open JSON object or array
    bool is_array = false;
    bool raw_stmt = false;        // an element of "stmts": {"stmt": ..., "stmt_location": n, "stmt_len": n}
    Field field = Field::other;   // the key it sits under (an array element: the array's key)
    std::int32_t index = -1;      // its position in the enclosing array, or -1
    std::int32_t node = -1;       // the innermost node whose body holds it (index into Walk::nodes_)
    std::uint32_t rel_depth = 0;  // 0 for a node's body, +1 per container inside it
    std::int32_t next_index = 0;  // arrays: the position of the next element
};

struct Node {  // an open node body: {"Type": {<body>}}
    NodeKind kind = NodeKind::other;
    Field field = Field::other;  // where it hangs in its parent node
    std::int32_t index = -1;     // its position in that field's list, or -1
    bool subject = false;        // the statement node the rules look at
    Literal literal = Literal::none;
    std::string text;  // String: sval; A_Const: the string constant
};

struct Call {                       // an open FuncCall
    std::vector<std::string> name;  // its qualified name, part by part
    std::int32_t nargs = 0;
    Literal arg_literal[3] = {Literal::none, Literal::none, Literal::none};
    std::string arg_text[3];
};

struct RawStatement {
    bool has_node = false;
    std::int64_t location = 0;
    std::int64_t length = 0;  // 0: to the end of the text
    StatementFacts facts;
};

class Walk {
public:
    explicit Walk(std::string_view json) : reader_(json, kMaxJsonDepth) {}

    // Walks the whole tree; false with error() on malformed or too deep JSON.
    bool run() {
        for (;;) {
            const auto e = reader_.next();
            switch (e) {
                case JsonReader::Event::end: return true;
                case JsonReader::Event::error: return false;
                case JsonReader::Event::key: on_key(reader_.value()); break;
                case JsonReader::Event::object_begin: open(false); break;
                case JsonReader::Event::array_begin: open(true); break;
                case JsonReader::Event::object_end:
                case JsonReader::Event::array_end: close(); break;
                default: on_scalar(e, reader_.value()); break;
            }
        }
    }

    const std::string& error() const { return reader_.error(); }
    bool too_deep() const { return reader_.too_deep(); }
    std::vector<RawStatement>& statements() { return statements_; }

private:
    StatementFacts& facts() { return statements_.back().facts; }
    bool in_statement() const { return in_raw_stmt_ && !statements_.empty(); }

    void on_key(std::string_view key) {
        key_.assign(key.data(), key.size());
        if (containers_.empty() || !in_statement()) return;
        const Container& c = containers_.back();
        if (c.node < 0 || c.rel_depth != 0) return;
        Node& n = nodes_[static_cast<std::size_t>(c.node)];
        if (n.kind == NodeKind::a_const) {
            // {"sval": {"sval": "..."}}, {"boolval": {"boolval": true}} ({} is false),
            // {"ival": ...}, {"fval": ...}, {"bsval": ...}, {"isnull": true}
            if (key == "sval")
                n.literal = Literal::string;
            else if (key == "boolval")
                n.literal = Literal::boolean_false;
            else if (key == "ival" || key == "fval" || key == "bsval" || key == "isnull")
                n.literal = Literal::other_constant;
        } else if (key == "intoClause") {
            facts().flags |= kInto;
        }
    }

    void open(bool is_array) {
        Container c;
        c.is_array = is_array;
        const Container* parent = containers_.empty() ? nullptr : &containers_.back();
        if (parent != nullptr) {
            c.field = parent->is_array ? parent->field : field_of(key_);
            c.index = parent->is_array ? containers_.back().next_index++ : -1;
            c.node = parent->node;
            c.rel_depth = parent->rel_depth + 1;
        }
        // Top level: {"version": n, "stmts": [ {RawStmt}, ... ]}
        if (!is_array && parent != nullptr && parent->is_array && parent->field == Field::stmts &&
            containers_.size() == 2) {
            c.raw_stmt = true;
            in_raw_stmt_ = true;
            statements_.emplace_back();
        }
        // A node: an object under a key naming its type ({"FuncCall": {...}}).
        // Node types start with a capital letter, fields never do.
        if (!is_array && parent != nullptr && !parent->is_array && !key_.empty() && key_[0] >= 'A' && key_[0] <= 'Z' &&
            in_statement()) {
            Node n;
            n.kind = node_kind(key_);
            n.field = parent->field;
            n.index = parent->index;
            begin_node(n, key_);
            nodes_.push_back(std::move(n));
            c.node = static_cast<std::int32_t>(nodes_.size() - 1);
            c.rel_depth = 0;
        }
        containers_.push_back(c);
    }

    void begin_node(Node& n, const std::string& type) {
        StatementFacts& f = facts();
        if (nodes_.empty()) {
            statements_.back().has_node = true;
            f.node = type;
            if (n.kind != NodeKind::explain_stmt) {
                n.subject = true;
                f.subject = type;
            }
        } else if (nodes_.size() == 1 && nodes_[0].kind == NodeKind::explain_stmt && n.field == Field::query) {
            n.subject = true;
            f.subject = type;
        }
        switch (n.kind) {
            case NodeKind::modifying_stmt:
                if (!n.subject) f.flags |= kModifyingNested;
                break;
            case NodeKind::locking_clause: f.flags |= kLockingClause; break;
            case NodeKind::execute_stmt: f.flags |= kExecute; break;
            case NodeKind::func_call: calls_.emplace_back(); break;
            default: break;
        }
    }

    void on_scalar(JsonReader::Event e, std::string_view value) {
        if (containers_.empty()) return;
        const Container& c = containers_.back();
        if (c.raw_stmt) {
            if (e == JsonReader::Event::number && (key_ == "stmt_location" || key_ == "stmt_len")) {
                std::int64_t v = 0;
                for (char ch : value) {
                    if (ch < '0' || ch > '9' || v > (std::int64_t{1} << 40)) {
                        v = -1;
                        break;
                    }
                    v = v * 10 + (ch - '0');
                }
                (key_ == "stmt_location" ? statements_.back().location : statements_.back().length) = v;
            }
            return;
        }
        if (!in_statement()) return;
        StatementFacts& f = facts();
        const bool is_string = e == JsonReader::Event::string;
        const std::string_view key = c.is_array ? std::string_view() : std::string_view(key_);
        // Anywhere in the tree: what CREATE ... / SELECT INTO creates.
        if (is_string) {
            if (key == "relpersistence" && value == "t") f.flags |= kTempRelation;
            if (key == "schemaname" && is_pg_temp(value)) f.flags |= kPgTempName;
            if ((key == "oncommit" || key == "onCommit") && value == "ONCOMMIT_DROP") f.flags |= kOnCommitDrop;
        }
        if (c.node < 0) return;
        Node& n = nodes_[static_cast<std::size_t>(c.node)];
        if (c.rel_depth == 0) {
            if (n.subject) {
                if (key == "kind" && is_string) f.kind = std::string(value);
                if (key == "name" && is_string) f.name = lower(value);
                if (key == "is_local" && e == JsonReader::Event::true_value) f.is_local = true;
                if (key == "options" && e == JsonReader::Event::number) {
                    std::int64_t v = 0;
                    for (char ch : value) {
                        if (ch < '0' || ch > '9' || v > (std::int64_t{1} << 40)) break;
                        v = v * 10 + (ch - '0');
                    }
                    f.options = v;
                }
            }
            if (n.kind == NodeKind::string && key == "sval" && is_string) {
                n.literal = Literal::string;
                n.text = std::string(value);
            }
        } else if (c.rel_depth == 1 && n.kind == NodeKind::a_const) {
            if (c.field == Field::sval && key == "sval" && is_string) n.text = std::string(value);
            if (c.field == Field::boolval && key == "boolval" && e == JsonReader::Event::true_value)
                n.literal = Literal::boolean_true;
        }
    }

    void close() {
        const Container c = containers_.back();
        containers_.pop_back();
        if (c.raw_stmt) {
            in_raw_stmt_ = false;
            return;
        }
        if (c.node < 0 || c.rel_depth != 0 || static_cast<std::size_t>(c.node) != nodes_.size() - 1) return;
        Node n = std::move(nodes_.back());
        nodes_.pop_back();
        end_node(n);
    }

    void end_node(const Node& n) {
        StatementFacts& f = facts();
        Node* parent = nodes_.empty() ? nullptr : &nodes_.back();
        // A call is judged, and its Call popped, before it is reported to its
        // parent: calls_.back() must then be the parent's (a call as an argument).
        if (n.kind == NodeKind::func_call && !calls_.empty()) {
            judge_call(calls_.back(), f);
            calls_.pop_back();
        }
        if (n.kind == NodeKind::string && n.index == 0 && is_pg_temp(n.text)) f.flags |= kPgTempName;
        if (parent != nullptr && parent->kind == NodeKind::func_call && !calls_.empty()) {
            Call& call = calls_.back();
            if (n.field == Field::funcname && n.kind == NodeKind::string) call.name.push_back(lower(n.text));
            if (n.field == Field::args && n.index >= 0) {
                call.nargs = std::max(call.nargs, n.index + 1);
                if (n.index < 3 && n.kind == NodeKind::a_const) {
                    call.arg_literal[n.index] = n.literal;
                    call.arg_text[n.index] = n.text;
                }
            }
        }
        // SET LOCAL search_path = pg_temp, ...: CREATE then makes temp objects.
        if (parent != nullptr && parent->kind == NodeKind::variable_set_stmt && n.field == Field::args &&
            n.kind == NodeKind::a_const && f.name == "search_path" &&
            lower(n.text).find("pg_temp") != std::string::npos)
            f.flags |= kSearchPathTemp;
    }

    static void judge_call(const Call& call, StatementFacts& f) {
        if (call.name.empty()) return;
        const std::string& name = call.name.back();
        // dblink lives in whatever schema the extension was created in.
        if (name == "dblink_connect" || name == "dblink_connect_u") {
            f.flags |= kSessionStateCall;
            return;
        }
        // A function of another schema is a user's function: its code is out of
        // sight like any other (docs/isolation.md). pg_catalog is searched first
        // unless search_path says otherwise, so unqualified names count.
        if (call.name.size() >= 2 && call.name[call.name.size() - 2] != "pg_catalog") return;
        if (name == "set_config") {
            const bool literal_name = call.nargs == 3 && call.arg_literal[0] == Literal::string;
            const bool local =
                call.nargs == 3 && (call.arg_literal[2] == Literal::boolean_true ||
                                    (call.arg_literal[2] == Literal::string && text_is_true(call.arg_text[2])));
            f.flags |= local ? kSetConfigLocal : kSetConfigSession;
            if (!literal_name) {
                f.flags |= kSetConfigAnyName;
                return;
            }
            const std::string setting = lower(trim(call.arg_text[0]));
            if (is_transaction_setting(setting) || is_lexing_setting(setting)) {
                f.flags |= is_lexing_setting(setting) ? kLexingSettingCall : kReadOnlySettingCall;
                if (f.call_setting.empty()) f.call_setting = setting;
            }
            if (setting == "search_path" && (call.arg_literal[1] != Literal::string ||
                                             lower(call.arg_text[1]).find("pg_temp") != std::string::npos))
                f.flags |= kSearchPathTemp;
            return;
        }
        if (name == "pg_advisory_lock" || name == "pg_advisory_lock_shared" || name == "pg_try_advisory_lock" ||
            name == "pg_try_advisory_lock_shared") {
            f.flags |= kAdvisorySession;
        } else if (name == "pg_advisory_xact_lock" || name == "pg_advisory_xact_lock_shared" ||
                   name == "pg_try_advisory_xact_lock" || name == "pg_try_advisory_xact_lock_shared") {
            f.flags |= kAdvisoryXact;
        } else if (name == "currval" || name == "lastval") {
            f.flags |= kSequencePeek;
            if (f.call_name.empty()) f.call_name = name;
        } else if (name == "pg_advisory_unlock" || name == "pg_advisory_unlock_shared" ||
                   name == "pg_advisory_unlock_all" || name == "pg_notify" || name == "nextval" || name == "setval" ||
                   name == "pg_terminate_backend" || name == "pg_cancel_backend" || name == "pg_export_snapshot") {
            f.flags |= kSideEffectCall;
        }
    }

    JsonReader reader_;
    std::string key_;  // the last key read
    std::vector<Container> containers_;
    std::vector<Node> nodes_;
    std::vector<Call> calls_;
    std::vector<RawStatement> statements_;
    bool in_raw_stmt_ = false;
};

// ---- parameters and names from the scanner -----------------------------------

// "$12" -> 12; 0 when malformed or above the protocol's limit.
std::size_t param_number(std::string_view text) {
    if (text.size() < 2 || text[0] != '$' || text.size() > 7) return 0;
    std::size_t n = 0;
    for (char c : text.substr(1)) {
        if (c < '0' || c > '9') return 0;
        n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    return n <= kMaxParamNumber ? n : 0;
}

// The keyword a transaction statement was written with (END is COMMIT and
// ABORT is ROLLBACK in the tree; messages name what the client wrote).
std::string transaction_word(const std::string& statement_text, const std::string& kind) {
    if (kind == "TRANS_STMT_BEGIN") return "BEGIN";
    if (kind == "TRANS_STMT_START") return "START TRANSACTION";
    if (kind == "TRANS_STMT_SAVEPOINT") return "SAVEPOINT";
    if (kind == "TRANS_STMT_RELEASE") return "RELEASE SAVEPOINT";
    if (kind == "TRANS_STMT_ROLLBACK_TO") return "ROLLBACK TO SAVEPOINT";
    if (kind == "TRANS_STMT_PREPARE") return "PREPARE TRANSACTION";
    if (kind == "TRANS_STMT_COMMIT_PREPARED") return "COMMIT PREPARED";
    if (kind == "TRANS_STMT_ROLLBACK_PREPARED") return "ROLLBACK PREPARED";
    std::uint32_t first = 0;
    if (auto tokens = sql::scan(statement_text)) {
        for (const auto& t : *tokens) {
            if (t.token == sql::kSqlComment || t.token == sql::kCComment) continue;
            first = t.token;
            break;
        }
    }
    if (kind == "TRANS_STMT_COMMIT") return first == sql::kEnd ? "END" : "COMMIT";
    if (kind == "TRANS_STMT_ROLLBACK") return first == sql::kAbort ? "ABORT" : "ROLLBACK";
    return "transaction control";
}

// "AlterDefaultPrivilegesStmt" -> "ALTER DEFAULT PRIVILEGES": the fallback for
// statements without an entry below.
std::string words_of(std::string_view node) {
    if (node.size() > 4 && node.substr(node.size() - 4) == "Stmt") node.remove_suffix(4);
    std::string out;
    for (std::size_t i = 0; i < node.size(); ++i) {
        const char c = node[i];
        if (i > 0 && std::isupper(static_cast<unsigned char>(c))) out.push_back(' ');
        out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
    return out;
}

std::string tag_of(const StatementFacts& f, const std::string& text) {
    const std::string& n = f.node;
    if (n == "SelectStmt") return "SELECT";
    if (n == "InsertStmt") return "INSERT";
    if (n == "UpdateStmt") return "UPDATE";
    if (n == "DeleteStmt") return "DELETE";
    if (n == "MergeStmt") return "MERGE";
    if (n == "TransactionStmt") return transaction_word(text, f.kind);
    if (n == "VariableSetStmt") return starts_with(f.kind, "VAR_RESET") ? "RESET" : "SET";
    if (n == "VariableShowStmt") return "SHOW";
    if (n == "DeclareCursorStmt") return "DECLARE CURSOR";
    if (n == "ClosePortalStmt") return "CLOSE";
    if (n == "CopyStmt") return "COPY";
    if (n == "DoStmt") return "DO";
    if (n == "CreateStmt") return "CREATE TABLE";
    if (n == "CreateTableAsStmt") return "CREATE TABLE AS";
    if (n == "ViewStmt") return "CREATE VIEW";
    if (n == "CreateSeqStmt") return "CREATE SEQUENCE";
    if (n == "IndexStmt") return "CREATE INDEX";
    if (n == "CreatedbStmt") return "CREATE DATABASE";
    if (n == "DropdbStmt") return "DROP DATABASE";
    if (n == "LockStmt") return "LOCK TABLE";
    if (n == "CheckPointStmt") return "CHECKPOINT";
    return words_of(n);
}

}  // namespace

Analysis analyze(std::string_view sql) {
    Analysis out;
    if (sql.find('\0') != std::string_view::npos) {
        out.status = Analysis::Status::bad_input;
        out.error = "the SQL text contains a NUL byte";
        return out;
    }
    const std::string text(sql);
    sql::ParseOutput parsed = sql::parse(text);
    if (!parsed.ok) {
        out.status = parsed.syntax_error ? Analysis::Status::syntax_error : Analysis::Status::bad_input;
        out.error = std::move(parsed.error);
        return out;
    }
    Walk walk(parsed.json);
    if (!walk.run()) {
        out.status = Analysis::Status::bad_input;
        out.error = walk.too_deep() ? "the statement is nested deeper than regiond checks (" +
                                          std::to_string(kMaxJsonDepth / 2) + " levels)"
                                    : "cannot read the parse tree: " + walk.error();
        return out;
    }
    parsed.json = std::string();  // the tree may be large: give it back before the scan

    // Parameters come from the scanner (a `$1` inside a string, a comment or a
    // dollar-quoted body is no parameter), scanned once for the whole text.
    std::vector<sql::ScanToken> params;
    if (text.find('$') != std::string::npos) {
        auto tokens = sql::scan(text);
        if (!tokens) {
            out.status = Analysis::Status::bad_input;
            out.error = "the scanner rejects a text the parser accepted";
            return out;
        }
        for (const auto& t : *tokens)
            if (t.token == sql::kParam) params.push_back(t);
    }

    for (auto& raw : walk.statements()) {
        if (raw.location < 0 || raw.length < 0 || static_cast<std::uint64_t>(raw.location) > text.size() ||
            static_cast<std::uint64_t>(raw.length) > text.size() - static_cast<std::size_t>(raw.location)) {
            out.status = Analysis::Status::bad_input;
            out.error = "statement location out of range";
            out.statements.clear();
            return out;
        }
        const auto begin = static_cast<std::size_t>(raw.location);
        // A length of 0 means "the rest of the string" (PostgreSQL's RawStmt rule).
        const std::size_t end = raw.length > 0 ? begin + static_cast<std::size_t>(raw.length) : text.size();
        const std::string_view body = trim(std::string_view(text).substr(begin, end - begin));
        if (!raw.has_node || body.empty()) continue;
        AnalyzedStatement st;
        st.sql = std::string(body);
        for (const auto& t : params) {
            if (t.start < begin || t.start >= end) continue;
            const std::string_view word = std::string_view(text).substr(t.start, t.end - t.start);
            const std::size_t n = param_number(word);
            if (n == 0) {
                out.status = Analysis::Status::bad_input;
                out.error = "bad parameter reference " + std::string(word) + " (parameters are $1..$" +
                            std::to_string(kMaxParamNumber) + ")";
                out.statements.clear();
                return out;
            }
            if (st.referenced.size() < n) st.referenced.resize(n, false);
            st.referenced[n - 1] = true;
        }
        st.facts = std::move(raw.facts);
        st.tag = tag_of(st.facts, st.sql);
        out.statements.push_back(std::move(st));
    }
    return out;
}

}  // namespace regiond::daemon::pg::detail

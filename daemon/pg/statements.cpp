#include "daemon/pg/statements.hpp"

#include <pg_query.h>

#include <cctype>
#include <memory>

namespace regiond::daemon::pg {
namespace {

// Token numbers from libpg_query's pg_query.proto (enum Token). They are part of
// libpg_query's wire format for the PostgreSQL 15 grammar it ships.
enum Token : std::uint32_t {
    kParam = 267,
    kSqlComment = 275,
    kCComment = 276,
    kAbort = 277,
    kBegin = 307,
    kCommit = 340,
    kEnd = 401,
    kPrepare = 574,
    kRelease = 597,
    kRollback = 611,
    kSavepoint = 618,
    kStart = 646,
    kTransaction = 675,
};

constexpr std::size_t kMaxParamNumber = 65535;  // the protocol's limit

struct ScanToken {
    std::uint32_t start = 0;
    std::uint32_t end = 0;
    std::uint32_t token = 0;
};

// pg_query_scan answers a protobuf ScanResult { int32 version = 1; repeated
// ScanToken tokens = 2; } with ScanToken { int32 start = 1; int32 end = 2;
// Token token = 4; KeywordKind keyword_kind = 5; }. Debian ships no protobuf-c
// headers, and the two messages are tiny, so they are decoded here (unknown
// fields are skipped as protobuf requires).
class ProtoReader {
public:
    ProtoReader(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
    bool done() const { return p_ == end_; }

    bool varint(std::uint64_t& out) {
        out = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p_ == end_) return false;
            const std::uint8_t byte = *p_++;
            out |= std::uint64_t{byte & 0x7fu} << shift;
            if ((byte & 0x80u) == 0) return true;
        }
        return false;
    }

    // Reads a field key; for a length-delimited field, also its bytes.
    bool field(std::uint32_t& number, std::uint32_t& wire_type, std::uint64_t& value, const std::uint8_t*& bytes) {
        std::uint64_t key = 0;
        if (!varint(key)) return false;
        number = static_cast<std::uint32_t>(key >> 3);
        wire_type = static_cast<std::uint32_t>(key & 7u);
        bytes = nullptr;
        switch (wire_type) {
            case 0: return varint(value);
            case 1: return skip(8);
            case 2:
                if (!varint(value) || value > static_cast<std::uint64_t>(end_ - p_)) return false;
                bytes = p_;
                p_ += value;
                return true;
            case 5: return skip(4);
            default: return false;
        }
    }

private:
    bool skip(std::size_t n) {
        if (n > static_cast<std::size_t>(end_ - p_)) return false;
        p_ += n;
        return true;
    }
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

bool decode_token(const std::uint8_t* data, std::size_t size, ScanToken& out) {
    ProtoReader r(data, size);
    while (!r.done()) {
        std::uint32_t number = 0, wire = 0;
        std::uint64_t value = 0;
        const std::uint8_t* bytes = nullptr;
        if (!r.field(number, wire, value, bytes)) return false;
        if (wire != 0) continue;
        if (number == 1) out.start = static_cast<std::uint32_t>(value);
        if (number == 2) out.end = static_cast<std::uint32_t>(value);
        if (number == 4) out.token = static_cast<std::uint32_t>(value);
    }
    return true;
}

// Scans `text` (NUL-terminated copy made by the caller). nullopt on failure.
std::optional<std::vector<ScanToken>> scan(const std::string& text) {
    struct Free {
        void operator()(PgQueryScanResult* r) const {
            pg_query_free_scan_result(*r);
            delete r;
        }
    };
    std::unique_ptr<PgQueryScanResult, Free> result(new PgQueryScanResult(pg_query_scan(text.c_str())));
    if (result->error != nullptr) return std::nullopt;
    std::vector<ScanToken> tokens;
    ProtoReader r(reinterpret_cast<const std::uint8_t*>(result->pbuf.data), result->pbuf.len);
    while (!r.done()) {
        std::uint32_t number = 0, wire = 0;
        std::uint64_t value = 0;
        const std::uint8_t* bytes = nullptr;
        if (!r.field(number, wire, value, bytes)) return std::nullopt;
        if (number != 2 || wire != 2) continue;
        ScanToken t;
        if (!decode_token(bytes, static_cast<std::size_t>(value), t)) return std::nullopt;
        if (t.start > t.end || t.end > text.size()) return std::nullopt;
        tokens.push_back(t);
    }
    return tokens;
}

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

// The transaction-control keyword(s) a statement starts with, or "".
std::string transaction_control(const std::vector<ScanToken>& tokens) {
    std::vector<std::uint32_t> words;
    for (const auto& t : tokens) {
        if (t.token == kSqlComment || t.token == kCComment) continue;
        words.push_back(t.token);
        if (words.size() == 2) break;
    }
    if (words.empty()) return "";
    switch (words[0]) {
        case kBegin: return "BEGIN";
        case kStart: return "START TRANSACTION";
        case kCommit: return "COMMIT";
        case kEnd: return "END";
        case kRollback: return "ROLLBACK";
        case kAbort: return "ABORT";
        case kSavepoint: return "SAVEPOINT";
        case kRelease: return "RELEASE SAVEPOINT";
        case kPrepare: return words.size() > 1 && words[1] == kTransaction ? "PREPARE TRANSACTION" : "";
        default: return "";
    }
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

}  // namespace

std::optional<std::vector<bool>> referenced_params(std::string_view statement) {
    const std::string text(statement);
    auto tokens = scan(text);
    if (!tokens) return std::nullopt;
    std::vector<bool> referenced;
    for (const auto& t : *tokens) {
        if (t.token != kParam) continue;
        const std::size_t n = param_number(std::string_view(text).substr(t.start, t.end - t.start));
        if (n == 0) return std::nullopt;
        if (referenced.size() < n) referenced.resize(n, false);
        referenced[n - 1] = true;
    }
    return referenced;
}

SplitResult split_statements(std::string_view sql) {
    SplitResult out;
    const std::string text(sql);
    PgQuerySplitResult split = pg_query_split_with_parser(text.c_str());
    struct FreeSplit {
        PgQuerySplitResult& r;
        ~FreeSplit() { pg_query_free_split_result(r); }
    } free_split{split};
    if (split.error != nullptr) {
        out.error = split.error->message != nullptr ? split.error->message : "syntax error";
        return out;
    }
    for (int i = 0; i < split.n_stmts; ++i) {
        const auto* s = split.stmts[i];
        if (s->stmt_location < 0 || static_cast<std::size_t>(s->stmt_location) > text.size()) {
            out.error = "statement location out of range";
            out.statements.clear();
            return out;
        }
        const std::size_t begin = static_cast<std::size_t>(s->stmt_location);
        // A length of 0 means "the rest of the string" (PostgreSQL's RawStmt rule).
        const std::size_t len = s->stmt_len > 0 ? static_cast<std::size_t>(s->stmt_len) : text.size() - begin;
        const std::string_view body = trim(std::string_view(text).substr(begin, len));
        if (body.empty()) continue;
        Statement st;
        st.sql = std::string(body);
        auto tokens = scan(st.sql);
        if (!tokens) {
            out.error = "cannot scan statement " + std::to_string(out.statements.size() + 1);
            out.statements.clear();
            return out;
        }
        for (const auto& t : *tokens) {
            if (t.token != kParam) continue;
            const std::size_t n = param_number(std::string_view(st.sql).substr(t.start, t.end - t.start));
            if (n == 0) {
                out.error = "bad parameter reference " + st.sql.substr(t.start, t.end - t.start) +
                            " (parameters are $1..$" + std::to_string(kMaxParamNumber) + ")";
                out.statements.clear();
                return out;
            }
            if (st.referenced.size() < n) st.referenced.resize(n, false);
            st.referenced[n - 1] = true;
        }
        st.transaction_control = transaction_control(*tokens);
        out.statements.push_back(std::move(st));
    }
    out.ok = true;
    return out;
}

}  // namespace regiond::daemon::pg

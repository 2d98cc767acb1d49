#include "daemon/pg/sql_parser.hpp"

#include <pg_query.h>
#include <pthread.h>

#include <cstring>

namespace regiond::daemon::pg::sql {
namespace {

// pg_query_scan answers a protobuf ScanResult { int32 version = 1; repeated
// ScanToken tokens = 2; } with ScanToken { int32 start = 1; int32 end = 2;
// Token token = 4; KeywordKind keyword_kind = 5; }. Debian ships no protobuf-c
// runtime headers, and the two messages are tiny, so they are decoded here
// (unknown fields are skipped as protobuf requires).
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

// Worst case measured: ~66 bytes of stack per byte of text (`1+1+...`); four
// times that, plus room for the parser's fixed frames, is the bound used.
constexpr std::size_t kStackPerByte = 256;
constexpr std::size_t kStackBase = std::size_t{512} << 10;

ParseOutput parse_here(const std::string& text) {
    ParseOutput out;
    PgQueryParseResult r = pg_query_parse(text.c_str());
    struct Free {
        PgQueryParseResult& r;
        ~Free() { pg_query_free_parse_result(r); }
    } free_result{r};
    if (r.error != nullptr) {
        out.error = r.error->message != nullptr ? r.error->message : "syntax error";
        // Errors raised by PostgreSQL's scanner (scan.l) and grammar (gram.y),
        // including bison's "memory exhausted" at its fixed depth limit, are
        // what the server itself answers for the same text.
        const char* file = r.error->filename != nullptr ? r.error->filename : "";
        out.syntax_error = std::strcmp(file, "scan.l") == 0 || std::strcmp(file, "gram.y") == 0;
        return out;
    }
    if (r.parse_tree == nullptr) {
        out.error = "the parser returned no tree";
        return out;
    }
    out.ok = true;
    out.json = r.parse_tree;
    return out;
}

struct ThreadJob {
    const std::string* text;
    ParseOutput out;
};

void* parse_thread(void* arg) {
    auto* job = static_cast<ThreadJob*>(arg);
    try {
        job->out = parse_here(*job->text);
    } catch (...) {  // std::bad_alloc: nothing may leave the thread
        job->out = ParseOutput{};
        job->out.error = "out of memory while parsing";
    }
    // libpg_query's per-thread memory context is freed by its own thread-exit
    // handler (calling pg_query_exit() here as well frees it twice).
    return nullptr;
}

// Runs parse_here on a thread whose stack fits `stack` bytes; the caller waits
// (the parse is synchronous either way; only its stack moves).
ParseOutput parse_on_big_stack(const std::string& text, std::size_t stack) {
    ThreadJob job{&text, {}};
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        job.out.error = "cannot start the parser thread";
        return job.out;
    }
    struct Destroy {
        pthread_attr_t& a;
        ~Destroy() { pthread_attr_destroy(&a); }
    } destroy{attr};
    pthread_t thread;
    if (pthread_attr_setstacksize(&attr, stack) != 0 || pthread_create(&thread, &attr, parse_thread, &job) != 0) {
        job.out.error = "cannot start the parser thread (" + std::to_string(stack >> 20) + " MiB of stack)";
        return job.out;
    }
    pthread_join(thread, nullptr);
    return std::move(job.out);
}

}  // namespace

std::optional<std::vector<ScanToken>> scan(const std::string& text) {
    struct Free {
        PgQueryScanResult& r;
        ~Free() { pg_query_free_scan_result(r); }
    };
    PgQueryScanResult result = pg_query_scan(text.c_str());
    Free free_result{result};
    if (result.error != nullptr) return std::nullopt;
    std::vector<ScanToken> tokens;
    ProtoReader r(reinterpret_cast<const std::uint8_t*>(result.pbuf.data), result.pbuf.len);
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

ParseOutput parse(const std::string& text) {
    if (text.size() > (std::size_t{1} << 40) / kStackPerByte) {
        ParseOutput out;
        out.error = "the text is too large to parse";
        return out;
    }
    const std::size_t worst = kStackBase + text.size() * kStackPerByte;
    if (worst <= kInlineStack) return parse_here(text);
    return parse_on_big_stack(text, worst);
}

}  // namespace regiond::daemon::pg::sql

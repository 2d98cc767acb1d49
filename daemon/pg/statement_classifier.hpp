// What each statement of a request is, as far as session isolation cares
// (docs/design.md, "Session isolation"): which statements are refused before
// anything is sent, which leave session state behind (the connection is reset
// with DISCARD ALL after the job), and which reads are plain queries that may
// share a batch on a replica. Classification uses libpg_query (PostgreSQL's own
// parser), never regular expressions, and is cached by SQL text so the hot path
// parses each distinct statement text once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace regiond::daemon::pg {

/// The operation a request runs as. Reads are read-only (on the primary inside
/// a read-only transaction, on a replica by nature) and one statement; a write
/// may hold several statements that run as one transaction.
enum class Operation : std::uint8_t { read, write };

/// One statement of a request.
struct StatementClass {
    std::string sql;               ///< the statement's text, trimmed
    std::vector<bool> referenced;  ///< referenced[n-1]: the statement uses $n; size() = highest $n
    std::string tag;               ///< the command for messages: "SELECT", "INSERT", "SET", "BEGIN", ...
    /// "" or why regiond refuses the statement: names it and says what to do
    /// instead (e.g. "BEGIN is transaction control: regiond runs every request
    /// as its own transaction; send the statements without BEGIN/COMMIT").
    std::string refusal;
    /// Leaves session state behind (a session advisory lock, set_config(...,
    /// false), a temp table, a DO block): the connection is reset after the job.
    bool changes_session = false;
    /// A query whose only effect is its result: SELECT/VALUES/TABLE/WITH without
    /// data-modifying CTEs, locking clauses, INTO, or calls that set
    /// transaction or session state. Only such reads may share a batch (one
    /// implicit transaction) with other clients' reads on a replica.
    bool plain_query = false;

    std::size_t max_param() const { return referenced.size(); }
};

struct Classification {
    /// false when the parser rejected the text (a syntax error): `parse_error`
    /// says why and `statements` is empty. The text is then sent whole (as one
    /// statement, not batched, no session state assumed) so that the server
    /// reports the error with its SQLSTATE and position.
    bool parsed = false;
    std::string parse_error;
    std::vector<StatementClass> statements;
    /// "" or the request's refusal: the first refused statement, with its
    /// position when there are several ("statement 2 of 3: BEGIN is ..."), or a
    /// read of several statements. Nothing is sent when it is set (it is never
    /// set together with parsed == false).
    std::string refusal;
    bool changes_session = false;  ///< any statement does
    bool batchable = false;        ///< one statement, and it is a plain query
};

/// Classifies `sql` as `op`. Pure; never throws for any input (std::bad_alloc
/// aside) and never crashes on any (a parse of a deep text runs on a helper
/// thread with a stack big enough; see sql_parser.hpp); a text the parser
/// rejects gives parsed == false. Text regiond cannot check (a NUL byte, a bad
/// $n such as $0 or $70000, a tree nested deeper than PostgreSQL would analyse)
/// gives parsed == true and a refusal; so does a text with no statement.
/// Needs sql::kInlineStack (2 MiB) of free stack on the calling thread.
/// Thread-safe (libpg_query keeps its state per thread). Its cost grows with the
/// text: ~10 us for a one-table SELECT, ~100 ns per byte for a large multi-row
/// INSERT, up to ~2 us per byte for a deeply nested expression (bench/).
Classification classify(std::string_view sql, Operation op);

/// classify() behind an LRU cache keyed by (op, sql), shared by every endpoint
/// of a daemon. Entries are immutable and shared: a caller may keep one after
/// it has been evicted.
///
/// Not thread-safe, by design: the daemon's loop thread is its only user, so it
/// takes no lock. Memory is bounded twice: at most `capacity` entries and about
/// `max_bytes` of texts and classifications (a few large texts evict many small
/// ones); a text longer than kMaxCachedText is classified on every call and never
/// cached (such texts are rarely repeated, and one would cost as much as 500
/// typical entries).
class StatementClassifier {
public:
    static constexpr std::size_t kMaxCachedText = std::size_t{64} << 10;

    explicit StatementClassifier(std::size_t capacity = 4096, std::size_t max_bytes = std::size_t{32} << 20);
    StatementClassifier(const StatementClassifier&) = delete;
    StatementClassifier& operator=(const StatementClassifier&) = delete;

    std::shared_ptr<const Classification> classify(std::string_view sql, Operation op);
    /// The cached classification, or nullptr (counts as a use for the LRU).
    std::shared_ptr<const Classification> find(std::string_view sql, Operation op);
    /// Caches a classification made elsewhere (ClassifierWorker, off the loop).
    void remember(std::string_view sql, Operation op, std::shared_ptr<const Classification> value);

    std::size_t size() const noexcept { return lru_.size(); }
    std::size_t capacity() const noexcept { return capacity_; }
    std::size_t bytes() const noexcept { return bytes_; }  ///< what the entries cost, as counted against max_bytes

private:
    struct Entry {
        std::string sql;
        Operation op;
        std::shared_ptr<const Classification> value;
        std::size_t bytes;
    };
    static std::size_t cost(const Entry& e);

    std::size_t capacity_;
    std::size_t max_bytes_;
    std::size_t bytes_ = 0;
    std::list<Entry> lru_;  ///< most recently used first
    /// Per operation (read, write): views of the lru_ entries' texts (list nodes
    /// never move), so a lookup hashes the caller's text without copying it.
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index_[2];
};

}  // namespace regiond::daemon::pg

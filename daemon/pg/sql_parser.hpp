// PostgreSQL's own scanner and grammar (libpg_query), wrapped so that no input
// can crash the daemon: the statement classifier and the statement splitter
// read SQL only through these two functions.
//
// libpg_query's scanner is flat, but its parse output (the JSON writer) recurses
// once or twice per level of the parse tree, without a stack check. A left-deep
// expression such as `select 1+1+1+...` is parsed without bison's depth limit,
// so 100k levels (200 KB of text) overflow an 8 MiB stack (measured: about
// 66 bytes of stack per byte of input for `+1` chains, 44 for nested calls and
// subqueries, with libpg_query 15-4.0.0). parse() therefore runs the parser on
// the calling thread only when the text is small enough for its worst case to fit
// in kInlineStack, and on a helper thread with a stack sized for the text
// otherwise (virtual memory, touched only as deep as the parse goes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace regiond::daemon::pg::sql {

/// Token numbers from libpg_query's pg_query.proto (enum Token), part of its wire
/// format for the PostgreSQL 15 grammar it ships.
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

struct ScanToken {
    std::uint32_t start = 0;  ///< byte offset in the scanned text
    std::uint32_t end = 0;    ///< one past the last byte
    std::uint32_t token = 0;  ///< enum Token
};

/// The tokens of `text` (which must hold no NUL byte), or nullopt when the
/// scanner rejects it (e.g. an unterminated string).
std::optional<std::vector<ScanToken>> scan(const std::string& text);

struct ParseOutput {
    bool ok = false;
    /// When !ok: true for an error of PostgreSQL's scanner or grammar (a syntax
    /// error the server reports the same way), false for anything else (out of
    /// memory, no stack for the helper thread).
    bool syntax_error = false;
    std::string error;  ///< when !ok
    std::string json;   ///< when ok: libpg_query's JSON parse tree
};

/// Stack the calling thread must have free for parse() (2 MiB): texts whose
/// worst case does not fit in it are parsed on a helper thread.
inline constexpr std::size_t kInlineStack = std::size_t{2} << 20;

/// Parses `text` (no NUL byte) into libpg_query's JSON parse tree.
ParseOutput parse(const std::string& text);

}  // namespace regiond::daemon::pg::sql

// How regionctl prints a query result: aligned like psql, or one JSON object.
// Pure functions over a Table, so they are unit-tested without a daemon.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::ctl {

struct Table {
    std::vector<std::string> columns;
    std::vector<std::vector<std::optional<std::string>>> rows;  ///< nullopt: SQL NULL
    std::string served_by;
    std::string route_reason;  ///< "" when the daemon gave none
    std::string token;         ///< "" when none
    long long affected = -1;   ///< -1 when not a write
};

/// A JSON string literal (with the quotes): ", \ and control characters escaped,
/// invalid UTF-8 replaced by U+FFFD so the output is always valid JSON.
std::string json_string(std::string_view text);

/// {"served_by":"...","route_reason":"...","token":"...","affected":N,"columns":[...],
/// "rows":[[...],...]} plus a newline (API.md's shape). NULL is null; route_reason
/// "", token "" and affected -1 as the C API gives them.
std::string format_json(const Table& table);

/// psql's aligned format: centred header, a separator, left-aligned values (NULL
/// as empty), multi-line values continued with '+', then "(N rows)"; then
/// "served_by: ...", and "route_reason: ...", "token: ..." / "affected: N" when the
/// result has them.
/// A result without columns (a write without RETURNING) prints only those lines.
std::string format_aligned(const Table& table);

/// Display width in columns: UTF-8 code points (continuation bytes count 0).
std::size_t display_width(std::string_view text);

}  // namespace regiond::ctl

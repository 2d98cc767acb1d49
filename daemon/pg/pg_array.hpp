// PostgreSQL's text forms that the daemon builds itself: a text[] parameter in
// the array input format, and the UTF-8 check that decides whether a string can
// be PostgreSQL text on a UTF-8 session at all.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace regiond::daemon::pg {

/// `{"a","b \"c\"","NULL"}`: every element double-quoted, `"` and `\` escaped
/// with a backslash, everything else (commas, braces, spaces, non-ASCII bytes)
/// kept as it is. Quoting every element is what makes the text `NULL` a string
/// rather than SQL NULL, and an empty string an element. Sent as a bound
/// parameter of type text[] (never spliced into SQL text). The elements must
/// not contain NUL (PostgreSQL text cannot) and must be valid UTF-8 (checked
/// by the caller: valid_utf8).
std::string text_array_literal(std::span<const std::string> elements);

/// True when `s` is well-formed UTF-8 as PostgreSQL checks it: no overlong
/// forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
/// truncated sequence. NUL bytes are valid UTF-8 (the caller refuses them).
bool valid_utf8(std::string_view s);

}  // namespace regiond::daemon::pg

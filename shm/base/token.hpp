// Consistency tokens (API.md): "SYSTEMID/LSN", the primary's system identifier in
// decimal and the LSN as PostgreSQL prints it, e.g. "7301234567890123456/0/16B3748".
// One parser for the daemon (read_consistent) and libregiond (validation,
// rgd_token_cmp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace regiond::base {

struct Token {
    std::uint64_t system_identifier = 0;
    std::uint64_t lsn = 0;
};

/// 1-20 decimal digits whose value fits in 64 bits, '/', then an LSN (see
/// parse_lsn). Anything else, the empty string included, is nullopt.
std::optional<Token> parse_token(std::string_view text) noexcept;

/// "SYSTEMID/HI/LO".
std::string format_token(Token token);

}  // namespace regiond::base

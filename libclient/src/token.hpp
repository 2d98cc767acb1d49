// Consistency tokens (API.md): "SYSTEMID/LSN", the primary's system identifier in
// decimal and the LSN as PostgreSQL prints it ("0/16B3748"), e.g.
// "7301234567890123456/0/16B3748".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace regiond::client {

/// True if `token` is well-formed: 1-20 decimal digits whose value fits in 64
/// bits, '/', then an LSN of two groups of 1-8 hexadecimal digits (either case)
/// separated by '/'. Nothing else (no spaces, signs or other separators).
bool token_well_formed(std::string_view token) noexcept;

/// nullopt if the token is well-formed or empty (empty means "no write to wait
/// for"); otherwise the error message the caller gets without a round trip.
std::optional<std::string> token_error(std::string_view token);

}  // namespace regiond::client

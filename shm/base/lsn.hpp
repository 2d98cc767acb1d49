// PostgreSQL LSNs as text, in PostgreSQL's own form ("%X/%X": the high and low 32
// bits in upper-case hex, no leading zeros), so a token or a status line compares
// equal to what `select pg_current_wal_lsn()` prints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace regiond::base {

/// "16/B374D848" -> 0x16B374D848. Each half is 1 to 8 hex digits (either case);
/// anything else (signs, spaces, a third part, an empty half) is nullopt.
std::optional<std::uint64_t> parse_lsn(std::string_view text) noexcept;

/// 0x16B374D848 -> "16/B374D848".
std::string format_lsn(std::uint64_t lsn);

}  // namespace regiond::base

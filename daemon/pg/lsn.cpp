// LSN text <-> integer, in PostgreSQL's own text form ("%X/%X": the high and low
// 32 bits in upper-case hex, no leading zeros), so a token compares equal to what
// `select pg_current_wal_lsn()` prints.
#include <cstdio>

#include "daemon/pg/endpoint.hpp"

namespace regiond::daemon::pg {
namespace {

// One half of an LSN: 1 to 8 hex digits (either case), nothing else.
std::optional<std::uint32_t> parse_half(std::string_view text) {
    if (text.empty() || text.size() > 8) return std::nullopt;
    std::uint32_t value = 0;
    for (char c : text) {
        std::uint32_t digit = 0;
        if (c >= '0' && c <= '9') {
            digit = static_cast<std::uint32_t>(c - '0');
        } else if (c >= 'A' && c <= 'F') {
            digit = static_cast<std::uint32_t>(c - 'A' + 10);
        } else if (c >= 'a' && c <= 'f') {
            digit = static_cast<std::uint32_t>(c - 'a' + 10);
        } else {
            return std::nullopt;
        }
        value = (value << 4) | digit;
    }
    return value;
}

}  // namespace

std::optional<std::uint64_t> parse_lsn(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const auto hi = parse_half(text.substr(0, slash));
    const auto lo = parse_half(text.substr(slash + 1));
    if (!hi || !lo) return std::nullopt;
    return (std::uint64_t{*hi} << 32) | *lo;
}

std::string format_lsn(std::uint64_t lsn) {
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                                static_cast<unsigned>(lsn & 0xffffffffu));
    return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace regiond::daemon::pg

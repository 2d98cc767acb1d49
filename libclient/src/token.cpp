#include "token.hpp"

#include <cstdint>

#include "shm/base/lsn.hpp"

namespace regiond::client {

namespace {

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

// Decimal, 1..20 digits, value <= 2^64 - 1 (pg_control's system identifier is a u64).
std::optional<std::uint64_t> parse_system_id(std::string_view s) noexcept {
    if (s.empty() || s.size() > 20) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : s) {
        if (!is_digit(c)) return std::nullopt;
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    return value;
}

}  // namespace

std::optional<Token> parse_token(std::string_view token) noexcept {
    const auto first = token.find('/');
    if (first == std::string_view::npos) return std::nullopt;
    const auto system_id = parse_system_id(token.substr(0, first));
    // The LSN as PostgreSQL prints it: two groups of 1-8 hex digits (a third '/'
    // is not a hex digit, so it fails there).
    const auto lsn = base::parse_lsn(token.substr(first + 1));
    if (!system_id || !lsn) return std::nullopt;
    return Token{*system_id, *lsn};
}

bool token_well_formed(std::string_view token) noexcept {
    return parse_token(token).has_value();
}

int token_cmp(std::string_view a, std::string_view b) noexcept {
    // "" first: it is not a token but "nothing seen yet", so a session that starts
    // with "" and keeps the newer of two always ends up with a real token.
    if (a.empty() || b.empty()) {
        if (a.empty() && b.empty()) return 0;
        if (!parse_token(a.empty() ? b : a)) return kTokensNotComparable;
        return a.empty() ? -1 : 1;
    }
    const auto ta = parse_token(a);
    const auto tb = parse_token(b);
    // LSNs of two clusters say nothing about each other: an error value, so an
    // application never keeps a foreign token as "newer".
    if (!ta || !tb || ta->system_id != tb->system_id) return kTokensNotComparable;
    if (ta->lsn < tb->lsn) return -1;
    return ta->lsn > tb->lsn ? 1 : 0;
}

std::optional<std::string> token_error(std::string_view token) {
    if (token.empty() || token_well_formed(token)) return std::nullopt;
    // Quote at most a screenful of it: the token may come from a cookie.
    constexpr std::size_t kShown = 80;
    std::string shown;
    for (char c : token.substr(0, kShown)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
            static constexpr char kHex[] = "0123456789abcdef";
            shown += "\\x";
            shown += kHex[u >> 4];
            shown += kHex[u & 0xf];
        } else {
            shown += c;
        }
    }
    if (token.size() > kShown) shown += "...";
    return "malformed consistency token \"" + shown +
           "\": a token is SYSTEMID/LSN, e.g. 7713697811223072330/0/41F2E80, exactly as rgd_token() "
           "returned it (an empty token reads without waiting for a write)";
}

}  // namespace regiond::client

#include "token.hpp"

#include <cstdint>

#include "shm/base/token.hpp"

namespace regiond::client {

using base::parse_token;

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
    if (!ta || !tb || ta->system_identifier != tb->system_identifier) return kTokensNotComparable;
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

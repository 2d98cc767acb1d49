#include "shm/base/token.hpp"

#include "shm/base/lsn.hpp"

namespace regiond::base {

std::optional<Token> parse_token(std::string_view text) noexcept {
    const auto slash = text.find('/');
    if (slash == 0 || slash == std::string_view::npos || slash > 20) return std::nullopt;
    std::uint64_t id = 0;
    for (char c : text.substr(0, slash)) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (id > (UINT64_MAX - digit) / 10) return std::nullopt;  // does not fit in 64 bits
        id = id * 10 + digit;
    }
    const auto lsn = parse_lsn(text.substr(slash + 1));
    if (!lsn) return std::nullopt;
    return Token{id, *lsn};
}

std::string format_token(Token token) {
    return std::to_string(token.system_identifier) + "/" + format_lsn(token.lsn);
}

}  // namespace regiond::base

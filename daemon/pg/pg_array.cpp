#include "daemon/pg/pg_array.hpp"

#include <cstdint>

namespace regiond::daemon::pg {

std::string text_array_literal(std::span<const std::string> elements) {
    std::size_t size = 2;
    for (const auto& e : elements) size += e.size() + 3;
    std::string out;
    out.reserve(size);
    out.push_back('{');
    for (std::size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) out.push_back(',');
        out.push_back('"');
        for (const char c : elements[i]) {
            // Inside double quotes array_in takes any character literally
            // except these two, which a backslash escapes.
            if (c == '"' || c == '\\') out.push_back('\\');
            out.push_back(c);
        }
        out.push_back('"');
    }
    out.push_back('}');
    return out;
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n) {
        const auto b0 = static_cast<std::uint8_t>(s[i]);
        if (b0 < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint8_t lo = 0x80;  // allowed range of the second byte (RFC 3629, table 3-7)
        std::uint8_t hi = 0xBF;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            len = 2;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            len = 3;
            if (b0 == 0xE0) lo = 0xA0;  // overlong
            if (b0 == 0xED) hi = 0x9F;  // surrogates
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            len = 4;
            if (b0 == 0xF0) lo = 0x90;  // overlong
            if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
        } else {
            return false;  // a continuation byte first, C0/C1 (overlong), F5..FF
        }
        if (n - i < len) return false;
        const auto b1 = static_cast<std::uint8_t>(s[i + 1]);
        if (b1 < lo || b1 > hi) return false;
        for (std::size_t k = 2; k < len; ++k) {
            const auto b = static_cast<std::uint8_t>(s[i + k]);
            if (b < 0x80 || b > 0xBF) return false;
        }
        i += len;
    }
    return true;
}

}  // namespace regiond::daemon::pg

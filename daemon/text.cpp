#include "daemon/text.hpp"

#include <cstdio>

#include "shm/base/size_text.hpp"

namespace regiond::daemon {

namespace {

// value / divisor with one decimal, the ".0" dropped.
std::string one_decimal(std::uint64_t value, std::uint64_t divisor) {
    const std::uint64_t tenths = (value * 10 + divisor / 2) / divisor;
    std::string text = std::to_string(tenths / 10);
    if (tenths % 10 != 0) {
        text += '.';
        text += static_cast<char>('0' + tenths % 10);
    }
    return text;
}

}  // namespace

std::string format_duration(std::chrono::nanoseconds duration) {
    const auto ns = duration.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(duration.count());
    if (ns == 0) return "0s";
    constexpr std::uint64_t ms = 1'000'000;
    constexpr std::uint64_t s = 1'000 * ms;
    if (ns >= s) return one_decimal(ns, s) + "s";
    if (ns >= ms) return one_decimal(ns, ms) + "ms";
    if (ns >= 1000) return one_decimal(ns, 1000) + "us";
    return std::to_string(ns) + "ns";
}

std::string format_size(std::uint64_t bytes) {
    return base::format_size(bytes);
}

std::string json_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof buffer, "\\u%04x",
                                  static_cast<unsigned>(static_cast<unsigned char>(c)));
                    out += buffer;
                } else {
                    out += c;
                }
        }
    }
    return out;
}

std::string prometheus_label_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string format_decimal(std::uint64_t value, unsigned decimals) {
    std::string digits = std::to_string(value);
    if (decimals == 0) return digits;
    if (digits.size() <= decimals) digits.insert(0, decimals + 1 - digits.size(), '0');
    digits.insert(digits.size() - decimals, 1, '.');
    return digits;
}

}  // namespace regiond::daemon

// Small text helpers shared by the daemon's messages, status and metrics output.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace regiond::daemon {

/// "5s", "7.2s", "250ms", "1.5ms": the shortest exact-enough form for messages
/// (one decimal above a second, whole or one decimal milliseconds below).
std::string format_duration(std::chrono::nanoseconds duration);
inline std::string format_duration_ms(std::uint64_t ms) {
    return format_duration(std::chrono::milliseconds(ms));
}

/// Whole milliseconds, rounded to nearest; 0 for a negative duration.
inline std::int64_t round_ms(std::chrono::nanoseconds d) {
    const double ms = std::chrono::duration<double, std::milli>(d).count();
    return ms <= 0 ? 0 : static_cast<std::int64_t>(ms + 0.5);
}

/// "9 MiB", "8.5 MiB", "511.98 KiB", "100 bytes" (base::format_size, the one
/// copy libregiond uses too).
std::string format_size(std::uint64_t bytes);

/// The body of a JSON string literal (without the quotes).
std::string json_escape(std::string_view text);

/// A Prometheus label value (backslash, double quote and newline escaped).
std::string prometheus_label_escape(std::string_view text);

/// A fixed-point decimal: format_decimal(1234, 3) == "1.234".
std::string format_decimal(std::uint64_t value, unsigned decimals);

}  // namespace regiond::daemon

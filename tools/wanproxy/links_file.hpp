// The links file: one link per line,
//   NAME LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS
// '#' starts a comment, blank lines are ignored.
#pragma once

#include "net.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wanproxy {

struct LinkSpec {
    std::string name;
    Endpoint listen;
    Endpoint target;
    double delay_ms = 0;
};

// Upper bound on a delay: one hour is far beyond any WAN and keeps the
// nanosecond arithmetic far from overflow.
inline constexpr double kMaxDelayMs = 3'600'000.0;

// Parses a non-negative decimal number of milliseconds ("50", "0.05",
// "17.5"); nullopt if it is not one or is out of range.
std::optional<double> parse_delay_ms(std::string_view text);
std::int64_t delay_ms_to_ns(double ms);
// Shortest text that reads back as the same number ("50", "0.05").
std::string format_delay_ms(double ms);

// Reads and validates the whole file. On error, `error` is
// "FILE:LINE: what is wrong" (or "FILE: ..." if the file cannot be read).
Outcome<std::vector<LinkSpec>> parse_links_file(const std::string& path);

}  // namespace wanproxy

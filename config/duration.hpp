// Durations in the configuration are strings with a unit ("250ms", "5s",
// "1.5s"): a bare number is ambiguous (seconds? milliseconds?) and is refused.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "config/value_or_error.hpp"

namespace regiond::config {

// Accepts DIGITS[.DIGITS]UNIT with UNIT one of ns, us (or µs), ms, s, m, h, d;
// no sign, no spaces, no compound forms ("1m30s"). The result must be a whole
// number of nanoseconds and fit in std::chrono::nanoseconds (about 292 years).
// Error messages quote the text (durations are never secret) and show an example.
Parsed<std::chrono::nanoseconds> parse_duration(std::string_view text);

// The shortest exact spelling that parse_duration reads back: "0s", "250ms",
// "90s", "5m", "1500us". Used in messages about bounds.
std::string format_duration(std::chrono::nanoseconds duration);

}  // namespace regiond::config

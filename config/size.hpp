// Sizes in the configuration are strings with a unit ("64MiB", "4096B"): a bare
// number would leave the reader guessing between bytes and megabytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/value_or_error.hpp"

namespace regiond::config {

// Accepts DIGITS[.DIGITS]UNIT with UNIT one of B; kB (or KB), MB, GB, TB
// (powers of 1000); KiB, MiB, GiB, TiB (powers of 1024). Units are
// case-sensitive because "mb" could mean megabits. The result must be a whole
// number of bytes and fit in 64 bits.
Parsed<std::uint64_t> parse_size(std::string_view text);

// The shortest exact spelling that parse_size reads back, preferring binary
// units: "64MiB", "1MB", "4097B".
std::string format_size(std::uint64_t bytes);

}  // namespace regiond::config

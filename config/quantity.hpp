// Internal to regiond_config: the number-with-unit grammar shared by durations
// and sizes, computed in exact integer arithmetic so that "1.1s" is exactly
// 1100ms (a double would round).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace regiond::config::detail {

// "1.5s" -> {"1", "5", "s"}. Views into the input.
struct Quantity {
    std::string_view integer_digits;
    std::string_view fraction_digits;  // empty when there is no '.'
    std::string_view unit;
};

// Returns nullopt unless the text is DIGITS[.DIGITS] followed by anything
// (the caller judges the unit; an empty unit means "a bare number").
std::optional<Quantity> split_quantity(std::string_view text);

enum class ScaleResult { ok, overflow, not_whole };

// out = quantity * multiplier, exactly, if it is a whole number below `limit`.
ScaleResult scale_quantity(const Quantity& quantity, std::uint64_t multiplier, std::uint64_t limit, std::uint64_t& out);

}  // namespace regiond::config::detail

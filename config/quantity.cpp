#include "config/quantity.hpp"

#include <numeric>

namespace regiond::config::detail {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::string_view take_digits(std::string_view text) {
    std::size_t n = 0;
    while (n < text.size() && is_digit(text[n])) ++n;
    return text.substr(0, n);
}

// False on overflow (more than about 19 digits).
bool to_u64(std::string_view digits, std::uint64_t& out) {
    std::uint64_t value = 0;
    for (char c : digits) {
        if (__builtin_mul_overflow(value, 10U, &value) ||
            __builtin_add_overflow(value, static_cast<std::uint64_t>(c - '0'), &value))
            return false;
    }
    out = value;
    return true;
}

}  // namespace

std::optional<Quantity> split_quantity(std::string_view text) {
    Quantity q;
    q.integer_digits = take_digits(text);
    if (q.integer_digits.empty()) return std::nullopt;
    text.remove_prefix(q.integer_digits.size());
    if (!text.empty() && text.front() == '.') {
        q.fraction_digits = take_digits(text.substr(1));
        if (q.fraction_digits.empty()) return std::nullopt;  // "5.s"
        text.remove_prefix(1 + q.fraction_digits.size());
    }
    q.unit = text;
    return q;
}

ScaleResult scale_quantity(const Quantity& quantity, std::uint64_t multiplier, std::uint64_t limit,
                           std::uint64_t& out) {
    std::uint64_t whole = 0;
    if (!to_u64(quantity.integer_digits, whole) || __builtin_mul_overflow(whole, multiplier, &whole) || whole > limit)
        return ScaleResult::overflow;

    // Trailing zeros of the fraction change nothing ("1.50s" == "1.5s").
    std::string_view fraction = quantity.fraction_digits;
    while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
    if (fraction.empty()) {
        out = whole;
        return ScaleResult::ok;
    }

    // fraction / 10^k * multiplier is whole only if, after cancelling the common
    // factors of multiplier and 10^k, the fraction is a multiple of what is left
    // of 10^k. Cancelling first keeps the products small.
    if (fraction.size() > 19) return ScaleResult::not_whole;  // no unit has 10^20 as a factor
    std::uint64_t numerator = 0;
    to_u64(fraction, numerator);  // at most 19 digits: cannot overflow
    std::uint64_t power = 1;
    for (std::size_t i = 0; i < fraction.size(); ++i) power *= 10;
    const std::uint64_t common = std::gcd(multiplier, power);
    const std::uint64_t remaining_power = power / common;
    if (numerator % remaining_power != 0) return ScaleResult::not_whole;
    std::uint64_t part = 0;
    if (__builtin_mul_overflow(numerator / remaining_power, multiplier / common, &part) ||
        __builtin_add_overflow(whole, part, &out) || out > limit)
        return ScaleResult::overflow;
    return ScaleResult::ok;
}

}  // namespace regiond::config::detail

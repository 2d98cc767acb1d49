#include "config/duration.hpp"

#include <array>
#include <cstdint>
#include <limits>

#include "config/quantity.hpp"
#include "config/quote.hpp"

namespace regiond::config {
namespace {

using std::chrono::nanoseconds;

struct Unit {
    std::string_view name;
    std::uint64_t nanoseconds;
};

// Largest first, so format_duration picks the shortest spelling.
constexpr std::array<Unit, 7> units{{
    {"d", 86'400'000'000'000ULL},
    {"h", 3'600'000'000'000ULL},
    {"m", 60'000'000'000ULL},
    {"s", 1'000'000'000ULL},
    {"ms", 1'000'000ULL},
    {"us", 1'000ULL},
    {"ns", 1ULL},
}};

constexpr std::string_view unit_list = "ns, us, ms, s, m, h, d";
constexpr std::string_view micro_sign_us = "\u00b5s";  // "µs"

const Unit* find_unit(std::string_view name) {
    if (name == micro_sign_us) name = "us";
    for (const Unit& unit : units)
        if (unit.name == name) return &unit;
    return nullptr;
}

std::string example_for(std::string_view number) {
    const std::string n(number.empty() ? "5" : number);
    return "\"" + n + "s\" or \"" + n + "ms\"";
}

}  // namespace

Parsed<nanoseconds> parse_duration(std::string_view text) {
    using detail::quote;
    const std::string how = " (units: " + std::string(unit_list) + ")";
    if (text.empty())
        return Parsed<nanoseconds>::fail(
            "empty duration; write a number with a unit, e.g. "
            "\"250ms\" or \"5s\"" +
            how);
    if (text.front() == '-') return Parsed<nanoseconds>::fail(quote(text) + " is negative; a duration cannot be");
    if (text.find_first_of(" \t") != std::string_view::npos)
        return Parsed<nanoseconds>::fail(quote(text) +
                                         " contains a space; write the number and unit "
                                         "together, e.g. \"5s\"");

    const auto quantity = detail::split_quantity(text);
    if (!quantity)
        return Parsed<nanoseconds>::fail(quote(text) +
                                         " is not a duration; write a number with a unit, "
                                         "e.g. \"250ms\" or \"5s\"" +
                                         how);
    if (quantity->unit.empty())
        return Parsed<nanoseconds>::fail(quote(text) + " has no unit; write e.g. " +
                                         example_for(quantity->integer_digits) + how);
    const Unit* unit = find_unit(quantity->unit);
    if (unit == nullptr)
        return Parsed<nanoseconds>::fail(quote(text) + " has an unknown unit " + quote(quantity->unit) +
                                         "; use one of " + std::string(unit_list) + ", e.g. " +
                                         example_for(quantity->integer_digits));

    std::uint64_t count = 0;
    constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<nanoseconds::rep>::max());
    switch (detail::scale_quantity(*quantity, unit->nanoseconds, limit, count)) {
        case detail::ScaleResult::ok: return Parsed<nanoseconds>::ok(nanoseconds(static_cast<nanoseconds::rep>(count)));
        case detail::ScaleResult::overflow:
            return Parsed<nanoseconds>::fail(quote(text) + " is too long (the largest duration is about 292 years)");
        case detail::ScaleResult::not_whole: break;
    }
    return Parsed<nanoseconds>::fail(quote(text) + " is not a whole number of nanoseconds");
}

std::string format_duration(nanoseconds duration) {
    const auto count = duration.count();
    if (count == 0) return "0s";
    // Negative durations never come out of the parser; spell them anyway.
    const std::string sign = count < 0 ? "-" : "";
    const std::uint64_t magnitude =
        count < 0 ? 0ULL - static_cast<std::uint64_t>(count) : static_cast<std::uint64_t>(count);
    for (const Unit& unit : units)
        if (magnitude % unit.nanoseconds == 0)
            return sign + std::to_string(magnitude / unit.nanoseconds) + std::string(unit.name);
    return sign + std::to_string(magnitude) + "ns";  // unreachable: ns divides everything
}

}  // namespace regiond::config

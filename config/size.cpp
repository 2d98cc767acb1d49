#include "config/size.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>

#include "config/quantity.hpp"
#include "config/quote.hpp"

namespace regiond::config {
namespace {

struct Unit {
    std::string_view name;
    std::uint64_t bytes;
};

constexpr std::uint64_t Ki = 1024;
constexpr std::uint64_t K = 1000;

// format_size tries these in order: binary units first (memory is sized in
// them), then decimal, then plain bytes.
constexpr std::array<Unit, 10> units{{
    {"TiB", Ki* Ki* Ki* Ki},
    {"GiB", Ki* Ki* Ki},
    {"MiB", Ki* Ki},
    {"KiB", Ki},
    {"TB", K* K* K* K},
    {"GB", K* K* K},
    {"MB", K* K},
    {"kB", K},
    {"B", 1},
    {"KB", K},  // accepted, never printed
}};

constexpr std::string_view unit_help =
    "units are B, kB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024)";

const Unit* find_unit(std::string_view name) {
    for (const Unit& unit : units)
        if (unit.name == name) return &unit;
    return nullptr;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
    });
}

// "mib" -> "MiB": units are case-sensitive, so say which spelling was meant.
const Unit* find_unit_ignoring_case(std::string_view name) {
    for (const Unit& unit : units)
        if (equal_ignoring_case(unit.name, name)) return &unit;
    return nullptr;
}

}  // namespace

Parsed<std::uint64_t> parse_size(std::string_view text) {
    using detail::quote;
    using Result = Parsed<std::uint64_t>;
    if (text.empty())
        return Result::fail("empty size; write a number with a unit, e.g. \"64MiB\" (" + std::string(unit_help) + ")");
    if (text.front() == '-') return Result::fail(quote(text) + " is negative; a size cannot be");
    if (text.find_first_of(" \t") != std::string_view::npos)
        return Result::fail(quote(text) + " contains a space; write the number and unit together, e.g. \"64MiB\"");

    const auto quantity = detail::split_quantity(text);
    if (!quantity)
        return Result::fail(quote(text) +
                            " is not a size; write a number with a unit, e.g. "
                            "\"64MiB\" (" +
                            std::string(unit_help) + ")");
    const std::string number(quantity->integer_digits);
    if (quantity->unit.empty())
        return Result::fail(quote(text) + " has no unit; write e.g. \"" + number + "B\" or \"" + number + "MiB\" (" +
                            std::string(unit_help) + ")");
    const Unit* unit = find_unit(quantity->unit);
    if (unit == nullptr) {
        if (const Unit* meant = find_unit_ignoring_case(quantity->unit))
            return Result::fail(quote(text) + ": units are case-sensitive; did you mean \"" + number +
                                std::string(meant->name) + "\"? (" + std::string(unit_help) + ")");
        return Result::fail(quote(text) + " has an unknown unit " + quote(quantity->unit) + "; " +
                            std::string(unit_help));
    }

    std::uint64_t bytes = 0;
    switch (detail::scale_quantity(*quantity, unit->bytes, std::numeric_limits<std::uint64_t>::max(), bytes)) {
        case detail::ScaleResult::ok: return Result::ok(bytes);
        case detail::ScaleResult::overflow:
            return Result::fail(quote(text) + " is too large (a size must be below 2^64 bytes)");
        case detail::ScaleResult::not_whole: break;
    }
    return Result::fail(quote(text) + " is not a whole number of bytes");
}

std::string format_size(std::uint64_t bytes) {
    if (bytes == 0) return "0B";
    for (const Unit& unit : units)
        if (bytes % unit.bytes == 0) return std::to_string(bytes / unit.bytes) + std::string(unit.name);
    return std::to_string(bytes) + "B";  // unreachable: "B" divides everything
}

}  // namespace regiond::config

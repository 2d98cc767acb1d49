#include <catch2/catch.hpp>

#include "config/size.hpp"

using regiond::config::format_size;
using regiond::config::parse_size;

namespace {

std::uint64_t parsed(std::string_view text) {
    auto result = parse_size(text);
    INFO(text << ": " << result.error());
    REQUIRE(result.has_value());
    return result.value();
}

std::string error_of(std::string_view text) {
    auto result = parse_size(text);
    REQUIRE_FALSE(result.has_value());
    return result.error();
}

}  // namespace

TEST_CASE("binary and decimal size units", "[config][size]") {
    CHECK(parsed("64MiB") == 64ULL << 20);
    CHECK(parsed("512KiB") == 512ULL << 10);
    CHECK(parsed("1GiB") == 1ULL << 30);
    CHECK(parsed("2TiB") == 2ULL << 40);
    CHECK(parsed("4096B") == 4096);
    CHECK(parsed("0B") == 0);
    CHECK(parsed("1MB") == 1'000'000);
    CHECK(parsed("1kB") == 1'000);
    CHECK(parsed("1KB") == 1'000);
    CHECK(parsed("3GB") == 3'000'000'000ULL);
    CHECK(parsed("1TB") == 1'000'000'000'000ULL);
    CHECK(parsed("1.5KiB") == 1536);
    CHECK(parsed("0.5MiB") == 512ULL << 10);
}

TEST_CASE("a size without a unit is refused with an example", "[config][size]") {
    const std::string message = error_of("4096");
    CHECK_THAT(message, Catch::Contains("no unit"));
    CHECK_THAT(message, Catch::Contains("\"4096B\""));
}

TEST_CASE("malformed sizes are refused with a reason", "[config][size]") {
    CHECK_THAT(error_of(""), Catch::Contains("empty"));
    CHECK_THAT(error_of("-1MiB"), Catch::Contains("negative"));
    CHECK_THAT(error_of("64 MiB"), Catch::Contains("space"));
    CHECK_THAT(error_of("64mib"), Catch::Contains("did you mean \"64MiB\""));
    CHECK_THAT(error_of("64Mb"), Catch::Contains("did you mean \"64MB\""));
    CHECK_THAT(error_of("64M"), Catch::Contains("unknown unit \"M\""));
    CHECK_THAT(error_of("MiB"), Catch::Contains("not a size"));
    CHECK_THAT(error_of("1.5B"), Catch::Contains("whole number of bytes"));
    CHECK_THAT(error_of("16777216TiB"), Catch::Contains("too large"));
    CHECK(parsed("18446744073709551615B") == UINT64_MAX);
    CHECK_THAT(error_of("18446744073709551616B"), Catch::Contains("too large"));
}

TEST_CASE("format_size prefers binary units and round-trips", "[config][size]") {
    CHECK(format_size(0) == "0B");
    CHECK(format_size(64ULL << 20) == "64MiB");
    CHECK(format_size(1'000'000) == "1MB");
    CHECK(format_size(1536) == "1536B");  // 1.5KiB is not an integer count of KiB
    CHECK(format_size(4097) == "4097B");
    for (auto text : {"64MiB", "1MB", "4097B", "1GiB", "3kB"}) CHECK(format_size(parsed(text)) == text);
}

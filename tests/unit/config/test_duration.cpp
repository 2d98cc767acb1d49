#include <catch2/catch.hpp>

#include "config/duration.hpp"

using regiond::config::format_duration;
using regiond::config::parse_duration;
using namespace std::chrono_literals;

namespace {

std::chrono::nanoseconds parsed(std::string_view text) {
    auto result = parse_duration(text);
    INFO(text << ": " << result.error());
    REQUIRE(result.has_value());
    return result.value();
}

std::string error_of(std::string_view text) {
    auto result = parse_duration(text);
    REQUIRE_FALSE(result.has_value());
    return result.error();
}

}  // namespace

TEST_CASE("durations with every unit parse exactly", "[config][duration]") {
    CHECK(parsed("250ms") == 250ms);
    CHECK(parsed("5s") == 5s);
    CHECK(parsed("1m") == 1min);
    CHECK(parsed("1h") == 1h);
    CHECK(parsed("100us") == 100us);
    CHECK(parsed("100\u00b5s") == 100us);
    CHECK(parsed("7ns") == 7ns);
    CHECK(parsed("2d") == 48h);
    CHECK(parsed("0s") == 0s);
    CHECK(parsed("0ms") == 0s);
}

TEST_CASE("fractional durations are exact, not rounded through a double", "[config][duration]") {
    CHECK(parsed("1.5s") == 1500ms);
    CHECK(parsed("1.1s") == 1100ms);
    CHECK(parsed("0.25s") == 250ms);
    CHECK(parsed("2.50m") == 150s);
    CHECK(parsed("0.001ms") == 1us);
    CHECK(parsed("1.000000000s") == 1s);
}

TEST_CASE("a duration without a unit is refused with an example", "[config][duration]") {
    const std::string message = error_of("5");
    CHECK_THAT(message, Catch::Contains("no unit"));
    CHECK_THAT(message, Catch::Contains("\"5s\""));
    CHECK_THAT(error_of("1.5"), Catch::Contains("no unit"));
}

TEST_CASE("malformed durations are refused with a reason", "[config][duration]") {
    CHECK_THAT(error_of(""), Catch::Contains("empty"));
    CHECK_THAT(error_of("-5s"), Catch::Contains("negative"));
    CHECK_THAT(error_of("5 s"), Catch::Contains("space"));
    CHECK_THAT(error_of("5sec"), Catch::Contains("unknown unit \"sec\""));
    CHECK_THAT(error_of("5S"), Catch::Contains("unknown unit"));
    CHECK_THAT(error_of("s"), Catch::Contains("not a duration"));
    CHECK_THAT(error_of(".5s"), Catch::Contains("not a duration"));
    CHECK_THAT(error_of("5.s"), Catch::Contains("not a duration"));
    CHECK_THAT(error_of("1m30s"), Catch::Contains("unknown unit"));
    CHECK_THAT(error_of("1.5ns"), Catch::Contains("whole number of nanoseconds"));
    CHECK_THAT(error_of("300y"), Catch::Contains("unknown unit"));
    CHECK_THAT(error_of("1000000d"), Catch::Contains("too long"));
    CHECK_THAT(error_of("99999999999999999999999s"), Catch::Contains("too long"));
}

TEST_CASE("the largest duration fits and one more nanosecond does not", "[config][duration]") {
    CHECK(parsed("9223372036854775807ns").count() == INT64_MAX);
    CHECK_THAT(error_of("9223372036854775808ns"), Catch::Contains("too long"));
}

TEST_CASE("format_duration picks the shortest exact spelling", "[config][duration]") {
    CHECK(format_duration(0s) == "0s");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(1500ms) == "1500ms");
    CHECK(format_duration(60s) == "1m");
    CHECK(format_duration(90s) == "90s");
    CHECK(format_duration(720h) == "30d");
    CHECK(format_duration(1500us) == "1500us");
    CHECK(format_duration(7ns) == "7ns");
    for (auto text : {"250ms", "5s", "1h", "30d", "1500us", "7ns"}) CHECK(format_duration(parsed(text)) == text);
}

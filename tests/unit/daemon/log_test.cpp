// The daemon's log lines (daemon/log.hpp): client-supplied text (program names,
// SQL in errors) can never end a line, forge one, or reach the terminal as an
// escape sequence; valid UTF-8 text stays readable.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daemon/log.hpp"

using regiond::daemon::log::escape;
namespace dlog = regiond::daemon::log;

TEST_CASE("log escaping: readable escapes for newline, return, tab and backslash", "[log]") {
    CHECK(escape("plain text") == "plain text");
    CHECK(escape("a\nb") == "a\\nb");
    CHECK(escape("a\r\nregiond error: forged") == "a\\r\\nregiond error: forged");
    CHECK(escape("col\tcol") == "col\\tcol");
    CHECK(escape("C:\\path") == "C:\\\\path");
    CHECK(escape("\\x1b") == "\\\\x1b");  // text that looks like an escape stays distinguishable
}

TEST_CASE("log escaping: every other C0 control and DEL as \\xNN", "[log]") {
    for (int c = 0; c < 0x20; ++c) {
        if (c == '\n' || c == '\r' || c == '\t') continue;
        const std::string in(1, static_cast<char>(c));
        char expected[8];
        std::snprintf(expected, sizeof expected, "\\x%02x", c);
        INFO(c);
        CHECK(escape(in) == expected);
    }
    CHECK(escape(std::string("a\0b", 3)) == "a\\x00b");
    CHECK(escape("\x7f") == "\\x7f");
    CHECK(escape("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m");
    CHECK(escape("\x1b]0;title\x07") == "\\x1b]0;title\\x07");
}

TEST_CASE("log escaping: C1 controls and bytes that are not UTF-8, byte by byte", "[log]") {
    CHECK(escape("\xc2\x9b"
                 "31m") == "\\xc2\\x9b31m");    // U+009B CSI, encoded
    CHECK(escape("\xc2\x85") == "\\xc2\\x85");  // U+0085 NEL
    CHECK(escape("\x9b"
                 "31m") == "\\x9b31m");  // a lone 8-bit CSI
    CHECK(escape("\xff\xfe") == "\\xff\\xfe");
    CHECK(escape("\xc3") == "\\xc3");                             // truncated sequence
    CHECK(escape("\xc3(") == "\\xc3(");                           // bad continuation
    CHECK(escape("\xc0\xaf") == "\\xc0\\xaf");                    // overlong '/'
    CHECK(escape("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");           // overlong, 3 bytes
    CHECK(escape("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
    CHECK(escape("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
}

TEST_CASE("log escaping: valid UTF-8 stays as it is, line separators escaped", "[log]") {
    CHECK(escape("caf\xc3\xa9") == "caf\xc3\xa9");                            // é
    CHECK(escape("\xc2\xa0nbsp") == "\xc2\xa0nbsp");                          // U+00A0: first after C1
    CHECK(escape("\xe6\x9d\xb1\xe4\xba\xac") == "\xe6\x9d\xb1\xe4\xba\xac");  // 東京
    CHECK(escape("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");                  // an emoji
    CHECK(escape("a\xe2\x80\xa8z") == "a\\u2028z");
    CHECK(escape("a\xe2\x80\xa9z") == "a\\u2029z");
}

TEST_CASE("log::write hands the sink one escaped line", "[log]") {
    std::vector<std::string> lines;
    dlog::set_sink([&](dlog::Level, std::string_view line) { lines.emplace_back(line); });
    dlog::warning("client \"evil\x1b[2J\nregiond error: fake entry\" refused");
    dlog::set_sink({});
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "client \"evil\\x1b[2J\\nregiond error: fake entry\" refused");
}

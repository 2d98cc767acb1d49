// Small pure helpers: hysteresis, text formatting, conninfo display names.
#include <catch2/catch.hpp>

#include "daemon/backends.hpp"
#include "daemon/hysteresis.hpp"
#include "daemon/text.hpp"

using namespace regiond::daemon;
using namespace std::chrono_literals;

TEST_CASE("hysteresis: the first result decides, then K failures / M successes", "[health]") {
    Hysteresis h(3, 2);
    CHECK_FALSE(h.known());
    CHECK(h.record(true));  // first verdict
    CHECK(h.up());
    CHECK_FALSE(h.record(false));
    CHECK_FALSE(h.record(false));
    CHECK(h.up());
    CHECK(h.record(false));  // third failure in a row
    CHECK_FALSE(h.up());
    CHECK_FALSE(h.record(true));
    CHECK_FALSE(h.record(false));  // resets the success streak
    CHECK_FALSE(h.record(true));
    CHECK(h.record(true));
    CHECK(h.up());

    Hysteresis down(3, 2);
    CHECK(down.record(false));  // a first failure is a verdict too (down, known)
    CHECK(down.known());
    CHECK_FALSE(down.up());
}

TEST_CASE("durations and sizes print as people read them", "[text]") {
    CHECK(format_duration(5s) == "5s");
    CHECK(format_duration(7200ms) == "7.2s");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(1500us) == "1.5ms");
    CHECK(format_duration_ms(0) == "0s");
    CHECK(format_duration(std::chrono::nanoseconds(750)) == "750ns");
    CHECK(format_size(9u << 20) == "9 MiB");
    CHECK(format_size(8u << 20) == "8 MiB");
    CHECK(format_size((17u << 20) / 2) == "8.5 MiB");
    CHECK(format_size(4096) == "4 KiB");
    CHECK(format_size(100) == "100 bytes");
    CHECK(format_decimal(1234, 3) == "1.234");
    CHECK(format_decimal(5, 3) == "0.005");
    CHECK(json_escape("a\"b\\c\n\x01") == "a\\\"b\\\\c\\n\\u0001");
}

TEST_CASE("conninfo display names show host and port only", "[backends]") {
    CHECK(conninfo_display_name("host=10.1.0.1 port=6432 dbname=app user=app password=hunter2") == "10.1.0.1:6432");
    CHECK(conninfo_display_name("postgresql://app:hunter2@db.example:5433/app") == "db.example:5433");
    CHECK(conninfo_display_name("dbname=app") == "local:5432");
    CHECK(conninfo_display_name("hostaddr=127.0.0.1 password=x") == "127.0.0.1:5432");
    CHECK(conninfo_display_name("this is not = valid '") == "(invalid conninfo)");
}

// Consistency tokens (shm/base/token.hpp).
#include <catch2/catch.hpp>

#include "shm/base/token.hpp"

using regiond::base::format_token;
using regiond::base::parse_token;

TEST_CASE("parse_token reads SYSTEMID/HI/LO", "[token]") {
    const auto t = parse_token("7713697811223072330/0/41F2E80");
    REQUIRE(t);
    CHECK(t->system_identifier == 7713697811223072330ULL);
    CHECK(t->lsn == 0x41F2E80);
    const auto max = parse_token("18446744073709551615/FFFFFFFF/ffffffff");
    REQUIRE(max);
    CHECK(max->system_identifier == UINT64_MAX);
    CHECK(max->lsn == UINT64_MAX);
    CHECK(format_token(*t) == "7713697811223072330/0/41F2E80");
}

TEST_CASE("parse_token rejects anything else", "[token]") {
    for (const char* bad : {"", "/0/1", "1/0", "1//0/1", "18446744073709551616/0/1", "123456789012345678901/0/1",
                            "-1/0/1", " 1/0/1", "1/0/1 ", "1/0/1/2", "x/0/1", "1/0/G", "1/123456789/0"}) {
        INFO(bad);
        CHECK_FALSE(parse_token(bad));
    }
}

// LSN text (shm/base/lsn.hpp): the one implementation behind the daemon's status,
// the PostgreSQL backend's pg::parse_lsn/format_lsn and libregiond's token check.
#include <catch2/catch.hpp>

#include "shm/base/lsn.hpp"

using regiond::base::format_lsn;
using regiond::base::parse_lsn;

TEST_CASE("parse_lsn reads PostgreSQL's X/Y text", "[lsn]") {
    CHECK(parse_lsn("0/0") == 0u);
    CHECK(parse_lsn("0/16B3748") == 0x16B3748u);
    CHECK(parse_lsn("16/B374D848") == 0x16B374D848u);
    CHECK(parse_lsn("FFFFFFFF/FFFFFFFF") == 0xFFFFFFFFFFFFFFFFu);
    CHECK(parse_lsn("1/0") == 0x100000000u);
    CHECK(parse_lsn("a/bc") == 0xA000000BCu);  // lower case is accepted too
    CHECK(parse_lsn("00000001/00000002") == 0x100000002u);
}

TEST_CASE("parse_lsn rejects anything else", "[lsn]") {
    for (const char* bad :
         {"",     "/",     "0/",   "/0",   "0",    "16B3748",     "0/1/2",       "G/0",  "0/G",  " 0/1",
          "0/1 ", "0x1/2", "-1/0", "+1/0", "1/-0", "100000000/0", "0/100000000", "0//1", "0 /1", "\xff/1"}) {
        INFO("input '" << bad << "'");
        CHECK_FALSE(parse_lsn(bad).has_value());
    }
    CHECK_FALSE(parse_lsn(std::string_view("0/1\0", 4)).has_value());
}

TEST_CASE("format_lsn prints like PostgreSQL (%X/%X)", "[lsn]") {
    CHECK(format_lsn(0) == "0/0");
    CHECK(format_lsn(0x16B3748) == "0/16B3748");
    CHECK(format_lsn(0x16B374D848) == "16/B374D848");
    CHECK(format_lsn(0xFFFFFFFFFFFFFFFFu) == "FFFFFFFF/FFFFFFFF");
    CHECK(format_lsn(0x100000000u) == "1/0");
}

TEST_CASE("format_lsn and parse_lsn round-trip", "[lsn]") {
    for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0xDEADBEEF},
                            std::uint64_t{0x123456789ABCDEF0}, ~std::uint64_t{0}, std::uint64_t{1} << 32}) {
        CHECK(parse_lsn(format_lsn(v)) == v);
    }
}

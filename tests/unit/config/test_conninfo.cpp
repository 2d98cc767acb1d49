#include <catch2/catch.hpp>

#include "config/conninfo.hpp"

using regiond::config::conninfo_problem;

TEST_CASE("conninfo strings libpq accepts", "[config][conninfo]") {
    CHECK_FALSE(conninfo_problem("host=10.0.0.1 port=5432 dbname=app user=app"));
    CHECK_FALSE(conninfo_problem("host='/run/postgresql' password='a b'"));
    CHECK_FALSE(conninfo_problem("postgresql://app:pw@db.example:5432/app?sslmode=require"));
    CHECK_FALSE(conninfo_problem("postgres://[::1]/app"));
}

// libpq's own messages quote the input; each reason must come out without it.
TEST_CASE("conninfo errors give a reason and never the string", "[config][conninfo]") {
    const std::pair<std::string_view, std::string_view> cases[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"host=x password=hunter2 foo", "missing \"=\""},
        {"hunter2", "missing \"=\""},
        {"host=x hunter2=y", "unknown keyword"},
        {"host='x password=hunter2", "not terminated"},
        {"postgresql://u:hunter2@[::1/db", "IPv6"},
        {"postgresql://u:hunter2@h/db?hunter2=1", "unknown query parameter"},
        {"postgresql://u:hunter2@h/db?hunter2", "name=value"},
        {"postgresql://u:hunter2%zz@h/db", "percent-encoding"},
        {"postgresql://u:hunter2%00@h/db", "percent-encoding"},
    };
    for (const auto& [conninfo, reason] : cases) {
        INFO(conninfo);
        const auto problem = conninfo_problem(conninfo);
        REQUIRE(problem.has_value());
        CHECK_THAT(*problem, Catch::Contains(std::string(reason)));
        CHECK_THAT(*problem, !Catch::Contains("hunter2"));
    }
    using namespace std::string_literals;
    CHECK_THAT(conninfo_problem("host=x\0password=y"s).value_or(""), Catch::Contains("NUL"));
}

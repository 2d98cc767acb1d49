// Each class of configuration error: the right key, at the right line.
#include <catch2/catch.hpp>

#include "config/parse.hpp"
#include "test_support.hpp"

using namespace regiond::config;
using test::parse;

namespace {

// The one diagnostic of `outcome`, which must have `key`.
Diagnostic only_error(const ParseOutcome& outcome, std::string_view key) {
    INFO(test::all_messages(outcome));
    CHECK_FALSE(outcome.config.has_value());
    REQUIRE(outcome.errors.size() == 1);
    CHECK(outcome.errors[0].key == key);
    CHECK(outcome.errors[0].file == test::test_file);
    return outcome.errors[0];
}

// The minimal configuration plus `lines` from line 9 on.
std::string minimal_plus(std::string_view lines) {
    return std::string(test::minimal_config) + std::string(lines);
}

// A [daemon] table with `line` as its line 4; the rest is the minimal config.
std::string with_daemon_line(std::string_view line) {
    return "[daemon]\nregion = \"us\"\nclient_group = \"root\"\n" + std::string(line) +
           "\n\n[[regions]]\nname = \"us\"\nprimary = \"host=db1\"\nredis = \"redis://h:6379\"\n";
}

// The minimal config's region with `line` as line 9 (inside [[regions]]).
std::string with_region_line(std::string_view line) {
    return minimal_plus(std::string(line) + "\n");
}

}  // namespace

TEST_CASE("a TOML syntax error reports toml++'s line and column", "[config][errors]") {
    const auto error = only_error(parse(minimal_plus("[lag\nmax_lag = \"5s\"\n")), "");
    CHECK(error.line == 9);
    CHECK(error.column > 1);
    CHECK_THAT(error.message, Catch::StartsWith("TOML syntax error while parsing table header: "));
    CHECK_THAT(error.to_string(), Catch::StartsWith("test.toml:9:"));
}

TEST_CASE("unknown keys are errors that name the key", "[config][errors]") {
    SECTION("top level") {
        // Top-level keys must come before the first table header.
        const auto error = only_error(parse("colour = \"red\"\n" + minimal_plus("")), "colour");
        CHECK(error.line == 1);
        CHECK(error.column == 1);
        CHECK_THAT(error.message, Catch::Contains("unknown key"));
        CHECK_THAT(error.message, Catch::Contains("daemon, cache, consistency, lag, health, regions"));
    }
    SECTION("a misspelt table") {
        const auto error = only_error(parse(minimal_plus("[caches]\nmemory = \"1GiB\"\n")), "caches");
        CHECK(error.line == 9);
        CHECK_THAT(error.message, Catch::Contains("did you mean \"cache\"?"));
    }
    SECTION("in a section") {
        const auto error = only_error(parse(minimal_plus("[lag]\nmax_lags = \"5s\"\n")), "lag.max_lags");
        CHECK(error.line == 10);
        CHECK_THAT(error.message, Catch::Contains("did you mean \"max_lag\"?"));
    }
    SECTION("in [daemon]") {
        const auto error = only_error(parse(with_daemon_line("sockets = \"/run/x.sock\"")), "daemon.sockets");
        CHECK(error.line == 4);
    }
    SECTION("in a region") {
        const auto error = only_error(parse(with_region_line("colour = \"red\"")), "regions[0].colour");
        CHECK(error.line == 9);
        CHECK_THAT(error.message, Catch::Contains("name, primary, replicas, redis, pool_size"));
    }
    SECTION("a key that needs quotes is quoted in the path") {
        const auto error = only_error(parse(minimal_plus("[lag]\n\"max lag\" = \"5s\"\n")), "lag.\"max lag\"");
        CHECK(error.line == 10);
    }
    SECTION("nested below a known key") {
        const auto error = only_error(parse(minimal_plus("[health.extra]\nx = 1\n")), "health.extra");
        CHECK(error.line == 9);
    }
}

TEST_CASE("values of the wrong type", "[config][errors]") {
    SECTION("an integer where a size belongs shows how to write it") {
        const auto error = only_error(parse(minimal_plus("[cache]\nmemory = 64\n")), "cache.memory");
        CHECK(error.line == 10);
        CHECK(error.column == 10);
        CHECK_THAT(error.message, Catch::Contains("got an integer"));
        CHECK_THAT(error.message, Catch::Contains("\"64MiB\""));
    }
    SECTION("an integer where a duration belongs shows how to write it") {
        const auto error = only_error(parse(minimal_plus("[lag]\nmax_lag = 5\n")), "lag.max_lag");
        CHECK(error.line == 10);
        CHECK_THAT(error.message, Catch::Contains("\"5s\""));
    }
    SECTION("a string where an integer belongs") {
        const auto error = only_error(parse(with_region_line("pool_size = \"20\"")), "regions[0].pool_size");
        CHECK(error.line == 9);
        CHECK_THAT(error.message, Catch::Contains("expected an integer, got a string"));
    }
    SECTION("a string where an array belongs") {
        const auto error = only_error(parse(with_region_line("replicas = \"host=db2\"")), "regions[0].replicas");
        CHECK(error.line == 9);
        CHECK_THAT(error.message, Catch::Contains("expected an array of conninfo strings"));
    }
    SECTION("a wrong element in an array") {
        const auto error =
            only_error(parse(with_daemon_line("allowed_uids = [1000, \"www-data\"]")), "daemon.allowed_uids[1]");
        CHECK(error.line == 4);
        CHECK(error.column == 23);
    }
    SECTION("a value where a section belongs") {
        const auto error = only_error(parse("cache = \"big\"\n" + minimal_plus("")), "cache");
        CHECK(error.line == 1);
        CHECK_THAT(error.message, Catch::Contains("expected a table (written [cache])"));
    }
    SECTION("[regions] instead of [[regions]]") {
        const auto error = only_error(parse("[daemon]\nregion = \"us\"\nclient_group = \"root\"\n"
                                            "[regions]\nname = \"us\"\n"),
                                      "regions");
        CHECK(error.line == 4);
        CHECK_THAT(error.message, Catch::Contains("[[regions]]"));
    }
}

TEST_CASE("exactly one region has a primary", "[config][errors]") {
    SECTION("none: reported at the regions array") {
        const auto error = only_error(parse(R"([daemon]
region = "us"
client_group = "root"

[[regions]]
name = "us"
replicas = ["host=db1"]
redis = "redis://h:6379"

[[regions]]
name = "eu"
redis = "redis://h:6380"
)"),
                                      "regions");
        CHECK(error.line == 5);
        CHECK_THAT(error.message, Catch::Contains("no region has a primary"));
    }
    SECTION("two: reported at the second") {
        const auto error = only_error(parse(R"([daemon]
region = "us"
client_group = "root"

[[regions]]
name = "us"
primary = "host=db1"
redis = "redis://h:6379"

[[regions]]
name = "eu"
primary = "host=db2"
redis = "redis://h:6380"
)"),
                                      "regions[1].primary");
        CHECK(error.line == 12);
        CHECK_THAT(error.message, Catch::Contains("only one region may have a primary"));
        CHECK_THAT(error.message, Catch::Contains("line 7"));
    }
}

TEST_CASE("region names are unique", "[config][errors]") {
    const auto error = only_error(parse(minimal_plus(R"(
[[regions]]
name = "us"
redis = "redis://h:6380"
)")),
                                  "regions[1].name");
    CHECK(error.line == 11);
    CHECK_THAT(error.message, Catch::Contains("already used by regions[0] at line 6"));
}

TEST_CASE("region names are restricted to plain characters", "[config][errors]") {
    const auto error = only_error(parse(R"([daemon]
region = "us"
client_group = "root"
[[regions]]
name = "us/east"
primary = "host=db1"
redis = "redis://h:6379"
)"),
                                  "regions[0].name");
    CHECK(error.line == 5);
}

TEST_CASE("daemon.region names a configured region", "[config][errors]") {
    const auto error = only_error(parse(R"([daemon]
region = "eu-west-9"
client_group = "root"

[[regions]]
name = "us"
primary = "host=db1"
redis = "redis://h:6379"
)"),
                                  "daemon.region");
    CHECK(error.line == 2);
    CHECK(error.column == 10);
    CHECK_THAT(error.message, Catch::Contains("\"eu-west-9\""));
    CHECK_THAT(error.message, Catch::Contains("the regions are: us"));
}

TEST_CASE("bad durations and sizes", "[config][errors]") {
    SECTION("duration without a unit") {
        const auto error = only_error(parse(minimal_plus("[lag]\npoll_interval = \"100\"\n")), "lag.poll_interval");
        CHECK(error.line == 10);
        CHECK_THAT(error.message, Catch::Contains("has no unit"));
        CHECK_THAT(error.message, Catch::Contains("\"100ms\""));
    }
    SECTION("duration with an unknown unit") {
        const auto error =
            only_error(parse(minimal_plus("[consistency]\nmax_wait = \"50 millis\"\n")), "consistency.max_wait");
        CHECK(error.line == 10);
    }
    SECTION("size with the wrong case") {
        const auto error = only_error(parse(minimal_plus("[cache]\nmemory = \"64mib\"\n")), "cache.memory");
        CHECK(error.line == 10);
        CHECK_THAT(error.message, Catch::Contains("did you mean \"64MiB\""));
    }
    SECTION("size that is not a number") {
        const auto error = only_error(parse(with_daemon_line("max_request = \"lots\"")), "daemon.max_request");
        CHECK(error.line == 4);
        CHECK_THAT(error.message, Catch::Contains("not a size"));
    }
}

TEST_CASE("every bounded key refuses values out of bounds", "[config][errors][bounds]") {
    struct Case {
        std::string_view section;  // "daemon", "region" or a section name
        std::string_view key;
        std::string_view value;     // TOML text
        std::string_view expected;  // part of the message
    };
    const Case cases[] = {
        {"region", "pool_size", "0", "between 1 and 1000 (got 0)"},
        {"region", "pool_size", "1001", "between 1 and 1000 (got 1001)"},
        {"cache", "memory", "\"512KiB\"", "between 1MiB and 64GiB (got 512KiB)"},
        {"cache", "memory", "\"65GiB\"", "between 1MiB and 64GiB"},
        {"cache", "default_ttl", "\"500ms\"", "between 1s and 30d"},
        {"cache", "default_ttl", "\"31d\"", "between 1s and 30d (got 31d)"},
        {"consistency", "max_wait", "\"61s\"", "between 0s and 1m (got 61s)"},
        {"lag", "poll_interval", "\"5ms\"", "between 10ms and 1m"},
        {"lag", "poll_interval", "\"2m\"", "between 10ms and 1m"},
        {"lag", "max_lag", "\"0s\"", "between 1ms and 1h"},
        {"lag", "max_lag", "\"2h\"", "between 1ms and 1h"},
        {"lag", "alert_after", "\"900us\"", "between 1ms and 1h"},
        {"lag", "alert_after", "\"61m\"", "between 1ms and 1h"},
        {"health", "down_after", "0", "between 1 and 100"},
        {"health", "up_after", "101", "between 1 and 100"},
        {"health", "connect_timeout", "\"5ms\"", "between 10ms and 1m"},
        {"health", "check_interval", "\"2m\"", "between 10ms and 1m"},
        {"daemon", "max_clients", "0", "between 1 and 65536"},
        {"daemon", "max_clients", "65537", "between 1 and 65536"},
        {"daemon", "max_request", "\"1KiB\"", "between 4KiB and 1GiB"},
        {"daemon", "max_request", "\"2GiB\"", "between 4KiB and 1GiB"},
        {"daemon", "request_timeout", "\"0s\"", "between 1ms and 1h"},
        {"daemon", "drain_timeout", "\"11m\"", "between 0s and 10m"},
        {"daemon", "ring_size", "\"32KiB\"", "between 64KiB and 256MiB"},
        {"daemon", "ring_size", "\"512MiB\"", "between 64KiB and 256MiB"},
        {"daemon", "ring_size", "\"1000KiB\"", "not a power of two; use \"512KiB\" or \"1MiB\""},
        {"daemon", "allowed_uids", "[4294967295]", "between 0 and 4294967294"},
        {"daemon", "max_in_flight_per_client", "0", "between 1 and 65536"},
        {"daemon", "max_in_flight_per_client", "65537", "between 1 and 65536"},
        {"daemon", "max_result", "\"63KiB\"", "between 64KiB and 16GiB"},
        {"daemon", "max_result", "\"17GiB\"", "between 64KiB and 16GiB"},
        {"daemon", "max_backlog", "\"1023KiB\"", "between 1MiB and 64GiB"},
        {"daemon", "max_backlog", "\"65GiB\"", "between 1MiB and 64GiB"},
        {"daemon", "max_request_timeout", "\"900us\"", "between 1ms and 1d"},
        {"daemon", "max_request_timeout", "\"25h\"", "between 1ms and 1d"},
    };
    for (const Case& c : cases) {
        const std::string line = std::string(c.key) + " = " + std::string(c.value);
        std::string text;
        std::string key;
        int expected_line = 0;
        if (c.section == "daemon") {
            text = with_daemon_line(line);
            key = "daemon." + std::string(c.key);
            expected_line = 4;
        } else if (c.section == "region") {
            text = with_region_line(line);
            key = "regions[0]." + std::string(c.key);
            expected_line = 9;
        } else {
            text = minimal_plus("[" + std::string(c.section) + "]\n" + line + "\n");
            key = std::string(c.section) + "." + std::string(c.key);
            expected_line = 10;
        }
        if (c.key == "allowed_uids") key += "[0]";
        INFO(line);
        const ParseOutcome outcome = parse(text);
        INFO(test::all_messages(outcome));
        REQUIRE(outcome.errors.size() == 1);
        CHECK(outcome.errors[0].key == key);
        CHECK(outcome.errors[0].line == expected_line);
        CHECK_THAT(outcome.errors[0].message, Catch::Contains(std::string(c.expected)));
    }
}

TEST_CASE("the bounds themselves are accepted", "[config][errors][bounds]") {
    const ParseOutcome outcome = parse(R"([daemon]
region = "us"
client_group = "root"
max_clients = 65536
max_request = "4KiB"
request_timeout = "1h"
drain_timeout = "0s"
ring_size = "256MiB"
max_in_flight_per_client = 65536
max_result = "16GiB"
max_backlog = "64GiB"
max_request_timeout = "24h"
[cache]
memory = "64GiB"
default_ttl = "30d"
[consistency]
max_wait = "60s"
[lag]
poll_interval = "10ms"
max_lag = "1ms"
alert_after = "1h"
[health]
down_after = 100
up_after = 1
connect_timeout = "60s"
check_interval = "10ms"
[[regions]]
name = "us"
primary = "host=db1"
redis = "redis://h:6379"
pool_size = 1000
)");
    INFO(test::all_messages(outcome));
    CHECK(outcome.ok());
}

TEST_CASE("keys that bound each other: max_request and ring_size, request_timeout and its cap",
          "[config][errors][bounds]") {
    SECTION("max_request larger than a record of the ring") {
        const auto error = only_error(parse(with_daemon_line("max_request = \"1MiB\"")), "daemon.max_request");
        CHECK(error.line == 4);
        CHECK_THAT(error.message,
                   Catch::Contains("daemon.max_request 1MiB does not fit one record of the request ring"));
        CHECK_THAT(error.message, Catch::Contains("daemon.ring_size 1MiB (the default)"));
        CHECK_THAT(error.message, Catch::Contains("the largest allowed value is \"524272B\""));
    }
    SECTION("a ring too small for the default max_request is reported at ring_size") {
        const auto error = only_error(parse(with_daemon_line("ring_size = \"64KiB\"")), "daemon.ring_size");
        CHECK(error.line == 4);
        CHECK_THAT(error.message, Catch::Contains("daemon.max_request 256KiB (the default)"));
        CHECK_THAT(error.message, Catch::Contains("\"32752B\""));
    }
    SECTION("exactly a record of the ring fits") {
        CHECK(parse(with_daemon_line("ring_size = \"64KiB\"\nmax_request = \"32752B\"")).ok());
    }
    SECTION("a cap below the default request_timeout") {
        const auto error =
            only_error(parse(with_daemon_line("max_request_timeout = \"10s\"")), "daemon.max_request_timeout");
        CHECK(error.line == 4);
        CHECK_THAT(error.message,
                   Catch::Contains("daemon.request_timeout 30s (the default) is above daemon.max_request_timeout 10s"));
    }
    SECTION("a request_timeout above the default cap") {
        const auto error = only_error(parse(with_daemon_line("request_timeout = \"10m\"")), "daemon.request_timeout");
        CHECK_THAT(error.message, Catch::Contains("above daemon.max_request_timeout 5m (the default)"));
    }
    SECTION("equal is fine") {
        CHECK(parse(with_daemon_line("request_timeout = \"10m\"\nmax_request_timeout = \"10m\"")).ok());
    }
}

TEST_CASE("socket paths and the segment name", "[config][errors]") {
    SECTION("a relative socket path") {
        const auto error = only_error(parse(with_daemon_line("socket = \"run/regiond.sock\"")), "daemon.socket");
        CHECK(error.line == 4);
        CHECK(error.column == 10);
        CHECK_THAT(error.message, Catch::Contains("relative path"));
    }
    SECTION("a socket path too long for sun_path") {
        const std::string path = "/" + std::string(107, 'x');
        const auto error =
            only_error(parse(with_daemon_line("admin_socket = \"" + path + "\"")), "daemon.admin_socket");
        CHECK(error.line == 4);
        CHECK_THAT(error.message, Catch::Contains("108 bytes long"));
    }
    SECTION("107 bytes fit") {
        const std::string path = "/" + std::string(106, 'x');
        CHECK(parse(with_daemon_line("socket = \"" + path + "\"")).ok());
    }
    SECTION("socket and admin_socket must differ") {
        const auto error =
            only_error(parse(with_daemon_line("admin_socket = \"/run/regiond//regiond.sock\"")), "daemon.admin_socket");
        CHECK(error.line == 4);
        CHECK_THAT(error.message, Catch::Contains("must be different"));
    }
    SECTION("a segment name with a second slash") {
        const auto error =
            only_error(parse(with_daemon_line("state_segment = \"/regiond/eu\"")), "daemon.state_segment");
        CHECK(error.line == 4);
    }
    SECTION("a segment name without the leading slash") {
        const auto error = only_error(parse(with_daemon_line("state_segment = \"regiond\"")), "daemon.state_segment");
        CHECK_THAT(error.message, Catch::Contains("must start with \"/\""));
    }
    SECTION("a segment name too long") {
        const auto error = only_error(parse(with_daemon_line("state_segment = \"/" + std::string(200, 'x') + "\"")),
                                      "daemon.state_segment");
        CHECK_THAT(error.message, Catch::Contains("201 characters"));
    }
}

TEST_CASE("client_group must exist on this host", "[config][errors]") {
    const auto error = only_error(parse(R"([daemon]
region = "us"
client_group = "no-such-group-regiond-test"
[[regions]]
name = "us"
primary = "host=db1"
redis = "redis://h:6379"
)"),
                                  "daemon.client_group");
    CHECK(error.line == 3);
    CHECK_THAT(error.message, Catch::Contains("does not exist"));
    CHECK_THAT(error.message, Catch::Contains("groupadd"));
}

TEST_CASE("bad connection strings and Redis URLs", "[config][errors]") {
    SECTION("conninfo") {
        const auto error =
            only_error(parse(with_region_line("replicas = [\"host=db2\", \"dbname\"]")), "regions[0].replicas[1]");
        CHECK(error.line == 9);
        CHECK(error.column == 25);
        CHECK_THAT(error.message, Catch::StartsWith("invalid conninfo: "));
    }
    SECTION("redis URL") {
        const auto error = only_error(parse(R"([daemon]
region = "us"
client_group = "root"
[[regions]]
name = "us"
primary = "host=db1"
redis = "redis://10.0.0.2"
)"),
                                      "regions[0].redis");
        CHECK(error.line == 7);
        CHECK_THAT(error.message, Catch::Contains("missing :port"));
    }
}

TEST_CASE("missing required keys point at the table that should hold them", "[config][errors]") {
    SECTION("daemon.region, in [daemon]") {
        const auto error = only_error(parse(R"(# comment

[daemon]
client_group = "root"
[[regions]]
name = "us"
primary = "host=db1"
redis = "redis://h:6379"
)"),
                                      "daemon.region");
        CHECK(error.line == 3);
        CHECK_THAT(error.message, Catch::Contains("required key is missing from [daemon]"));
    }
    SECTION("daemon.region, without a [daemon] table") {
        const ParseOutcome outcome = parse(R"([[regions]]
name = "us"
primary = "host=db1"
redis = "redis://h:6379"
)");
        const auto errors = test::errors_for(outcome, "daemon.region");
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].line == 1);
        CHECK_THAT(errors[0].message, Catch::Contains("no [daemon] table"));
    }
    SECTION("a region's redis, at its [[regions]] header") {
        const auto error = only_error(parse(minimal_plus("\n[[regions]]\nname = \"eu\"\n")), "regions[1].redis");
        CHECK(error.line == 10);
        CHECK_THAT(error.message, Catch::Contains("[[regions]]"));
    }
    SECTION("a region's name") {
        const ParseOutcome outcome = parse(minimal_plus("\n[[regions]]\nredis = \"redis://h:1\"\n"));
        const auto errors = test::errors_for(outcome, "regions[1].name");
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].line == 10);
    }
    SECTION("no regions at all") {
        const auto error = only_error(parse("[daemon]\nregion = \"us\"\nclient_group = \"root\"\n"), "regions");
        CHECK(error.line == 1);
    }
    SECTION("an empty regions array") {
        const auto error =
            only_error(parse("regions = []\n[daemon]\nregion = \"us\"\nclient_group = \"root\"\n"), "regions");
        CHECK(error.line == 1);
        CHECK_THAT(error.message, Catch::Contains("at least one region"));
    }
}

TEST_CASE("every error is reported in one pass, in file order", "[config][errors]") {
    const ParseOutcome outcome = parse(R"([daemon]
region = "us"
client_group = "root"
socket = "relative.sock"
max_clients = 0

[lag]
max_lag = "5"
typo = 1

[[regions]]
name = "us"
redis = "redis://h"
pool_size = 0
)");
    INFO(test::all_messages(outcome));
    CHECK_FALSE(outcome.config.has_value());
    REQUIRE(outcome.errors.size() == 7);
    const std::pair<int, std::string_view> expected[] = {
        {4, "daemon.socket"}, {5, "daemon.max_clients"}, {8, "lag.max_lag"},           {9, "lag.typo"},
        {11, "regions"},      {13, "regions[0].redis"},  {14, "regions[0].pool_size"},
    };
    for (std::size_t i = 0; i < outcome.errors.size(); ++i) {
        CHECK(outcome.errors[i].line == expected[i].first);
        CHECK(outcome.errors[i].key == expected[i].second);
    }
}

TEST_CASE("an unreadable file is one error naming it", "[config][errors]") {
    SECTION("missing") {
        const test::TempDir dir;
        const std::string path = dir.path() + "/absent.toml";
        const ParseOutcome outcome = parse_config_file(path);
        REQUIRE(outcome.errors.size() == 1);
        CHECK(outcome.errors[0].line == 0);
        CHECK(outcome.errors[0].to_string() ==
              path + ": cannot open the configuration file: No such file or directory");
    }
    SECTION("a directory") {
        const test::TempDir dir;
        const ParseOutcome outcome = parse_config_file(dir.path());
        REQUIRE(outcome.errors.size() == 1);
        CHECK_THAT(outcome.errors[0].message, Catch::Contains("directory"));
    }
}

TEST_CASE("Diagnostic::to_string", "[config][errors]") {
    CHECK(Diagnostic{"a.toml", 3, 7, "regions[1].pool_size", "too big"}.to_string() ==
          "a.toml:3:7: regions[1].pool_size: too big");
    CHECK(Diagnostic{"a.toml", 3, 7, "", "TOML syntax error: x"}.to_string() == "a.toml:3:7: TOML syntax error: x");
    CHECK(Diagnostic{"a.toml", 0, 0, "", "cannot open"}.to_string() == "a.toml: cannot open");
}

// daemon.admin_group, and the URI rule for passwords holding '@': what the parser
// accepts, what --check-config says (file:line:col and key), and that no message
// shows any part of a password.
#include <catch2/catch.hpp>

#include <grp.h>
#include <unistd.h>

#include "config/conninfo.hpp"
#include "test_support.hpp"

using namespace regiond::config;

namespace {

std::string config_with(std::string_view daemon_lines, std::string_view primary) {
    return "[daemon]\nregion = \"us\"\nclient_group = \"root\"\n" + std::string(daemon_lines) +
           "\n[[regions]]\nname = \"us\"\nprimary = \"" + std::string(primary) +
           "\"\nredis = \"redis://127.0.0.1:6379\"\n";
}

// No piece of `secret` of 3 or more characters in `text`.
bool free_of(const std::string& text, const std::string& secret) {
    for (std::size_t length = 3; length <= secret.size(); ++length)
        for (std::size_t i = 0; i + length <= secret.size(); ++i)
            if (text.find(secret.substr(i, length)) != std::string::npos) return false;
    return true;
}

}  // namespace

TEST_CASE("daemon.admin_group: absent means none, a group resolves to its gid", "[config][admin_group]") {
    const ParseOutcome none = test::parse(config_with("", "host=db1"));
    REQUIRE(none.ok());
    CHECK(none.config->daemon.admin_group.empty());
    CHECK_FALSE(none.config->daemon.admin_gid.has_value());

    const ParseOutcome root = test::parse(config_with("admin_group = \"root\"", "host=db1"));
    REQUIRE(root.ok());
    CHECK(root.config->daemon.admin_group == "root");
    REQUIRE(root.config->daemon.admin_gid.has_value());
    CHECK(*root.config->daemon.admin_gid == 0);
}

TEST_CASE("daemon.admin_group naming no group is an error at its line and column", "[config][admin_group]") {
    const ParseOutcome outcome = test::parse(config_with("admin_group = \"no-such-group-regiond-test\"", "host=db1"));
    REQUIRE(outcome.errors.size() == 1);
    const Diagnostic& error = outcome.errors[0];
    CHECK(error.key == "daemon.admin_group");
    CHECK(error.line == 4);
    CHECK(error.column == 15);
    CHECK_THAT(error.message, Catch::Contains("group \"no-such-group-regiond-test\" does not exist"));
    CHECK_THAT(error.message, Catch::Contains("groupadd"));
    CHECK_THAT(error.to_string(), Catch::StartsWith("test.toml:4:15: daemon.admin_group: "));

    for (std::string_view bad : {"admin_group = \"\"", "admin_group = 7", "admin_group = [\"root\"]"}) {
        INFO(bad);
        const ParseOutcome o = test::parse(config_with(bad, "host=db1"));
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0].key == "daemon.admin_group");
    }
}

TEST_CASE("a URI whose password holds an unescaped @ is refused without showing it", "[config][secrets]") {
    const std::string secret = "Xq7@Kp9w";
    for (const std::string& uri : {"postgresql://app:" + secret + "@db.example:5432/app",
                                   "postgres://app:" + secret + "@db.example/app?sslmode=require",
                                   "postgresql://app:a/b" + std::string("@db.example/app")}) {
        INFO(uri);
        const auto problem = conninfo_problem(uri);
        REQUIRE(problem.has_value());
        CHECK_THAT(*problem, Catch::Contains("%40"));
        CHECK(free_of(*problem, secret));

        const ParseOutcome outcome = test::parse(config_with("", uri));
        REQUIRE(outcome.errors.size() == 1);
        CHECK(outcome.errors[0].key == "regions[0].primary");
        CHECK(outcome.errors[0].line == 7);
        CHECK(free_of(test::all_messages(outcome), secret));
    }
    // Percent-encoded, it is fine; so is an '@' in a keyword=value password or a
    // URI query value.
    CHECK_FALSE(conninfo_problem("postgresql://app:Xq7%40Kp9w@db.example:5432/app"));
    CHECK_FALSE(conninfo_problem("host=db.example user=app password='Xq7@Kp9w@x'"));
    CHECK_FALSE(conninfo_problem("postgresql://db.example/app?application_name=a@b"));
}

TEST_CASE("display names: host and port, never anything up to an @", "[config][conninfo]") {
    CHECK(conninfo_display_name("host=10.1.0.1 port=6432 dbname=app user=app password=hunter2") == "10.1.0.1:6432");
    CHECK(conninfo_display_name("postgresql://app:hunter2@db.example:5433/app") == "db.example:5433");
    // What libpq makes of an unescaped '@' in the password: user info up to the
    // first '@', the rest of the password in the host.
    CHECK(conninfo_display_name("postgresql://app:p@ss@db.example:5432/app") == "db.example:5432");
    CHECK(conninfo_display_name("postgresql://app:p@s@s@db.example/app") == "db.example:5432");
    CHECK(conninfo_display_name("postgresql://app:p@ss@h1:5432,x@h2:5433/app") == "h1,h2:5432,5433");
    CHECK(conninfo_display_name("host=x@db.example") == "db.example:5432");
    // A '/' in a URI password makes libpq read user:pass as host:port.
    CHECK(conninfo_display_name("postgresql://app:s3cret/x@db/app") == "app:(invalid port)");
    CHECK(conninfo_display_name("dbname=app") == "local:5432");
    CHECK(conninfo_display_name("hostaddr=127.0.0.1 password=x") == "127.0.0.1:5432");
    CHECK(conninfo_display_name("host=/run/postgresql port=5433") == "/run/postgresql:5433");
    CHECK(conninfo_display_name("this is not = valid '") == "(invalid conninfo)");
}

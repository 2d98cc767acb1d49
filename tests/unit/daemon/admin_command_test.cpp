// The admin socket's command parsing (daemon/admin_command.hpp).
#include <catch2/catch.hpp>

#include "daemon/admin_command.hpp"

using namespace regiond::daemon;
using Kind = AdminCommand::Kind;

TEST_CASE("admin commands parse", "[admin]") {
    CHECK(parse_admin_command("status").kind == Kind::status);
    CHECK(parse_admin_command("  status  \r").kind == Kind::status);
    CHECK(parse_admin_command("status json").kind == Kind::status_json);
    CHECK(parse_admin_command("status --json").kind == Kind::status_json);
    CHECK(parse_admin_command("metrics").kind == Kind::metrics);
    CHECK(parse_admin_command("help").kind == Kind::help);

    const AdminCommand flush_all = parse_admin_command("cache flush");
    CHECK(flush_all.kind == Kind::cache_flush);
    CHECK(flush_all.keys.empty());
    const AdminCommand flush = parse_admin_command("cache flush user:1 user:2");
    CHECK(flush.kind == Kind::cache_flush);
    CHECK(flush.keys == std::vector<std::string>{"user:1", "user:2"});
}

TEST_CASE("bad admin commands list the commands", "[admin]") {
    for (const char* line : {"", "   ", "stats", "status xml", "metrics now", "cache", "cache drop x", "STATUS"}) {
        INFO(line);
        const AdminCommand c = parse_admin_command(line);
        CHECK(c.kind == Kind::invalid);
        CHECK_THAT(c.error, Catch::Contains("commands: status, status json, metrics, cache flush [KEY...]"));
    }
    CHECK_THAT(parse_admin_command("frobnicate").error, Catch::StartsWith("unknown command \"frobnicate\""));
    CHECK(parse_admin_command(std::string("status\0x", 8)).kind == Kind::invalid);
}

TEST_CASE("admin replies are framed", "[admin]") {
    CHECK(admin_ok("a\nb") == "ok\na\nb\n");
    CHECK(admin_ok("a\n") == "ok\na\n");
    CHECK(admin_error("the cache is not implemented yet") == "error: the cache is not implemented yet\n");
}

TEST_CASE("the command table: status, metrics and help read; everything else is admin-only", "[admin]") {
    CHECK_FALSE(admin_only(Kind::status));
    CHECK_FALSE(admin_only(Kind::status_json));
    CHECK_FALSE(admin_only(Kind::metrics));
    CHECK_FALSE(admin_only(Kind::help));
    CHECK(admin_only(Kind::cache_flush));
    CHECK(admin_only(Kind::invalid));  // no entry: the strict default
    // Every parsed kind has an entry, and an entry without an explicit access is admin-only.
    for (const AdminCommandInfo& info : admin_commands()) CHECK(admin_command_info(info.kind) == &info);
    CHECK(AdminCommandInfo{}.access == AdminAccess::changes_state);
    CHECK(admin_command_info(Kind::cache_flush)->name == "cache flush");
    CHECK(admin_command_list() == "status, status json, metrics, cache flush [KEY...], help");
}

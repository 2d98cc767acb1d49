// regionctl: command line, admin protocol, output formats, and `query` as a
// libregiond client against the fake daemon.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <thread>

#include "admin.hpp"
#include "cli.hpp"
#include "fake_daemon.hpp"
#include "format.hpp"
#include "run.hpp"

using namespace regiond::ctl;
using regiond::test::FakeDaemon;
using regiond::test::TempDir;

namespace {

Parsed parse(std::initializer_list<std::string_view> args) {
    const std::vector<std::string_view> v(args);
    return parse_command_line(v);
}

struct Run {
    int status;
    std::string out, err;
};

Run run_ctl(std::initializer_list<std::string_view> args) {
    std::ostringstream out, err;
    const std::vector<std::string_view> v(args);
    const int status = run_regionctl(v, out, err);
    return {status, out.str(), err.str()};
}

// Answers one admin connection with `answer` after reading the request line.
class FakeAdmin {
public:
    FakeAdmin(std::string path, std::string answer) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd_, 4) == 0);
        thread_ = std::thread([this, answer = std::move(answer)] {
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            char ch;
            while (::read(c, &ch, 1) == 1 && ch != '\n') request_ += ch;
            (void)::write(c, answer.data(), answer.size());
            ::close(c);
        });
    }
    ~FakeAdmin() {
        thread_.join();
        ::close(fd_);
    }
    const std::string& request() {
        thread_.join();
        thread_ = std::thread([] {});
        return request_;
    }

private:
    std::string path_;
    int fd_;
    std::thread thread_;
    std::string request_;
};

}  // namespace

TEST_CASE("regionctl: command line", "[cli]") {
    auto p = parse({"status"});
    REQUIRE(p.ok);
    CHECK(p.options.command == Command::status);
    CHECK_FALSE(p.options.json);
    CHECK_FALSE(p.options.socket);

    p = parse({"--socket", "/a.sock", "status", "--json"});
    REQUIRE(p.ok);
    CHECK(p.options.json);
    CHECK(*p.options.socket == "/a.sock");
    CHECK(admin_socket_path(p.options) == "/a.sock");

    p = parse({"--socket=/b.sock", "metrics"});
    REQUIRE(p.ok);
    CHECK(p.options.command == Command::metrics);
    CHECK(*p.options.socket == "/b.sock");

    p = parse({"cache", "flush", "user:1", "user:2"});
    REQUIRE(p.ok);
    CHECK(p.options.command == Command::cache_flush);
    CHECK(p.options.keys == std::vector<std::string>{"user:1", "user:2"});
    CHECK(parse({"cache", "flush"}).ok);

    p = parse({"query", "--json", "select $1, $2", "x", "\\N", "--primary"});
    REQUIRE(p.ok);
    CHECK(p.options.command == Command::query);
    CHECK(p.options.mode == QueryMode::local);
    CHECK(p.options.json);
    CHECK(p.options.sql == "select $1, $2");
    REQUIRE(p.options.params.size() == 3);
    CHECK(*p.options.params[0] == "x");
    CHECK_FALSE(p.options.params[1]);            // \N is NULL
    CHECK(*p.options.params[2] == "--primary");  // after SQL everything is a parameter

    p = parse({"query", "--consistent", "1/0/1", "select 1"});
    REQUIRE(p.ok);
    CHECK(p.options.mode == QueryMode::consistent);
    CHECK(p.options.token == "1/0/1");
    p = parse({"query", "--cached", "k", "--ttl", "30", "select 1"});
    REQUIRE(p.ok);
    CHECK(p.options.mode == QueryMode::cached);
    CHECK(p.options.cache_key == "k");
    CHECK(p.options.ttl_seconds == 30);
    p = parse({"query", "--write", "--invalidate", "a", "--invalidate=b", "update t", "--", "-1"});
    REQUIRE(p.ok);
    CHECK(p.options.mode == QueryMode::write);
    CHECK(p.options.invalidate_keys == std::vector<std::string>{"a", "b"});
    CHECK(p.options.params.size() == 2);
    p = parse({"query", "--", "-- a comment\nselect 1"});
    REQUIRE(p.ok);
    CHECK(p.options.sql == "-- a comment\nselect 1");

    CHECK(parse({"--help"}).options.command == Command::help);
    CHECK(parse({"query", "--help"}).options.command == Command::help);
    CHECK(parse({"help"}).options.command == Command::help);
}

TEST_CASE("regionctl: usage errors exit 64", "[cli]") {
    for (auto args : std::vector<std::vector<std::string_view>>{
             {},
             {"bogus"},
             {"--bogus", "status"},
             {"status", "extra"},
             {"metrics", "--json"},
             {"cache"},
             {"cache", "drop"},
             {"cache", "flush", "with space"},
             {"query"},
             {"query", "--json"},
             {"query", "--primary", "--write", "x"},
             {"query", "--ttl", "5", "x"},
             {"query", "--cached", "k", "--ttl", "five", "x"},
             {"query", "--invalidate", "k", "x"},
             {"query", "--consistent"},
             {"query", "--frobnicate", "x"},
             {"--socket"},
         }) {
        std::ostringstream out, err;
        INFO(args.size());
        CHECK(run_regionctl(args, out, err) == kExitUsage);
        CHECK(err.str().find("regionctl: ") == 0);
        CHECK(out.str().empty());
    }
    const Run help = run_ctl({"--help"});
    CHECK(help.status == 0);
    CHECK(help.out.find("usage:") == 0);
    CHECK(help.out.find("CLIENT socket") != std::string::npos);
    CHECK(help.out.find("\\N is SQL NULL") != std::string::npos);
    CHECK(help.out.find("\"route_reason\"") != std::string::npos);
    CHECK(help.out.find("SYSTEMID/LSN") != std::string::npos);
}

TEST_CASE("regionctl: JSON escaping", "[format]") {
    CHECK(json_string("plain") == "\"plain\"");
    CHECK(json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json_string("\n\r\t\b\f") == "\"\\n\\r\\t\\b\\f\"");
    CHECK(json_string(std::string("\x01\x1f", 2)) == "\"\\u0001\\u001f\"");
    CHECK(json_string(std::string("nul\0x", 5)) == "\"nul\\u0000x\"");
    CHECK(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    CHECK(json_string("bad\xff") == "\"bad\\ufffd\"");
    CHECK(json_string("\xc3") == "\"\\ufffd\"");                        // truncated sequence
    CHECK(json_string("\xc0\xaf") == "\"\\ufffd\\ufffd\"");             // overlong
    CHECK(json_string("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");  // surrogate
    CHECK(json_string("/") == "\"/\"");
    CHECK(json_string("\x7f") == "\"\x7f\"");
}

TEST_CASE("regionctl: JSON output", "[format]") {
    Table t;
    t.served_by = "eu-west-1/replica";
    t.columns = {"id", "name"};
    t.rows = {{"1", "a\"b"}, {"2", std::nullopt}};
    // API.md's shape: route_reason right after served_by, "" when there is none.
    CHECK(format_json(t) ==
          "{\"served_by\":\"eu-west-1/replica\",\"route_reason\":\"\",\"token\":\"\",\"affected\":-1,"
          "\"columns\":[\"id\",\"name\"],\"rows\":[[\"1\",\"a\\\"b\"],[\"2\",null]]}\n");
    Table w;
    w.served_by = "us-east-1/primary";
    w.route_reason = "write: the primary";
    w.token = "1/0/16B3748";
    w.affected = 2;
    CHECK(format_json(w) ==
          "{\"served_by\":\"us-east-1/primary\",\"route_reason\":\"write: the primary\",\"token\":\"1/0/16B3748\","
          "\"affected\":2,\"columns\":[],\"rows\":[]}\n");
    Table r;
    r.served_by = "eu-west-1/replica";
    r.route_reason = "local replica at 0/5A3F10 >= token 0/59F000 \"quoted\"";
    CHECK(format_json(r).find("\"route_reason\":\"local replica at 0/5A3F10 >= token 0/59F000 \\\"quoted\\\"\"") !=
          std::string::npos);
}

TEST_CASE("regionctl: aligned output like psql", "[format]") {
    Table t;
    t.served_by = "eu-west-1/replica";
    t.columns = {"id", "name"};
    t.rows = {{"1", "alice"}, {"22", std::nullopt}};
    CHECK(format_aligned(t) ==
          " id | name\n"
          "----+-------\n"
          " 1  | alice\n"
          " 22 | \n"
          "(2 rows)\n"
          "served_by: eu-west-1/replica\n");

    Table one;
    one.served_by = "us-east-1/primary";
    one.token = "1/0/AB";
    one.affected = 1;
    one.columns = {"value"};
    one.rows = {{"x"}};
    CHECK(format_aligned(one) ==
          " value\n"
          "-------\n"
          " x\n"
          "(1 row)\n"
          "served_by: us-east-1/primary\n"
          "token: 1/0/AB\n"
          "affected: 1\n");

    Table empty;
    empty.columns = {"a"};
    CHECK(format_aligned(empty) == " a\n---\n(0 rows)\nserved_by: \n");

    Table write;
    write.served_by = "us-east-1/primary";
    write.token = "1/0/AB";
    write.affected = 3;
    CHECK(format_aligned(write) == "served_by: us-east-1/primary\ntoken: 1/0/AB\naffected: 3\n");

    // route_reason follows served_by when the daemon gave one.
    Table routed;
    routed.served_by = "eu-west-1/replica";
    routed.route_reason = "waited 12 ms for the local replica";
    routed.token = "1/0/AB";
    routed.columns = {"a"};
    routed.rows = {{"x"}};
    CHECK(format_aligned(routed) ==
          " a\n"
          "---\n"
          " x\n"
          "(1 row)\n"
          "served_by: eu-west-1/replica\n"
          "route_reason: waited 12 ms for the local replica\n"
          "token: 1/0/AB\n");

    // Multi-line values continue with '+'; widths count characters, not bytes.
    Table multi;
    multi.columns = {"a", "b"};
    multi.rows = {{"x\nyy", "\xc3\xa9t\xc3\xa9"}, {"z", "w\nv"}};
    CHECK(format_aligned(multi) ==
          " a  |  b\n"
          "----+-----\n"
          " x +| \xc3\xa9t\xc3\xa9\n"
          " yy | \n"
          " z  | w  +\n"
          "    | v\n"
          "(2 rows)\n"
          "served_by: \n");
    CHECK(display_width("\xc3\xa9t\xc3\xa9") == 3);
}

TEST_CASE("regionctl: admin replies", "[admin]") {
    auto ok = parse_admin_reply("ok\nregion eu-west-1\n");
    CHECK(ok.reached);
    CHECK(ok.ok);
    CHECK(ok.body == "region eu-west-1\n");
    auto err = parse_admin_reply("error: unknown command \"x\"\n");
    CHECK_FALSE(err.ok);
    CHECK(err.error == "unknown command \"x\"");
    CHECK_FALSE(parse_admin_reply("").ok);
    CHECK(parse_admin_reply("garbage\n").error.find("unexpected answer") == 0);
    CHECK(parse_admin_reply("ok").ok);
}

TEST_CASE("regionctl: status, metrics and cache flush through the admin socket", "[admin]") {
    TempDir dir;
    const std::string path = dir.file("admin.sock");
    {
        FakeAdmin admin(path, "ok\nregions: 3\n");
        const Run r = run_ctl({"--socket", path, "status", "--json"});
        CHECK(admin.request() == "status json");
        CHECK(r.status == 0);
        CHECK(r.out == "regions: 3\n");
    }
    ::unlink(path.c_str());
    {
        FakeAdmin admin(path, "ok\n# TYPE x counter\nx 1");
        ::setenv("REGIOND_ADMIN_SOCKET", path.c_str(), 1);
        const Run r = run_ctl({"metrics"});
        ::unsetenv("REGIOND_ADMIN_SOCKET");
        CHECK(admin.request() == "metrics");
        CHECK(r.status == 0);
        CHECK(r.out == "# TYPE x counter\nx 1\n");
    }
    ::unlink(path.c_str());
    {
        FakeAdmin admin(path, "error: cache is not configured\n");
        const Run r = run_ctl({"--socket", path, "cache", "flush", "k1", "k2"});
        CHECK(admin.request() == "cache flush k1 k2");
        CHECK(r.status == 1);
        CHECK(r.err == "regionctl: cache is not configured\n");
    }
    ::unlink(path.c_str());
    const Run down = run_ctl({"--socket", path, "status"});
    CHECK(down.status == 1);
    CHECK(down.err == "regionctl: regiond not running at " + path + "\n");
}

TEST_CASE("regionctl: query as a libregiond client", "[query]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    const Run json =
        run_ctl({"--socket", d.socket_path(), "query", "--json", "--write", "--invalidate", "k", "w $1", "\\N"});
    CHECK(json.status == 0);
    CHECK(json.out.find("{\"served_by\":\"fake/primary\",\"route_reason\":\"fake: write echoed\",\"token\":\"1234/0/"
                        "ABC\",\"affected\":1,\"columns\":[") == 0);
    CHECK(json.out.find(",null,\"k\"]]}") != std::string::npos);

    const Run table = run_ctl({"--socket", d.socket_path(), "query", "rows 2"});
    CHECK(table.status == 0);
    CHECK(table.out == " i |   s\n---+-------\n 0 | row-0\n 1 | row-1\n(2 rows)\nserved_by: fake/replica\n");

    const Run routed = run_ctl({"--socket", d.socket_path(), "query", "--primary", "select 1"});
    CHECK(routed.status == 0);
    CHECK(routed.out.find("\nserved_by: fake/primary\nroute_reason: fake: read_primary echoed\n") != std::string::npos);

    const Run error = run_ctl({"--socket", d.socket_path(), "query", "error"});
    CHECK(error.status == 1);
    CHECK(error.err == "regionctl: relation \"no_such_table\" does not exist (SQLSTATE 42P01)\n");

    const Run down = run_ctl({"--socket", dir.file("none.sock"), "query", "select 1"});
    CHECK(down.status == 1);
    CHECK(down.err == "regionctl: daemon not running at " + dir.file("none.sock") + "\n");
}

TEST_CASE("regionctl: query --consistent TOKEN goes through rgd_read_consistent", "[query]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    // The fake daemon echoes the request: op, sql, timeout_ms, token, ... as one row.
    const Run consistent = run_ctl({"--socket", d.socket_path(), "query", "--json", "--consistent",
                                    "7713697811223072330/0/41F2E80", "select $1", "p"});
    INFO(consistent.err);
    CHECK(consistent.status == 0);
    CHECK(consistent.out.find("\"route_reason\":\"fake: read_consistent echoed\"") != std::string::npos);
    CHECK(consistent.out.find("\"rows\":[[\"read_consistent\",\"select $1\",") != std::string::npos);
    CHECK(consistent.out.find(",\"7713697811223072330/0/41F2E80\",") != std::string::npos);

    const Run empty = run_ctl({"--socket", d.socket_path(), "query", "--json", "--consistent=", "select 1"});
    CHECK(empty.status == 0);
    CHECK(empty.out.find("\"rows\":[[\"read_consistent\",\"select 1\",") != std::string::npos);

    // A malformed token fails in the library, before anything is sent.
    const auto seen = d.requests_seen();
    const Run malformed =
        run_ctl({"--socket", d.socket_path(), "query", "--consistent", "7713697811223072330-41F2E80", "select 1"});
    CHECK(malformed.status == 1);
    CHECK(malformed.out.empty());
    CHECK(malformed.err.find("regionctl: malformed consistency token \"7713697811223072330-41F2E80\"") == 0);
    CHECK(malformed.err.find("SYSTEMID/LSN, e.g. 7713697811223072330/0/41F2E80") != std::string::npos);
    CHECK(d.requests_seen() == seen);
}

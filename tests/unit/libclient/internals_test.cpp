// Below the C API: token validation, the result accessors on hand-built
// responses (including every out-of-range case), error texts.
#include <catch2/catch.hpp>

#include "shm/base/size_text.hpp"

#include <climits>
#include <cstring>
#include <string>

#include "client.hpp"
#include "connection.hpp"
#include "regiond/client.h"
#include "result.hpp"
#include "token.hpp"

using regiond::client::make_error;
using regiond::client::make_result;
using regiond::client::token_error;
using regiond::client::token_well_formed;

namespace {

regiond::shm::Response two_by_two() {
    regiond::shm::Response r;
    r.served_by = "eu-west-1/replica";
    r.columns = {"id", "name"};
    const std::optional<std::string_view> row0[] = {"1", "alice"};
    const std::optional<std::string_view> row1[] = {"2", std::nullopt};
    r.add_row(row0);
    r.add_row(row1);
    return r;
}

}  // namespace

TEST_CASE("tokens: well-formed SYSTEMID/LSN", "[token]") {
    CHECK(token_well_formed("7301234567890123456/0/16B3748"));
    CHECK(token_well_formed("0/0/0"));
    CHECK(token_well_formed("1/ff/abcdef01"));
    CHECK(token_well_formed("18446744073709551615/FFFFFFFF/FFFFFFFF"));  // u64 max, 8 hex digits each
}

TEST_CASE("tokens: malformed ones are rejected", "[token]") {
    for (const char* bad : {"abc", "123", "123/0", "123/0/", "/0/1", "123//1", "123/0/1/2", "-1/0/1", "+1/0/1",
                            "18446744073709551616/0/1", "123/G/1", "123/0/123456789", "123/123456789/0", " 123/0/1",
                            "123/0/1 ", "123/0x1/2", "1.5/0/1", "123/0/1\n"}) {
        INFO(bad);
        CHECK_FALSE(token_well_formed(bad));
        const auto error = token_error(bad);
        REQUIRE(error);
        CHECK(error->find("malformed consistency token") != std::string::npos);
    }
}

TEST_CASE("tokens: empty means no write to wait for", "[token]") {
    CHECK_FALSE(token_well_formed(""));
    CHECK_FALSE(token_error(""));
    CHECK_FALSE(token_error("5/0/1"));
}

TEST_CASE("tokens: the error quotes the token safely", "[token]") {
    const auto error = token_error(std::string("a\"b\x01", 4));
    REQUIRE(error);
    CHECK(error->find("a\\x22b\\x01") != std::string::npos);
    const auto long_error = token_error(std::string(500, 'x'));
    REQUIRE(long_error);
    CHECK(long_error->size() < 400);
    CHECK(long_error->find("...") != std::string::npos);
}

TEST_CASE("rgd_read_consistent: a malformed token fails without a round trip", "[token]") {
    // No client at all: the token check comes first and never touches it.
    rgd_result* r = rgd_read_consistent(nullptr, "not-a-token", "select 1", 0, nullptr);
    REQUIRE(r != nullptr);
    CHECK(rgd_ok(r) == 0);
    CHECK(std::string(rgd_error(r)).find("malformed consistency token \"not-a-token\"") == 0);
    rgd_free(r);
}

TEST_CASE("rgd_read_consistent: the error says what a token looks like", "[token]") {
    for (const char* bad : {"not-a-token", "7713697811223072330/41F2E80", "7713697811223072330-0-41F2E80"}) {
        INFO(bad);
        rgd_result* r = rgd_read_consistent(nullptr, bad, "select 1", 0, nullptr);
        REQUIRE(r != nullptr);
        CHECK(rgd_ok(r) == 0);
        const std::string error = rgd_error(r);
        CHECK(error.find("SYSTEMID/LSN, e.g. 7713697811223072330/0/41F2E80") != std::string::npos);
        CHECK(std::string(rgd_served_by(r)) == "");
        rgd_free(r);
    }
}

TEST_CASE("rgd_token_cmp: ordered by LSN, not by text", "[token_cmp]") {
    struct Case {
        const char* a;
        const char* b;
        int expected;
    };
    const Case cases[] = {
        // Equal: the same LSN however it is spelled (hex case, leading zeros).
        {"7713697811223072330/0/41F2E80", "7713697811223072330/0/41F2E80", 0},
        {"7713697811223072330/0/41f2e80", "7713697811223072330/0/41F2E80", 0},
        {"7713697811223072330/00/041F2E80", "7713697811223072330/0/41F2E80", 0},
        {"1/0/0", "1/0/0", 0},
        // The low half.
        {"7713697811223072330/0/41F2E7F", "7713697811223072330/0/41F2E80", -1},
        {"7713697811223072330/0/41F2E81", "7713697811223072330/0/41F2E80", 1},
        {"1/0/9", "1/0/10", -1},  // as text "9" > "10"
        {"1/0/A", "1/0/9", 1},    // as text 'A' > '9' agrees, as numbers too
        {"1/0/FFFF", "1/0/10000", -1},
        // The high half outweighs any low half.
        {"1/1/0", "1/0/FFFFFFFF", 1},
        {"1/0/FFFFFFFF", "1/1/0", -1},
        {"1/2/0", "1/10/0", -1},
        {"1/FFFFFFFF/FFFFFFFF", "1/FFFFFFFF/FFFFFFFE", 1},
        {"18446744073709551615/FFFFFFFF/FFFFFFFF", "18446744073709551615/0/0", 1},
        // The system identifier by value: leading zeros are the same cluster.
        {"042/0/1", "42/0/2", -1},
        // Different clusters are never ordered, whatever their LSNs.
        {"7713697811223072330/0/41F2E80", "7713697811223072331/0/41F2E80", -2},
        {"1/0/1", "2/0/2", -2},
        {"2/0/2", "1/0/1", -2},
        {"18446744073709551615/0/1", "0/0/1", -2},
        // Malformed on either side, or both (never "equal").
        {"garbage", "1/0/1", -2},
        {"1/0/1", "garbage", -2},
        {"garbage", "garbage", -2},
        {"1/0/1/2", "1/0/1", -2},
        {"1/0", "1/0/1", -2},
        {"1/0/123456789", "1/0/1", -2},
        {"18446744073709551616/0/1", "18446744073709551616/0/1", -2},  // system id past u64
        {" 1/0/1", "1/0/1", -2},
        {"1/0/1", "1/0/1 ", -2},
        {"1/0/0x1", "1/0/1", -2},
        // "" is "no token": older than any token of any cluster, equal to itself.
        {"", "1/0/1", -1},
        {"", "0/0/0", -1},
        {"1/0/1", "", 1},
        {"0/0/0", "", 1},
        {"", "", 0},
        {"", "garbage", -2},
        {"garbage", "", -2},
    };
    for (const Case& c : cases) {
        INFO("rgd_token_cmp(\"" << c.a << "\", \"" << c.b << "\")");
        CHECK(rgd_token_cmp(c.a, c.b) == c.expected);
        // Swapping the arguments negates an order; "not comparable" stays.
        const int swapped = c.expected == -2 ? -2 : -c.expected;
        CHECK(rgd_token_cmp(c.b, c.a) == swapped);
    }
}

TEST_CASE("rgd_token_cmp: NULL is not comparable", "[token_cmp]") {
    CHECK(rgd_token_cmp(nullptr, "1/0/1") == -2);
    CHECK(rgd_token_cmp("1/0/1", nullptr) == -2);
    CHECK(rgd_token_cmp(nullptr, "") == -2);
    CHECK(rgd_token_cmp("", nullptr) == -2);
    CHECK(rgd_token_cmp(nullptr, nullptr) == -2);
}

TEST_CASE("rgd_token_cmp: keeping the newest token of a session", "[token_cmp]") {
    // What an application does with every answer's token (API.md).
    std::string newest;
    for (const char* seen : {"5/0/100", "5/0/FF", "5/1/0", "", "5/0/FFFFFFFF", "5/1/1", "5/1/0"}) {
        const int order = rgd_token_cmp(seen, newest.c_str());
        REQUIRE(order != -2);
        if (order > 0) newest = seen;
    }
    CHECK(newest == "5/1/1");
}

TEST_CASE("results: accessors on a hand-built response", "[result]") {
    rgd_result* r = make_result(two_by_two()).release();
    CHECK(rgd_ok(r) == 1);
    CHECK(std::string(rgd_error(r)) == "");
    CHECK(std::string(rgd_sqlstate(r)) == "");
    CHECK(rgd_nrows(r) == 2);
    CHECK(rgd_ncols(r) == 2);
    CHECK(std::string(rgd_colname(r, 0)) == "id");
    CHECK(std::string(rgd_colname(r, 1)) == "name");
    CHECK(std::string(rgd_value(r, 0, 0)) == "1");
    CHECK(std::string(rgd_value(r, 0, 1)) == "alice");
    CHECK(std::string(rgd_value(r, 1, 0)) == "2");
    CHECK(rgd_value(r, 1, 1) == nullptr);  // SQL NULL
    CHECK(rgd_affected(r) == -1);
    CHECK(std::string(rgd_token(r)) == "");
    CHECK(std::string(rgd_served_by(r)) == "eu-west-1/replica");
    CHECK(std::string(rgd_route_reason(r)) == "");  // the daemon gave none
    rgd_free(r);
}

TEST_CASE("results: route_reason of answers and errors", "[result]") {
    regiond::shm::Response answer = two_by_two();
    answer.route_reason = "local replica at 0/5A3F10 >= token 0/59F000";
    rgd_result* r = make_result(std::move(answer)).release();
    CHECK(std::string(rgd_route_reason(r)) == "local replica at 0/5A3F10 >= token 0/59F000");
    rgd_free(r);

    // The daemon's error answers carry one too (why it went where it failed).
    regiond::shm::Response failed;
    failed.status = regiond::shm::Status::error;
    failed.error = "replica at 0/5A0000 is behind token 0/5A3F10";
    failed.route_reason = "primary unreachable; local replica behind";
    rgd_result* e = make_result(std::move(failed)).release();
    CHECK(rgd_ok(e) == 0);
    CHECK(std::string(rgd_route_reason(e)) == "primary unreachable; local replica behind");
    rgd_free(e);

    // Errors made by the library were routed nowhere.
    rgd_result* local = make_error("timed out after 30000 ms").release();
    CHECK(std::string(rgd_route_reason(local)) == "");
    rgd_free(local);
    CHECK(std::string(rgd_route_reason(nullptr)) == "");
}

TEST_CASE("results: out-of-range rows and columns give NULL, never UB", "[result]") {
    rgd_result* r = make_result(two_by_two()).release();
    for (int row : {-1, 2, 3, INT_MAX, INT_MIN})
        for (int col : {0, 1}) CHECK(rgd_value(r, row, col) == nullptr);
    for (int col : {-1, 2, INT_MAX, INT_MIN}) {
        CHECK(rgd_value(r, 0, col) == nullptr);
        CHECK(rgd_colname(r, col) == nullptr);
    }
    rgd_free(r);
}

TEST_CASE("results: a write's token and affected rows", "[result]") {
    regiond::shm::Response w;
    w.served_by = "us-east-1/primary";
    w.token = "7301234567890123456/0/16B3748";
    w.affected = 3;
    rgd_result* r = make_result(std::move(w)).release();
    CHECK(rgd_ok(r) == 1);
    CHECK(rgd_nrows(r) == 0);
    CHECK(rgd_ncols(r) == 0);
    CHECK(rgd_value(r, 0, 0) == nullptr);
    CHECK(rgd_affected(r) == 3);
    CHECK(std::string(rgd_token(r)) == "7301234567890123456/0/16B3748");
    rgd_free(r);
}

TEST_CASE("results: database and client errors", "[result]") {
    regiond::shm::Response e;
    e.status = regiond::shm::Status::error;
    std::memcpy(e.sqlstate, "42P01", 6);
    e.error = "relation \"t\" does not exist";
    e.served_by = "eu-west-1/replica";
    rgd_result* r = make_result(std::move(e)).release();
    CHECK(rgd_ok(r) == 0);
    CHECK(std::string(rgd_error(r)) == "relation \"t\" does not exist");
    CHECK(std::string(rgd_sqlstate(r)) == "42P01");
    CHECK(std::string(rgd_served_by(r)) == "eu-west-1/replica");
    CHECK(rgd_nrows(r) == 0);
    CHECK(rgd_affected(r) == -1);
    rgd_free(r);

    rgd_result* c = make_error("timed out after 30000 ms").release();
    CHECK(rgd_ok(c) == 0);
    CHECK(std::string(rgd_error(c)) == "timed out after 30000 ms");
    CHECK(std::string(rgd_sqlstate(c)) == "");
    CHECK(std::string(rgd_served_by(c)) == "");
    CHECK(std::string(rgd_token(c)) == "");
    rgd_free(c);

    // An error without a message must not read as "" (= success) to a caller.
    rgd_result* empty = make_error("").release();
    CHECK(std::string(rgd_error(empty)).size() > 0);
    rgd_free(empty);

    // A success never reports an error text, whatever the daemon put there.
    regiond::shm::Response odd;
    odd.error = "ignored";
    rgd_result* ok = make_result(std::move(odd)).release();
    CHECK(std::string(rgd_error(ok)) == "");
    rgd_free(ok);
}

TEST_CASE("results: a NULL result gives safe defaults", "[result]") {
    CHECK(rgd_ok(nullptr) == 0);
    CHECK(std::string(rgd_error(nullptr)).find("out of memory") != std::string::npos);
    CHECK(std::string(rgd_sqlstate(nullptr)) == "");
    CHECK(rgd_nrows(nullptr) == 0);
    CHECK(rgd_ncols(nullptr) == 0);
    CHECK(rgd_colname(nullptr, 0) == nullptr);
    CHECK(rgd_value(nullptr, 0, 0) == nullptr);
    CHECK(rgd_affected(nullptr) == -1);
    CHECK(std::string(rgd_token(nullptr)) == "");
    CHECK(std::string(rgd_served_by(nullptr)) == "");
    rgd_free(nullptr);
    rgd_disconnect(nullptr);
    rgd_set_timeout_ms(nullptr, 5);
}

TEST_CASE("C API: invalid arguments are error results", "[c_api]") {
    rgd_result* r = rgd_read_local(nullptr, "select 1", 0, nullptr);
    REQUIRE(r != nullptr);
    CHECK(rgd_ok(r) == 0);
    CHECK(std::string(rgd_error(r)).find("rgd_client is NULL") == 0);
    rgd_free(r);
    r = rgd_health(nullptr);
    CHECK(rgd_ok(r) == 0);
    rgd_free(r);
    r = rgd_write(nullptr, "x", 0, nullptr, 0, nullptr);
    CHECK(rgd_ok(r) == 0);
    rgd_free(r);
    r = rgd_cached_read(nullptr, "k", 0, "x", 0, nullptr);
    CHECK(rgd_ok(r) == 0);
    rgd_free(r);
}

TEST_CASE("size messages name both sizes", "[errors]") {
    using regiond::base::request_exceeds_max_request;
    using regiond::base::request_exceeds_ring;
    CHECK(request_exceeds_max_request(9u << 20, 8u << 20) == "request of 9 MiB exceeds max_request (8 MiB)");
    CHECK(request_exceeds_max_request(5000, 2032) == "request of 4.88 KiB exceeds max_request (1.98 KiB)");
    // Sizes that would print alike are given exactly.
    CHECK(request_exceeds_max_request(262145, 262144) == "request of 262145 bytes exceeds max_request (262144 bytes)");
    // libregiond knows the ring's record limit, not the daemon's max_request.
    CHECK(request_exceeds_ring(3u << 19, 524272) ==
          "request of 1.5 MiB exceeds max_request (the request ring carries at most 511.98 KiB; "
          "daemon.ring_size / 2 - 16 bytes)");
    CHECK(regiond::base::format_size(1) == "1 byte");
    CHECK(regiond::base::format_size(1023) == "1023 bytes");
    CHECK(regiond::base::format_size(1048575) == "1024 KiB");  // rounded, never shown as "1023.99..."
    CHECK(regiond::base::format_size(std::uint64_t{64} << 30) == "64 GiB");
}

TEST_CASE("socket path resolution", "[connect]") {
    using regiond::client::resolve_socket_path;
    ::unsetenv("REGIOND_SOCKET");
    CHECK(resolve_socket_path(nullptr) == "/run/regiond/regiond.sock");
    ::setenv("REGIOND_SOCKET", "/tmp/x.sock", 1);
    CHECK(resolve_socket_path(nullptr) == "/tmp/x.sock");
    CHECK(resolve_socket_path("/given.sock") == "/given.sock");
    ::setenv("REGIOND_SOCKET", "", 1);
    CHECK(resolve_socket_path(nullptr) == "/run/regiond/regiond.sock");
    ::unsetenv("REGIOND_SOCKET");
}

TEST_CASE("rgd_connect: a missing socket says the daemon is not running", "[connect]") {
    char error[256] = "unchanged";
    rgd_client* c = rgd_connect("/nonexistent/regiond-test.sock", error, sizeof error);
    CHECK(c == nullptr);
    CHECK(std::string(error) == "daemon not running at /nonexistent/regiond-test.sock");
    // Truncated to errlen, always NUL-terminated.
    char tiny[8];
    CHECK(rgd_connect("/nonexistent/regiond-test.sock", tiny, sizeof tiny) == nullptr);
    CHECK(std::string(tiny) == "daemon ");
    CHECK(rgd_connect("/nonexistent/regiond-test.sock", nullptr, 0) == nullptr);
    // A path longer than sun_path.
    CHECK(rgd_connect(std::string(200, 'x').c_str(), error, sizeof error) == nullptr);
    CHECK(std::string(error).find("too long") != std::string::npos);
}

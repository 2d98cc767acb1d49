// Encoding results into response chunks, with PGresults built in memory
// (libpq can make result objects without a server).
#include <catch2/catch.hpp>

#include <libpq-fe.h>

#include <string>

#include "daemon/pg/outcome.hpp"
#include "shm/codec.hpp"

using namespace regiond;
using regiond::daemon::pg::error_outcome;
using regiond::daemon::pg::rows_outcome;

namespace {

struct ResultHolder {
    PGresult* r;
    ~ResultHolder() { PQclear(r); }
};

PGresult* make_result(int ncols) {
    PGresult* r = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
    std::vector<PGresAttDesc> attrs(static_cast<std::size_t>(ncols));
    std::vector<std::string> names;
    for (int c = 0; c < ncols; ++c) names.push_back("col" + std::to_string(c));
    for (int c = 0; c < ncols; ++c) {
        attrs[static_cast<std::size_t>(c)].name = names[static_cast<std::size_t>(c)].data();
        attrs[static_cast<std::size_t>(c)].typid = 25;
        attrs[static_cast<std::size_t>(c)].typlen = -1;
        attrs[static_cast<std::size_t>(c)].atttypmod = -1;
    }
    REQUIRE(PQsetResultAttrs(r, ncols, attrs.data()) == 1);
    return r;
}

shm::Response decode(const daemon::pg::Outcome& out) {
    shm::ResponseDecoder dec;
    for (const auto& chunk : out.chunks) REQUIRE(dec.feed(chunk) == shm::CodecError::ok);
    REQUIRE(dec.complete());
    return dec.take();
}

}  // namespace

TEST_CASE("200 000 rows stream into many chunks and decode whole", "[outcome]") {
    ResultHolder h{make_result(2)};
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
        const std::string v = std::to_string(i);
        REQUIRE(PQsetvalue(h.r, i, 0, const_cast<char*>(v.c_str()), static_cast<int>(v.size())) == 1);
        // every 7th value of column 1 is NULL
        if (i % 7 == 0) {
            REQUIRE(PQsetvalue(h.r, i, 1, nullptr, -1) == 1);
        } else {
            REQUIRE(PQsetvalue(h.r, i, 1, const_cast<char*>("x"), 1) == 1);
        }
    }
    auto out = rows_outcome(h.r, "eu-west-1/replica", "", -1, 64 * 1024);
    REQUIRE(out.ok);
    CHECK_FALSE(out.retry_elsewhere);
    CHECK(out.chunks.size() > 10);
    for (const auto& c : out.chunks) CHECK(c.size() <= 64 * 1024);
    auto resp = decode(out);
    CHECK(resp.status == shm::Status::ok);
    CHECK(resp.served_by == "eu-west-1/replica");
    CHECK(resp.affected == -1);
    CHECK(resp.columns == std::vector<std::string>{"col0", "col1"});
    REQUIRE(resp.nrows() == static_cast<std::size_t>(n));
    CHECK(resp.value(0, 0) == std::optional<std::string_view>("0"));
    CHECK_FALSE(resp.value(0, 1).has_value());
    CHECK(resp.value(1, 1) == std::optional<std::string_view>("x"));
    CHECK(resp.value(n - 1, 0) == std::optional<std::string_view>(std::to_string(n - 1)));
}

TEST_CASE("a write's head carries the token and affected rows", "[outcome]") {
    auto out = rows_outcome(nullptr, "us-east-1/primary", "7301/0/16B3748", 3, 4096);
    REQUIRE(out.ok);
    auto resp = decode(out);
    CHECK(resp.token == "7301/0/16B3748");
    CHECK(resp.affected == 3);
    CHECK(resp.ncols() == 0);
    CHECK(resp.nrows() == 0);
}

TEST_CASE("a row larger than a chunk is an error, not a crash", "[outcome]") {
    ResultHolder h{make_result(1)};
    std::string big(10000, 'z');
    REQUIRE(PQsetvalue(h.r, 0, 0, big.data(), static_cast<int>(big.size())) == 1);
    auto out = rows_outcome(h.r, "eu-west-1/replica", "", -1, 1024);
    CHECK_FALSE(out.ok);
    auto resp = decode(out);
    CHECK(resp.status == shm::Status::error);
    CHECK(resp.error.find("row 1") != std::string::npos);
}

TEST_CASE("errors carry SQLSTATE, message and served_by", "[outcome]") {
    auto out = error_outcome("eu-west-1/replica", "relation \"nope\" does not exist", "42P01", false, 4096);
    CHECK_FALSE(out.ok);
    CHECK_FALSE(out.retry_elsewhere);
    auto resp = decode(out);
    CHECK(resp.status == shm::Status::error);
    CHECK(std::string(resp.sqlstate) == "42P01");
    CHECK(resp.error == "relation \"nope\" does not exist");
    CHECK(resp.served_by == "eu-west-1/replica");

    auto failure = error_outcome("eu-west-1/replica", "timed out after 200 ms", "", true, 4096);
    CHECK(failure.retry_elsewhere);
    CHECK(std::string(decode(failure).sqlstate).empty());
}

TEST_CASE("a huge error message is cut to fit the head chunk", "[outcome]") {
    auto out = error_outcome("x/replica", std::string(100000, 'e'), "XX000", false, 4096);
    REQUIRE(out.chunks.size() == 1);
    CHECK(out.chunks[0].size() <= 4096);
    auto resp = decode(out);
    CHECK(resp.error.size() < 4096);
}

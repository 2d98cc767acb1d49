#include <catch2/catch.hpp>

#include "daemon/pg/statements.hpp"

using regiond::daemon::pg::referenced_params;
using regiond::daemon::pg::split_statements;

TEST_CASE("a write splits into its statements", "[statements]") {
    auto r = split_statements("insert into t values (1); update t set a = 2 ;delete from t");
    REQUIRE(r.ok);
    REQUIRE(r.statements.size() == 3);
    CHECK(r.statements[0].sql == "insert into t values (1)");
    CHECK(r.statements[1].sql == "update t set a = 2");
    CHECK(r.statements[2].sql == "delete from t");
    for (const auto& s : r.statements) {
        CHECK(s.max_param() == 0);
        CHECK(s.transaction_control.empty());
    }
}

TEST_CASE("semicolons inside strings, identifiers, comments and bodies do not split", "[statements]") {
    auto r = split_statements(
        "insert into t values ('a;b', E'c\\';d'); -- trailing; comment\n"
        "insert into \"odd;name\" values (1) /* x; y */;\n"
        "create function f() returns int language sql as $$ select 1; $$;\n"
        "create function g() returns int language plpgsql as $body$ begin return 1; end $body$");
    REQUIRE(r.ok);
    REQUIRE(r.statements.size() == 4);
    CHECK(r.statements[0].sql == "insert into t values ('a;b', E'c\\';d')");
    CHECK(r.statements[2].sql.find("select 1; $$") != std::string::npos);
    CHECK(r.statements[3].sql.find("begin return 1; end") != std::string::npos);
}

TEST_CASE("one statement, with or without a final semicolon", "[statements]") {
    for (const char* sql :
         {"insert into t values ($1)", "insert into t values ($1);", "  insert into t values ($1) ;  "}) {
        auto r = split_statements(sql);
        REQUIRE(r.ok);
        REQUIRE(r.statements.size() == 1);
        CHECK(r.statements[0].sql == "insert into t values ($1)");
        CHECK(r.statements[0].max_param() == 1);
    }
}

TEST_CASE("empty input has no statements", "[statements]") {
    for (const char* sql : {"", "   ", ";", ";;", "-- only a comment"}) {
        auto r = split_statements(sql);
        INFO("input '" << sql << "'");
        CHECK(r.ok);
        CHECK(r.statements.empty());
    }
}

TEST_CASE("each statement knows the parameters it references", "[statements][params]") {
    auto r = split_statements(
        "insert into a values ($1);"
        "insert into b values ($3, $2);"
        "update c set v = $2 where id = $2;"
        "delete from d");
    REQUIRE(r.ok);
    REQUIRE(r.statements.size() == 4);
    CHECK(r.statements[0].max_param() == 1);
    CHECK(r.statements[0].referenced == std::vector<bool>{true});
    CHECK(r.statements[1].max_param() == 3);
    CHECK(r.statements[1].referenced == std::vector<bool>{false, true, true});
    CHECK(r.statements[2].max_param() == 2);
    CHECK(r.statements[2].referenced == std::vector<bool>{false, true});
    CHECK(r.statements[3].max_param() == 0);
}

TEST_CASE("$n inside strings, comments and dollar quotes is no parameter", "[statements][params]") {
    auto r = split_statements(
        "insert into t values ('$1', $2) -- $9\n;"
        "create function f(int) returns int language sql as $$ select $1 + $7 $$;"
        "select $tag$ $5 $tag$, \"$4\" /* $3 */");
    REQUIRE(r.ok);
    REQUIRE(r.statements.size() == 3);
    CHECK(r.statements[0].referenced == std::vector<bool>{false, true});
    CHECK(r.statements[1].max_param() == 0);
    CHECK(r.statements[2].max_param() == 0);

    CHECK(referenced_params("select $2::int, '$3'") == std::vector<bool>{false, true});
    CHECK(referenced_params("select 1") == std::vector<bool>{});
    auto ten = referenced_params("select $10");
    REQUIRE(ten);
    CHECK(ten->size() == 10);
    CHECK((*ten)[9]);
}

TEST_CASE("explicit transaction control is recognised", "[statements][txn]") {
    const std::pair<const char*, const char*> cases[] = {
        {"begin", "BEGIN"},
        {"BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN"},
        {"start transaction", "START TRANSACTION"},
        {"commit", "COMMIT"},
        {"end", "END"},
        {"rollback", "ROLLBACK"},
        {"abort", "ABORT"},
        {"savepoint s1", "SAVEPOINT"},
        {"release savepoint s1", "RELEASE SAVEPOINT"},
        {"rollback to savepoint s1", "ROLLBACK TO SAVEPOINT"},
        {"prepare transaction 'x'", "PREPARE TRANSACTION"},
        {"commit prepared 'x'", "COMMIT PREPARED"},
        {"/* why */ commit", "COMMIT"},
    };
    for (const auto& [sql, expected] : cases) {
        INFO(sql);
        auto r = split_statements(sql);
        REQUIRE(r.ok);
        REQUIRE(r.statements.size() == 1);
        CHECK(r.statements[0].transaction_control == expected);
    }
    auto mixed = split_statements("begin; insert into t values (1); commit");
    REQUIRE(mixed.ok);
    REQUIRE(mixed.statements.size() == 3);
    CHECK(mixed.statements[0].transaction_control == "BEGIN");
    CHECK(mixed.statements[1].transaction_control.empty());
    CHECK(mixed.statements[2].transaction_control == "COMMIT");

    for (const char* sql : {"prepare p as select 1", "insert into begin_log values (1)", "update t set commit = 1",
                            "select 'begin'", "create table savepoints (a int)"}) {
        INFO(sql);
        auto r = split_statements(sql);
        REQUIRE(r.ok);
        REQUIRE(r.statements.size() == 1);
        CHECK(r.statements[0].transaction_control.empty());
    }
}

TEST_CASE("a syntax error is reported, not guessed around", "[statements]") {
    auto r = split_statements("insert into t values (1); insert inot t values (2)");
    CHECK_FALSE(r.ok);
    CHECK_FALSE(r.error.empty());
    CHECK(r.statements.empty());
}

TEST_CASE("parameter numbers beyond the protocol's limit are an error", "[statements][params]") {
    auto r = split_statements("select $70000");
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("$70000") != std::string::npos);
    CHECK_FALSE(referenced_params("select $99999999").has_value());
}

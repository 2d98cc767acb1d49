// The PostgreSQL side of cache invalidation without a server: the text[]
// literal of a write's keys (daemon/pg/pg_array.hpp), the UTF-8 check, and
// the steps prepare_job builds for a write with keys and for reads that want
// their floor (daemon/pg/job_steps.hpp). The integration tests
// (tests/integration/pg/durable_test.cpp) check the same against the server.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daemon/pg/job_steps.hpp"
#include "daemon/pg/pg_array.hpp"
#include "daemon/pg/statement_classifier.hpp"

using regiond::daemon::pg::classify;
using regiond::daemon::pg::Job;
using regiond::daemon::pg::kFloorTag;
using regiond::daemon::pg::kGuardTag;
using regiond::daemon::pg::kInvalidationInsertSql;
using regiond::daemon::pg::kInvalidationTag;
using regiond::daemon::pg::kLsnTag;
using regiond::daemon::pg::Operation;
using regiond::daemon::pg::prepare_job;
using regiond::daemon::pg::PreparedJob;
using regiond::daemon::pg::Role;
using regiond::daemon::pg::Step;
using regiond::daemon::pg::text_array_literal;
using regiond::daemon::pg::valid_utf8;

namespace {

std::string literal(std::vector<std::string> v) {
    return text_array_literal(v);
}

// "C" command with its tag, "S" sync: the shape of a job's steps.
std::string shape(const PreparedJob& p) {
    std::string s;
    for (const Step& st : p.steps) {
        if (!s.empty()) s += ' ';
        if (st.kind == Step::Kind::sync) {
            s += 'S';
        } else if (st.tag == kLsnTag) {
            s += "lsn";
        } else if (st.tag == kGuardTag) {
            s += "guard";
        } else if (st.tag == kFloorTag) {
            s += "floor";
        } else if (st.tag == kInvalidationTag) {
            s += "inval";
        } else if (st.tag == static_cast<std::size_t>(-2)) {
            s += "ro";
        } else {
            s += "stmt" + std::to_string(st.tag);
        }
    }
    return s;
}

Job job(Job::Kind kind, std::string sql) {
    Job j;
    j.kind = kind;
    j.sql = std::move(sql);
    return j;
}

}  // namespace

TEST_CASE("text[] literal: every element quoted, quotes and backslashes escaped", "[pg][array]") {
    CHECK(literal({}) == "{}");
    CHECK(literal({""}) == R"({""})");
    CHECK(literal({"a"}) == R"({"a"})");
    CHECK(literal({"a", "b"}) == R"({"a","b"})");
    // NULL quoted is the text NULL, not SQL NULL.
    CHECK(literal({"NULL", "null"}) == R"({"NULL","null"})");
    CHECK(literal({R"(say "hi")"}) == R"({"say \"hi\""})");
    CHECK(literal({R"(a\b)", R"(\)"}) == R"({"a\\b","\\"})");
    // Delimiters and whitespace need no escaping inside quotes.
    CHECK(literal({"a,b", "{x}", " sp ", "\t\n"}) == "{\"a,b\",\"{x}\",\" sp \",\"\t\n\"}");
    CHECK(literal({"caf\xc3\xa9", "\xe6\x9d\xb1\xe4\xba\xac"}) == "{\"caf\xc3\xa9\",\"\xe6\x9d\xb1\xe4\xba\xac\"}");
}

TEST_CASE("UTF-8 as PostgreSQL accepts it", "[pg][array]") {
    CHECK(valid_utf8(""));
    CHECK(valid_utf8("plain ascii {\"\\}"));
    CHECK(valid_utf8("caf\xc3\xa9"));
    CHECK(valid_utf8("\xe6\x9d\xb1"));
    CHECK(valid_utf8("\xf0\x9f\x98\x80"));        // U+1F600
    CHECK(valid_utf8("\xf4\x8f\xbf\xbf"));        // U+10FFFF
    CHECK_FALSE(valid_utf8("\xff"));              // never in UTF-8
    CHECK_FALSE(valid_utf8("\xc3"));              // truncated
    CHECK_FALSE(valid_utf8("\xc3("));             // bad continuation
    CHECK_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
    CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(valid_utf8("\x80"));              // a lone continuation
}

TEST_CASE("a write with keys: the insert joins the write's transaction, before its sync", "[pg][steps]") {
    Job w = job(Job::Kind::write, "update t set v = $1 where id = 1");
    w.params = {std::string("x")};
    w.invalidate_keys = {"user:1", "say \"hi\""};
    w.origin = "eu-west-1/host-a";
    PreparedJob p;
    REQUIRE_FALSE(prepare_job(w, classify(w.sql, Operation::write), Role::primary, p));
    CHECK(shape(p) == "stmt0 inval S lsn S");
    const Step& insert = p.steps[1];
    CHECK(insert.sql == kInvalidationInsertSql);
    REQUIRE(insert.values.size() == 2);
    CHECK(std::string(insert.values[0]) == R"({"user:1","say \"hi\""})");
    CHECK(std::string(insert.values[1]) == "eu-west-1/host-a");
    REQUIRE(insert.types.size() == 2);
    CHECK(insert.types[0] == 1009);  // text[]
    CHECK(insert.types[1] == 25);    // text
    // The write's own last statement still streams; the insert does not.
    CHECK(p.steps[0].single_row);
    CHECK_FALSE(insert.single_row);

    // Several statements: the insert after the last one.
    Job multi = job(Job::Kind::write, "insert into t values (1); update t set v = 2");
    multi.invalidate_keys = {"k"};
    REQUIRE_FALSE(prepare_job(multi, classify(multi.sql, Operation::write), Role::primary, p));
    CHECK(shape(p) == "stmt0 stmt1 inval S lsn S");
    CHECK(p.steps[1].single_row);

    // Without keys: no insert.
    Job plain = job(Job::Kind::write, "update t set v = 1");
    REQUIRE_FALSE(prepare_job(plain, classify(plain.sql, Operation::write), Role::primary, p));
    CHECK(shape(p) == "stmt0 S lsn S");
}

TEST_CASE("keys PostgreSQL text cannot hold are refused before anything is sent", "[pg][steps]") {
    PreparedJob p;
    Job w = job(Job::Kind::write, "update t set v = 1");
    w.invalidate_keys = {"ok", std::string("a\0b", 3)};
    auto r = prepare_job(w, classify(w.sql, Operation::write), Role::primary, p);
    REQUIRE(r);
    CHECK(r->sqlstate == "22021");
    CHECK(r->message == "invalidation key 2 contains a NUL byte");
    w.invalidate_keys = {"\xff\xfe"};
    r = prepare_job(w, classify(w.sql, Operation::write), Role::primary, p);
    REQUIRE(r);
    CHECK(r->sqlstate == "22021");
    CHECK(r->message == "invalidation key 1 is not valid UTF-8 (keys are stored as PostgreSQL text)");
}

TEST_CASE("want_floor: a guard before the read in its own segment, never batched", "[pg][steps]") {
    PreparedJob p;
    Job r = job(Job::Kind::read, "select 1");
    const auto c = classify(r.sql, Operation::read);
    REQUIRE_FALSE(prepare_job(r, c, Role::replica, p));
    CHECK(shape(p) == "stmt0 lsn S");
    CHECK(p.batchable);

    r.want_floor = true;
    REQUIRE_FALSE(prepare_job(r, c, Role::replica, p));
    CHECK(shape(p) == "guard S stmt0 lsn S");
    CHECK(p.guarded);
    CHECK_FALSE(p.batchable);

    REQUIRE_FALSE(prepare_job(r, c, Role::primary, p));
    CHECK(shape(p) == "floor S ro stmt0 lsn S");
    CHECK_FALSE(p.guarded);

    r.want_floor = false;
    REQUIRE_FALSE(prepare_job(r, c, Role::primary, p));
    CHECK(shape(p) == "ro stmt0 lsn S");
}

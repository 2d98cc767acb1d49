// The statement table of docs/isolation.md, row by row, for reads and writes,
// and the cases that fool a classifier that does not parse: statements hidden
// after others, keywords inside strings, calls nested anywhere in the tree.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "daemon/pg/statement_classifier.hpp"

using regiond::daemon::pg::Classification;
using regiond::daemon::pg::classify;
using regiond::daemon::pg::Operation;
using regiond::daemon::pg::StatementClassifier;

namespace {

constexpr Operation kRead = Operation::read;
constexpr Operation kWrite = Operation::write;

const char* op_name(Operation op) {
    return op == kRead ? "read" : "write";
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// What the table says for one statement and one operation.
enum class Expect { refused, allowed, reset_after, plain };

void check(const std::string& sql, Operation op, Expect expect) {
    INFO(op_name(op) << ": " << sql);
    const Classification c = classify(sql, op);
    REQUIRE(c.parsed);
    switch (expect) {
        case Expect::refused:
            CHECK_FALSE(c.refusal.empty());
            CHECK_FALSE(c.batchable);
            break;
        case Expect::allowed:
            CHECK(c.refusal.empty());
            CHECK_FALSE(c.changes_session);
            CHECK_FALSE(c.batchable);
            break;
        case Expect::reset_after:
            CHECK(c.refusal.empty());
            CHECK(c.changes_session);
            CHECK_FALSE(c.batchable);
            break;
        case Expect::plain:
            CHECK(c.refusal.empty());
            CHECK_FALSE(c.changes_session);
            CHECK(c.batchable);
            REQUIRE(c.statements.size() == 1);
            CHECK(c.statements[0].plain_query);
            break;
    }
}

void both(const std::string& sql, Expect expect) {
    check(sql, kRead, expect);
    check(sql, kWrite, expect);
}

std::string refusal(const std::string& sql, Operation op) {
    return classify(sql, op).refusal;
}

}  // namespace

TEST_CASE("transaction control is refused in reads and writes, naming the statement", "[classifier][table]") {
    const std::pair<const char*, const char*> cases[] = {
        {"begin", "BEGIN"},
        {"BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN"},
        {"start transaction read write", "START TRANSACTION"},
        {"commit", "COMMIT"},
        {"commit and chain", "COMMIT"},
        {"end", "END"},
        {"rollback", "ROLLBACK"},
        {"abort", "ABORT"},
        {"savepoint s1", "SAVEPOINT"},
        {"release s1", "RELEASE SAVEPOINT"},
        {"rollback to savepoint s1", "ROLLBACK TO SAVEPOINT"},
        {"prepare transaction 'x'", "PREPARE TRANSACTION"},
        {"commit prepared 'x'", "COMMIT PREPARED"},
        {"rollback prepared 'x'", "ROLLBACK PREPARED"},
        {"/* why */ END", "END"},
    };
    for (const auto& [sql, name] : cases) {
        for (Operation op : {kRead, kWrite}) {
            INFO(op_name(op) << ": " << sql);
            const Classification c = classify(sql, op);
            REQUIRE(c.statements.size() == 1);
            CHECK(c.statements[0].tag == name);
            CHECK(c.refusal.rfind(std::string(name) + " is transaction control", 0) == 0);
            CHECK(contains(c.refusal, "without BEGIN/COMMIT"));
        }
    }
}

TEST_CASE("session SET and RESET are refused; SET LOCAL is allowed", "[classifier][table]") {
    for (const char* sql : {"set search_path = public", "set session search_path to x", "SET TIME ZONE 'UTC'",
                            "set statement_timeout = 0", "reset search_path", "reset all", "set role nobody",
                            "set session authorization nobody", "reset session authorization", "reset role",
                            "set default_transaction_read_only = off"}) {
        both(sql, Expect::refused);
    }
    CHECK(contains(refusal("set search_path = public", kWrite), "SET LOCAL search_path"));
    CHECK(contains(refusal("set search_path = public", kWrite), "set_config('search_path', ..., true)"));
    CHECK(contains(refusal("set role nobody", kRead), "SET LOCAL ROLE"));
    CHECK(contains(refusal("reset all", kRead), "RESET ALL"));

    for (const char* sql : {"set local search_path = public", "set local statement_timeout = '1s'",
                            "set local role nobody", "set local work_mem to default"}) {
        both(sql, Expect::allowed);
    }
}

TEST_CASE("transaction characteristics: SET TRANSACTION only in writes, never for the session", "[classifier][table]") {
    check("set transaction isolation level serializable", kRead, Expect::refused);
    check("set transaction read write", kRead, Expect::refused);
    check("set local transaction_read_only = off", kRead, Expect::refused);
    check("set local default_transaction_read_only = off", kRead, Expect::refused);
    CHECK(contains(refusal("set transaction read write", kRead), "read-only"));

    check("set transaction isolation level serializable", kWrite, Expect::allowed);
    check("set transaction snapshot '00000003-0000001B-1'", kWrite, Expect::allowed);
    check("set transaction snapshot '00000003-0000001B-1'", kRead, Expect::refused);
    check("set local transaction_isolation = 'repeatable read'", kWrite, Expect::allowed);

    both("set session characteristics as transaction read write", Expect::refused);
    both("set transaction_read_only = off", Expect::refused);  // not LOCAL: a session SET
}

TEST_CASE("settings that change how later statements are read are refused", "[classifier][table]") {
    for (const char* sql :
         {"set local standard_conforming_strings = off", "set local client_encoding = 'SJIS'", "set names 'LATIN1'",
          "set local backslash_quote = on", "select set_config('standard_conforming_strings', 'off', true)"}) {
        both(sql, Expect::refused);
    }
}

TEST_CASE("PREPARE, EXECUTE, DEALLOCATE, LISTEN, DISCARD, LOAD and COPY are refused", "[classifier][table]") {
    for (const char* sql :
         {"prepare p as select 1", "prepare p(int) as insert into t values ($1)", "execute p", "execute p(1)",
          "deallocate p", "deallocate all", "listen chan", "discard all", "discard temp", "discard plans",
          "load 'auto_explain'", "create table x as execute p", "explain execute p"}) {
        both(sql, Expect::refused);
    }
    CHECK(contains(refusal("listen chan", kRead), "LISTEN is not supported"));
    CHECK(contains(refusal("deallocate all", kWrite), "DEALLOCATE"));

    for (const char* sql : {"copy t from stdin", "copy t to stdout", "copy (select 1) to stdout",
                            "COPY t (a, b) FROM STDIN WITH (FORMAT csv)", "copy t from '/etc/passwd'"}) {
        for (Operation op : {kRead, kWrite}) {
            INFO(op_name(op) << ": " << sql);
            CHECK(contains(classify(sql, op).refusal, "COPY is not supported through regiond"));
        }
    }
    // NOTIFY and UNLISTEN leave nothing behind.
    check("notify chan, 'x'", kWrite, Expect::allowed);
    both("unlisten *", Expect::allowed);
}

TEST_CASE("cursors: WITH HOLD is refused, a transaction's cursor is allowed", "[classifier][table]") {
    both("declare c cursor with hold for select 1", Expect::refused);
    CHECK(contains(refusal("declare c cursor with hold for select 1", kWrite), "WITH HOLD"));
    both("declare c cursor for select 1", Expect::allowed);
    both("declare c no scroll cursor without hold for select * from t", Expect::allowed);
}

TEST_CASE("temp objects reset the connection unless they are dropped at commit", "[classifier][table]") {
    for (const char* sql :
         {"create temp table x (a int)", "create temporary table x (a int) on commit delete rows",
          "create temp view v as select 1", "create temp sequence s", "create temp table x as select 1",
          "select 1 as a into temp x", "select 1 as a into temporary table x", "create table pg_temp.x (a int)",
          "create function pg_temp.f() returns int language sql as 'select 1'",
          "explain analyze create temp table x as select 1"}) {
        check(sql, kWrite, Expect::reset_after);
    }
    check("create temp table x (a int) on commit drop", kWrite, Expect::allowed);
    check("create temp table x on commit drop as select 1", kWrite, Expect::allowed);
    check("create table x (a int)", kWrite, Expect::allowed);
    check("select 1 into x", kWrite, Expect::allowed);

    // search_path that puts pg_temp first makes CREATE create a temp object.
    check("set local search_path = pg_temp, public", kWrite, Expect::reset_after);
    check("set local application_name = 'pg_temp'", kWrite, Expect::allowed);
    check("select set_config('search_path', 'pg_temp', true)", kWrite, Expect::reset_after);
    check("select set_config('search_path', $1, true)", kWrite, Expect::reset_after);
    check("select set_config('search_path', 'app, public', true)", kWrite, Expect::allowed);
}

TEST_CASE("DO blocks reset the connection", "[classifier][table]") {
    both("do $$ begin perform 1; end $$", Expect::reset_after);
    both("DO LANGUAGE plpgsql 'begin null; end'", Expect::reset_after);
}

TEST_CASE("set_config: only a literal true is transaction-scoped", "[classifier][table][calls]") {
    for (const char* sql : {"select set_config('app.x', 'y', true)", "select set_config('app.x', 'y', 'on')",
                            "select set_config('app.x', 'y', 'TRUE')", "select set_config('app.x', 'y', 't')",
                            "select pg_catalog.set_config('app.x', 'y', true)"}) {
        check(sql, kRead, Expect::allowed);  // allowed, never batched
        check(sql, kWrite, Expect::allowed);
    }
    for (const char* sql : {"select set_config('app.x', 'y', false)", "select set_config('app.x', 'y', 'off')",
                            "select set_config('app.x', 'y', $1)", "select set_config('app.x', 'y', null)",
                            "select set_config('app.x', 'y', 1 = 1)", "select set_config($1, 'y', true)",
                            "select set_config(setting_name => 'app.x', new_value => 'y', is_local => true)"}) {
        both(sql, Expect::reset_after);
    }
    // Calls as arguments of calls: each is judged by its own arguments.
    check("select concat(1, 2, 3, set_config('a.b', 'c', true))", kWrite, Expect::allowed);
    check("select set_config('a.b', lower('C'), true)", kWrite, Expect::allowed);
    check("select set_config('a.b', 'c', (select true))", kWrite, Expect::reset_after);
    // A read cannot lift its read-only mode through set_config either.
    CHECK(contains(refusal("select set_config('transaction_read_only', 'off', true)", kRead), "read-only"));
    check("select set_config('transaction_isolation', 'serializable', true)", kWrite, Expect::allowed);
}

TEST_CASE("calls are found anywhere in the tree, in any case, qualified or not", "[classifier][calls]") {
    for (const char* sql : {
             "select 1 where set_config('a.b', 'c', false) is not null",
             "select (select (select set_config('a.b', 'c', false)))",
             "with x as (select set_config('a.b', 'c', false)) select * from x",
             "select * from set_config('a.b', 'c', false)",
             "select coalesce(upper(lower(set_config('a.b', 'c', false))), '')",
             "SELECT PG_CATALOG.SET_CONFIG('a.b', 'c', FALSE)",
             "select * from t where id in (select pg_advisory_lock(1))",
             "select pg_try_advisory_lock_shared(1, 2)",
             "select case when true then pg_advisory_lock(1) end",
             "select array[pg_advisory_lock(1)]",
             "select 1 union all select pg_advisory_lock(1)",
             "values (pg_advisory_lock(1))",
             "select exists (select 1 from t order by pg_advisory_lock(id))",
         }) {
        both(sql, Expect::reset_after);
    }
    for (const char* sql : {"select pg_advisory_xact_lock(1)", "select pg_try_advisory_xact_lock_shared(1)",
                            "select pg_advisory_unlock_all()", "select pg_notify('c', 'x')",
                            "select pg_terminate_backend(pg_backend_pid())", "select nextval('s')"}) {
        check(sql, kRead, Expect::allowed);  // never batched with other clients' reads
        check(sql, kWrite, Expect::allowed);
    }
    // A user's function of the same name in another schema is not the built-in one.
    check("select myschema.set_config('a', 'b', false)", kRead, Expect::plain);
    // Ordinary functions keep a query plain.
    check("select count(*), now(), upper(name) from t where lower(name) like $1", kRead, Expect::plain);
}

TEST_CASE("currval and lastval are refused in reads", "[classifier][calls]") {
    CHECK(contains(refusal("select lastval()", kRead), "lastval()"));
    CHECK(contains(refusal("select currval('s')", kRead), "currval()"));
    check("insert into t default values; select lastval()", kWrite, Expect::allowed);
}

TEST_CASE("plain queries: SELECT, VALUES, TABLE, set operations and WITH without side effects", "[classifier][plain]") {
    for (const char* sql : {"select 1", "select * from t where id = $1", "values (1), (2)", "table t",
                            "select 1 union select 2 except select 3", "(select 1) intersect (select 1)",
                            "with x as (select 1) select * from x",
                            "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) "
                            "select * from r",
                            "select * from t join u using (id) where t.a = any($1::int[]) order by 1 limit 10"}) {
        check(sql, kRead, Expect::plain);
    }
    // Not plain: locking clauses, INTO, data-modifying CTEs, utility statements.
    for (const char* sql : {"select * from t for update", "select * from t for share skip locked",
                            "select * from (select * from t for update) x", "select 1 into x",
                            "with x as (insert into t values (1) returning *) select * from x",
                            "with x as (delete from t returning *) select 1", "show search_path", "explain select 1",
                            "insert into t values (1)", "update t set a = 1", "delete from t", "call p()",
                            "lock table t", "checkpoint"}) {
        INFO(sql);
        const Classification c = classify(sql, kRead);
        REQUIRE(c.parsed);
        CHECK_FALSE(c.batchable);
        REQUIRE(c.statements.size() == 1);
        CHECK_FALSE(c.statements[0].plain_query);
    }
    check("with x as (insert into t values (1) returning *) select * from x", kWrite, Expect::allowed);
    check("select * from t for update", kWrite, Expect::allowed);
}

TEST_CASE("EXPLAIN is judged by the statement it explains", "[classifier]") {
    // EXPLAIN ANALYZE runs the statement: a read's insert fails read-only on the
    // server; the classifier applies the statement's own rules.
    check("explain analyze insert into t values (1)", kRead, Expect::allowed);
    check("explain analyze insert into t values (1)", kWrite, Expect::allowed);
    check("explain analyze select pg_advisory_lock(1)", kRead, Expect::reset_after);
    CHECK(classify("explain analyze select 1", kRead).statements[0].tag == "EXPLAIN");
}

TEST_CASE("a read is one statement; a hidden refused statement is named first", "[classifier]") {
    const Classification two = classify("select 1; select 2", kRead);
    CHECK(contains(two.refusal, "a read is one statement (this one has 2)"));
    CHECK(classify("select 1; select 2", kWrite).refusal.empty());

    const Classification hidden = classify("select 1; begin", kRead);
    CHECK(hidden.refusal.rfind("statement 2 of 2: BEGIN is transaction control", 0) == 0);
    const Classification in_write = classify("insert into t values (1);\n  begin; insert into t values (2)", kWrite);
    CHECK(in_write.refusal.rfind("statement 2 of 3: BEGIN", 0) == 0);
    REQUIRE(in_write.statements.size() == 3);
    CHECK(in_write.statements[1].sql == "begin");
    CHECK(in_write.statements[0].refusal.empty());
}

TEST_CASE("keywords inside strings, comments and dollar quotes are not statements", "[classifier]") {
    check("select 'BEGIN'", kRead, Expect::plain);
    check("select 'begin; commit'", kRead, Expect::plain);
    check("select $$ begin; set role x $$", kRead, Expect::plain);
    check("select $tag$ ; copy t to stdout; $tag$ as x", kRead, Expect::plain);
    check("select 1 -- ; begin", kRead, Expect::plain);
    check("select /* ; begin; */ 1", kRead, Expect::plain);
    check("select 'set_config(''a'', ''b'', false)'", kRead, Expect::plain);
    check("select \"begin\" from t", kRead, Expect::plain);
    check("/* leading */ select 1 /* trailing */", kRead, Expect::plain);
    const Classification c = classify("select $1, '$2', $q$ $3 $q$ /* $4 */ -- $5\n", kRead);
    REQUIRE(c.statements.size() == 1);
    CHECK(c.statements[0].referenced == std::vector<bool>{true});
}

TEST_CASE("texts with nothing to run, syntax errors and bad parameters", "[classifier]") {
    for (const char* sql : {"", "   ", ";", ";;", "-- only a comment", "/* only */ /* comments */"}) {
        for (Operation op : {kRead, kWrite}) {
            INFO(op_name(op) << ": '" << sql << "'");
            const Classification c = classify(sql, op);
            CHECK(c.parsed);
            CHECK(c.statements.empty());
            CHECK(c.refusal == "the request contains no SQL statement");
            CHECK_FALSE(c.batchable);
        }
    }
    for (const char* sql : {"selec 1", "select 'unterminated", "select (1", "insert into t values (1); inser"}) {
        INFO(sql);
        const Classification c = classify(sql, kRead);
        CHECK_FALSE(c.parsed);
        CHECK_FALSE(c.parse_error.empty());
        CHECK(c.refusal.empty());  // the server reports the syntax error itself
        CHECK(c.statements.empty());
        CHECK_FALSE(c.batchable);
    }
    for (const char* sql : {"select $0", "select $70000"}) {
        INFO(sql);
        const Classification c = classify(sql, kWrite);
        CHECK(c.parsed);
        CHECK(contains(c.refusal, "regiond cannot check this SQL text"));
    }
    const Classification nul = classify(std::string_view("select 1\0; begin", 16), kRead);
    CHECK(contains(nul.refusal, "NUL byte"));
}

TEST_CASE("hostile texts never crash the classifier", "[classifier][hostile]") {
    SECTION("a 1 MiB query") {
        std::string sql = "insert into t values (0, 'x')";
        while (sql.size() < (std::size_t{1} << 20)) sql += ", (1, 'abcdefghijklmnopqrstuvwxyz')";
        const Classification c = classify(sql, kWrite);
        CHECK(c.parsed);
        CHECK(c.refusal.empty());
        REQUIRE(c.statements.size() == 1);
        CHECK(c.statements[0].sql.size() == sql.size());
    }
    SECTION("a 256 KiB left-deep expression (deeper than an 8 MiB stack allows libpg_query)") {
        std::string sql = "select 1";
        while (sql.size() < (std::size_t{256} << 10)) sql += "+1";
        const Classification c = classify(sql, kRead);
        CHECK(c.parsed);
        CHECK(contains(c.refusal, "nested deeper"));
    }
    SECTION("10000 levels of parentheses, subqueries and calls") {
        for (const auto& [open, close] : {std::pair<std::string, std::string>{"(", ")"},
                                          {"(select ", ")"},
                                          {"f(", ")"},
                                          {"set_config('a', 'b', ", ")"}}) {
            std::string sql = "select ";
            for (int i = 0; i < 10000; ++i) sql += open;
            sql += "1";
            for (int i = 0; i < 10000; ++i) sql += close;
            const Classification c = classify(sql, kRead);
            INFO(open);
            CHECK_FALSE(c.batchable);
            CHECK((!c.parsed || !c.refusal.empty()));  // the grammar or regiond refuses it
        }
        // Deep but within the grammar's limit: still found.
        std::string sql = "select ";
        for (int i = 0; i < 500; ++i) sql += "f(";
        sql += "pg_advisory_lock(1)";
        for (int i = 0; i < 500; ++i) sql += ")";
        check(sql, kRead, Expect::reset_after);
    }
    SECTION("random bytes (no NUL)") {
        std::mt19937 rng(7);
        for (int round = 0; round < 2000; ++round) {
            std::string sql(rng() % 200, ' ');
            for (auto& ch : sql) ch = static_cast<char>(1 + rng() % 255);
            const Classification c = classify(sql, round % 2 ? kRead : kWrite);
            if (!c.refusal.empty() || !c.parsed) CHECK_FALSE(c.batchable);
        }
    }
}

TEST_CASE("the cache returns the same classification and stays bounded", "[classifier][cache]") {
    StatementClassifier cache(3, std::size_t{1} << 20);
    auto a = cache.classify("select 1", kRead);
    CHECK(cache.classify("select 1", kRead) == a);   // a hit: the same entry
    CHECK(cache.classify("select 1", kWrite) != a);  // keyed by operation too
    CHECK(cache.classify("select 1; select 2", kRead)->refusal !=
          cache.classify("select 1; select 2", kWrite)->refusal);
    CHECK(cache.size() == 3);
    cache.classify("select 4", kRead);  // evicts the least recently used
    CHECK(cache.size() == 3);
    CHECK(a->batchable);  // an evicted entry stays valid for whoever holds it

    // Texts over kMaxCachedText are classified but not kept.
    const std::string big = "select '" + std::string(StatementClassifier::kMaxCachedText, 'x') + "'";
    const std::size_t before = cache.size();
    CHECK(cache.classify(big, kRead)->batchable);
    CHECK(cache.size() == before);

    // The byte budget evicts entries even below the entry capacity.
    StatementClassifier small(1000, 64 << 10);
    for (int i = 0; i < 200; ++i) small.classify("select '" + std::string(4000, 'a') + std::to_string(i) + "'", kRead);
    CHECK(small.bytes() <= std::size_t{64} << 10);
    CHECK(small.size() < 200);
    CHECK(small.size() > 0);
}

// daemon/pg/ Endpoints against the local cluster: an EventLoop drives real
// endpoints that reach the servers through the WAN links, and the results are
// decoded from their response chunks exactly as a client would see them.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "../cluster_env.hpp"
#include "../pg_session.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/pg/endpoint.hpp"
#include "endpoint_harness.hpp"
#include "shm/codec.hpp"

using namespace std::chrono_literals;
using regiond::daemon::EventLoop;
using regiond::daemon::pg::Endpoint;
using regiond::daemon::pg::EndpointOptions;
using regiond::daemon::pg::format_lsn;
using regiond::daemon::pg::Job;
using regiond::daemon::pg::LagTracker;
using regiond::daemon::pg::Outcome;
using regiond::daemon::pg::parse_lsn;
using regiond::daemon::pg::Role;
using regiond::shm::Response;
using regiond::testing::ClusterEnv;
using regiond::testing::eventually;
using regiond::testing::LinkCut;
using regiond::testing::PgSession;
using Clock = std::chrono::steady_clock;

using namespace regiond::testing::pg;

TEST_CASE("a read on a replica returns rows, columns and served_by", "[pg][read]") {
    EventLoop loop;
    auto ep = local_replica(loop);
    auto r = run_job(loop, *ep, read("select 1 as one, 'two' as two, pg_is_in_recovery() as standby"));
    REQUIRE(r.outcome.ok);
    CHECK_FALSE(r.outcome.retry_elsewhere);
    CHECK(r.response.status == regiond::shm::Status::ok);
    CHECK(r.response.served_by == "eu-west-1/replica");
    CHECK(r.response.affected == -1);
    CHECK_FALSE(r.response.token.empty());  // every read has its token (consistency_test.cpp)
    CHECK(r.response.columns == std::vector<std::string>{"one", "two", "standby"});
    REQUIRE(r.response.nrows() == 1);
    CHECK(cell(r.response, 0, 0) == "1");
    CHECK(cell(r.response, 0, 1) == "two");
    CHECK(cell(r.response, 0, 2) == "t");
}

TEST_CASE("NULL parameters and NULL values round-trip", "[pg][read]") {
    EventLoop loop;
    auto ep = local_replica(loop);
    auto r = run_job(loop, *ep,
                     read("select $1::text is null as p1_null, $1::text as p1, $2::text as p2, null::int as n",
                          {std::nullopt, std::string("x'; drop table nope; --")}));
    REQUIRE(r.outcome.ok);
    REQUIRE(r.response.nrows() == 1);
    CHECK(cell(r.response, 0, 0) == "t");
    CHECK_FALSE(cell(r.response, 0, 1).has_value());
    CHECK(cell(r.response, 0, 2) == "x'; drop table nope; --");
    CHECK_FALSE(cell(r.response, 0, 3).has_value());
}

TEST_CASE("an SQL error carries its SQLSTATE and the server's message", "[pg][error]") {
    EventLoop loop;
    auto ep = local_replica(loop);
    auto r = run_job(loop, *ep, read("select * from no_such_table_here"));
    CHECK_FALSE(r.outcome.ok);
    CHECK_FALSE(r.outcome.retry_elsewhere);
    CHECK(r.response.status == regiond::shm::Status::error);
    CHECK(std::string(r.response.sqlstate) == "42P01");
    CHECK(r.response.error.find("no_such_table_here") != std::string::npos);
    CHECK(r.response.served_by == "eu-west-1/replica");

    auto syntax = run_job(loop, *ep, read("selec 1"));
    CHECK(std::string(syntax.response.sqlstate) == "42601");
    // The connection (and its statement cache) is fine afterwards.
    auto ok = run_job(loop, *ep, read("select 2"));
    REQUIRE(ok.outcome.ok);
    CHECK(cell(ok.response, 0, 0) == "2");
    // NUL bytes cannot be sent (libpq would cut the text there): refused up front.
    auto nul_sql = run_job(loop, *ep, read(std::string("select 1\0; select 2", 19)));
    CHECK_FALSE(nul_sql.outcome.ok);
    CHECK(nul_sql.response.error.find("NUL") != std::string::npos);
    auto nul_param = run_job(loop, *ep, read("select $1::text", {std::string("a\0b", 3)}));
    CHECK_FALSE(nul_param.outcome.ok);
    CHECK(nul_param.response.error.find("$1") != std::string::npos);
    // A write on a replica endpoint is refused before anything is sent.
    auto w = run_job(loop, *ep, write("insert into x values (1)"));
    CHECK_FALSE(w.outcome.ok);
    CHECK(w.response.error.find("replica") != std::string::npos);
}

TEST_CASE("repeated SQL is prepared once per connection and reused", "[pg][prepared]") {
    EventLoop loop;
    auto ep = local_replica(loop, 1);
    for (int i = 0; i < 3; ++i) {
        auto r = run_job(loop, *ep, read("select $1::int + 1", {std::to_string(i)}));
        REQUIRE(r.outcome.ok);
        CHECK(cell(r.response, 0, 0) == std::to_string(i + 1));
    }
    auto r =
        run_job(loop, *ep, read("select count(*) from pg_prepared_statements where statement = 'select $1::int + 1'"));
    REQUIRE(r.outcome.ok);
    CHECK(cell(r.response, 0, 0) == "1");
}

TEST_CASE("a write returns affected rows and a token readable on the primary", "[pg][write]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop);
    const std::string v = unique_value();
    auto r =
        run_job(loop, *ep, write(std::string("insert into ") + kTable + " (v, n) values ($1, 1), ($1, $2)", {v, "2"}));
    REQUIRE(r.outcome.ok);
    CHECK(r.response.served_by == "us-east-1/primary");
    CHECK(r.response.affected == 2);
    CHECK(r.response.nrows() == 0);
    // SYSTEMID/LSN
    const std::string& token = r.response.token;
    INFO("token " << token);
    const auto slash = token.find('/');
    REQUIRE(slash != std::string::npos);
    const std::string sysid = token.substr(0, slash);
    const std::string lsn_text = token.substr(slash + 1);
    const auto lsn = parse_lsn(lsn_text);
    REQUIRE(lsn.has_value());
    CHECK(format_lsn(*lsn) == lsn_text);

    PgSession primary(env.superuser_conninfo("us-east-1"));
    CHECK(primary.scalar("select system_identifier from pg_control_system()") == sysid);
    CHECK(primary.scalar("select pg_current_wal_lsn() >= '" + lsn_text + "'::pg_lsn") == "t");
    CHECK(count_of(primary, v) == "2");
    CHECK(std::to_string(ep->health().system_identifier) == sysid);
    // A replica that has replayed the token's LSN has the write.
    PgSession replica(env.superuser_conninfo("eu-west-1"));
    REQUIRE(eventually(
        [&] { return replica.scalar("select pg_last_wal_replay_lsn() >= '" + lsn_text + "'::pg_lsn") == "t"; }, 30s));
    CHECK(count_of(replica, v) == "2");

    // RETURNING rows come back with the write.
    auto ret =
        run_job(loop, *ep, write(std::string("update ") + kTable + " set n = n + 10 where v = $1 returning n", {v}));
    REQUIRE(ret.outcome.ok);
    CHECK(ret.response.affected == 2);
    CHECK(ret.response.columns == std::vector<std::string>{"n"});
    CHECK(ret.response.nrows() == 2);
    CHECK(parse_lsn(ret.response.token.substr(ret.response.token.find('/') + 1)) > lsn);
}

TEST_CASE("a multi-statement write is one transaction", "[pg][write]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop);
    PgSession primary(env.superuser_conninfo("us-east-1"));

    SECTION("the second statement fails: the first is rolled back") {
        const std::string v = unique_value();
        auto r = run_job(
            loop, *ep,
            write(std::string("insert into ") + kTable + " (v) values ($1); insert into no_such_table values (1)",
                  {v}));
        CHECK_FALSE(r.outcome.ok);
        CHECK_FALSE(r.outcome.retry_elsewhere);
        CHECK(std::string(r.response.sqlstate) == "42P01");
        CHECK(r.response.error.find("statement 2 of 2") != std::string::npos);
        CHECK(r.response.token.empty());
        CHECK(count_of(primary, v) == "0");
    }
    SECTION("all statements succeed: affected rows add up, each gets its own parameters") {
        const std::string v = unique_value();
        const std::string w = v + "-w";
        // Statement 1 uses only $2, statement 2 uses $1 and $2, statement 3 none.
        auto r = run_job(loop, *ep,
                         write(std::string("insert into ") + kTable + " (v) values ($2);" + " insert into " + kTable +
                                   " (v) values ($1), ($2);" + " select 1 from " + kTable + " limit 1",
                               {v, w}));
        REQUIRE(r.outcome.ok);
        CHECK(r.response.affected == 3);
        CHECK(count_of(primary, v) == "1");
        CHECK(count_of(primary, w) == "2");
        CHECK_FALSE(r.response.token.empty());
    }
    SECTION("explicit transaction control is refused with an explanation") {
        const std::string v = unique_value();
        auto r =
            run_job(loop, *ep, write(std::string("begin; insert into ") + kTable + " (v) values ($1); commit", {v}));
        CHECK_FALSE(r.outcome.ok);
        CHECK(r.response.error.find("BEGIN") != std::string::npos);
        CHECK(std::string(r.response.sqlstate) == "0A000");  // refused before anything was sent
        CHECK(count_of(primary, v) == "0");
    }
    SECTION("a statement that uses more parameters than given is refused") {
        auto r = run_job(loop, *ep, write(std::string("insert into ") + kTable + " (v) values ($1); select $3", {"a"}));
        CHECK_FALSE(r.outcome.ok);
        CHECK(r.response.error.find("$3") != std::string::npos);
    }
}

TEST_CASE("a 200 000-row read arrives whole, chunk by chunk", "[pg][read][large]") {
    EventLoop loop;
    auto ep = local_replica(loop);
    auto r = run_job(loop, *ep,
                     read("select g, case when g % 7 = 0 then null else 'row-' || g end as label "
                          "from generate_series(1, 200000) g"),
                     30s);
    REQUIRE(r.outcome.ok);
    CHECK(r.outcome.chunks.size() > 10);
    for (const auto& c : r.outcome.chunks) CHECK(c.size() <= 64 * 1024);
    REQUIRE(r.response.nrows() == 200000);
    CHECK(cell(r.response, 0, 0) == "1");
    CHECK(cell(r.response, 0, 1) == "row-1");
    CHECK_FALSE(cell(r.response, 6, 1).has_value());
    CHECK(cell(r.response, 199999, 0) == "200000");
}

TEST_CASE("100 concurrent jobs on a pool of 4 all complete with their own answers", "[pg][pool]") {
    EventLoop loop;
    auto ep = primary_from_eu(loop, 4);
    std::map<int, Outcome> results;
    std::uint32_t max_in_use = 0;
    for (int i = 0; i < 100; ++i) {
        ep->submit(read("select $1::int * 2, $2::text", {std::to_string(i), "job-" + std::to_string(i)}),
                   [&results, i](Outcome&& o) {
                       REQUIRE(results.count(i) == 0);
                       results.emplace(i, std::move(o));
                   });
    }
    CHECK(ep->in_flight() == 100);
    REQUIRE(run_until(
        loop,
        [&] {
            max_in_use = std::max(max_in_use, ep->health().pool_in_use);
            return results.size() == 100;
        },
        30s));
    CHECK(max_in_use <= 4);
    CHECK(ep->in_flight() == 0);
    for (auto& [i, o] : results) {
        INFO("job " << i);
        REQUIRE(o.ok);
        auto resp = decode(o);
        REQUIRE(resp.nrows() == 1);
        CHECK(cell(resp, 0, 0) == std::to_string(i * 2));
        CHECK(cell(resp, 0, 1) == "job-" + std::to_string(i));
    }
}

TEST_CASE("a job past its deadline times out, is cancelled, and leaks nothing", "[pg][deadline]") {
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    // Warm up so the deadline measures the query, not the connect.
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);

    const std::string marker = unique_value();
    std::optional<Outcome> slow, behind;
    const auto t0 = Clock::now();
    double slow_ms = 0;
    ep->submit(read("select pg_sleep(5), $1::text", {marker}, 200ms), [&](Outcome&& o) {
        slow_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        slow = std::move(o);
    });
    // Pipelined behind the slow one on the only connection: it must still get
    // its own answer (sent again after the cancel), never the slow one's.
    ep->submit(read("select 'behind'"), [&](Outcome&& o) { behind = std::move(o); });
    REQUIRE(run_until(
        loop, [&] { return slow && behind; }, 10s));
    REQUIRE_FALSE(slow->ok);
    CHECK_FALSE(slow->retry_elsewhere);  // a timeout is never re-sent elsewhere
    auto resp = decode(*slow);
    CHECK(resp.error == "timed out after 200 ms");
    INFO("answered after " << slow_ms << " ms");
    CHECK(slow_ms >= 190);
    CHECK(slow_ms < 1000);
    REQUIRE(behind->ok);
    CHECK(cell(decode(*behind), 0, 0) == "behind");

    // The connection is usable afterwards and answers the next job, not the old one.
    auto next = run_job(loop, *ep, read("select 'next'"));
    REQUIRE(next.outcome.ok);
    CHECK(cell(next.response, 0, 0) == "next");

    // Closing the connection made the server stop the sleep (it checks every
    // second whether the client is gone), well before its 5 s.
    PgSession primary(env.superuser_conninfo("us-east-1"));
    CHECK(eventually(
        [&] {
            return primary.scalar(
                       "select count(*) from pg_stat_activity where query like '%pg_sleep(5), $1%' "
                       "and pid <> pg_backend_pid()") == "0";
        },
        3500ms));

    // A job whose deadline passes while queued is answered without being sent.
    auto queued = run_job(loop, *ep, read("select 1", {}, 0ms));
    CHECK_FALSE(queued.outcome.ok);
    CHECK(queued.response.error.rfind("timed out after", 0) == 0);
}

TEST_CASE("a read timing out behind a running one is dropped without disturbing it", "[pg][deadline]") {
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);
    std::optional<Outcome> running, behind;
    ep->submit(read("select pg_sleep(0.5), 'running'", {}, 5s), [&](Outcome&& o) { running = std::move(o); });
    ep->submit(read("select 'behind'", {}, 100ms), [&](Outcome&& o) { behind = std::move(o); });
    REQUIRE(run_until(
        loop, [&] { return behind.has_value(); }, 5s));
    CHECK_FALSE(behind->ok);
    CHECK(decode(*behind).error == "timed out after 100 ms");
    CHECK_FALSE(running.has_value());
    REQUIRE(run_until(
        loop, [&] { return running.has_value(); }, 5s));
    REQUIRE(running->ok);
    CHECK(cell(decode(*running), 0, 1) == "running");
    // The dropped job's answer never reaches the next one.
    auto next = run_job(loop, *ep, read("select 'next'"));
    REQUIRE(next.outcome.ok);
    CHECK(cell(next.response, 0, 0) == "next");
}

TEST_CASE("a backend ended under a job: its own error, not retried, health unchanged", "[pg][pool][failure]") {
    // 57P01 received as the job's own result while the probe still answers is
    // that job's error alone (docs/design.md, "Health"): a statement that ends
    // its own backend must not be re-run, nor count against the endpoint.
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    auto kill_running = [&](const std::string& marker) {
        wait_active(loop, primary, marker);
        primary.exec("select pg_terminate_backend(pid) from pg_stat_activity where state = 'active' and query like '%" +
                     marker + "%' and pid <> pg_backend_pid()");
    };

    const std::string read_marker = unique_value();
    std::optional<Outcome> got;
    ep->submit(read("select pg_sleep(0.3), '" + read_marker + "'"), [&](Outcome&& o) { got = std::move(o); });
    kill_running(read_marker);
    REQUIRE(run_until(
        loop, [&] { return got.has_value(); }, 10s));
    CHECK_FALSE(got->ok);
    CHECK_FALSE(got->retry_elsewhere);
    CHECK(std::string(decode(*got).sqlstate) == "57P01");
    CHECK(ep->health().healthy);

    const std::string v = unique_value();
    std::optional<Outcome> w;
    ep->submit(write(std::string("insert into ") + kTable + " (v) select $1 from pg_sleep(0.3)", {v}),
               [&](Outcome&& o) { w = std::move(o); });
    kill_running("from pg_sleep(0.3)");
    REQUIRE(run_until(
        loop, [&] { return w.has_value(); }, 10s));
    CHECK_FALSE(w->ok);
    CHECK_FALSE(w->retry_elsewhere);  // never for a write
    CHECK(std::string(decode(*w).sqlstate) == "57P01");
    CHECK(decode(*w).error.find("rolled back") != std::string::npos);
    CHECK(count_of(primary, v) == "0");
    CHECK(ep->health().healthy);
    // The pool recovers.
    CHECK(run_job(loop, *ep, read("select 1")).outcome.ok);
}

TEST_CASE("a connection lost under a job: a read is sent again once, a write says it may have committed",
          "[pg][pool][failure]") {
    // The link resets every open connection (RST, no 57P01) and comes back at
    // once: the probe reconnects and answers, so the read that may have run is
    // sent again on the same endpoint, spending its one re-send.
    ensure_table();
    const auto& env = ClusterEnv::get();
    const std::string link = env.link("eu-west-1", "us-east-1", "pg").name;
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    auto reset_link = [&] { LinkCut cut(env, link, "reset"); };

    const std::string read_marker = unique_value();
    std::optional<Outcome> got;
    ep->submit(read("select pg_sleep(0.3), '" + read_marker + "'"), [&](Outcome&& o) { got = std::move(o); });
    wait_active(loop, primary, read_marker);
    reset_link();
    REQUIRE(run_until(
        loop, [&] { return got.has_value(); }, 10s));
    INFO(decode(*got).error);
    REQUIRE(got->ok);  // answered by the second attempt, on a new connection
    CHECK(cell(decode(*got), 0, 1) == read_marker);

    // Its re-send already spent (the dispatcher sent it here as its retry): an error.
    const std::string again = unique_value();
    Job spent = read("select pg_sleep(0.3), '" + again + "'");
    spent.may_retry = false;
    std::optional<Outcome> lost;
    ep->submit(std::move(spent), [&](Outcome&& o) { lost = std::move(o); });
    wait_active(loop, primary, again);
    reset_link();
    REQUIRE(run_until(
        loop, [&] { return lost.has_value(); }, 10s));
    CHECK_FALSE(lost->ok);
    CHECK_FALSE(lost->retry_elsewhere);

    const std::string v = unique_value();
    std::optional<Outcome> w;
    ep->submit(write(std::string("insert into ") + kTable + " (v) select $1 from pg_sleep(0.3)", {v}),
               [&](Outcome&& o) { w = std::move(o); });
    wait_active(loop, primary, "from pg_sleep(0.3)");
    reset_link();
    REQUIRE(run_until(
        loop, [&] { return w.has_value(); }, 10s));
    CHECK_FALSE(w->ok);
    CHECK_FALSE(w->retry_elsewhere);
    CHECK(decode(*w).error.find("may or may not have committed") != std::string::npos);
    // Not committed here (the server rolls back when it sees the connection gone).
    CHECK(eventually([&] { return count_of(primary, v) == "0"; }, 3s));
    CHECK(ep->health().healthy);
    {
        auto last = run_job(loop, *ep, read("select 1"));
        INFO(last.response.error);
        CHECK(last.outcome.ok);
    }
}

TEST_CASE("reads are pipelined on one connection", "[pg][pool][pipeline]") {
    const auto& env = ClusterEnv::get();
    const double one_way = env.link("eu-west-1", "us-east-1", "pg").delay_ms;
    REQUIRE(one_way >= 5);
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    REQUIRE(run_job(loop, *ep, read("select 0")).outcome.ok);
    int done = 0;
    const int n = 16;
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
        ep->submit(read("select $1::int", {std::to_string(i)}), [&done](Outcome&& o) {
            CHECK(o.ok);
            ++done;
        });
    }
    REQUIRE(run_until(
        loop, [&] { return done == n; }, 10s));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    // One at a time they would need at least n round trips (2 x one-way delay
    // each, a physical bound); pipelined 8 deep, about two.
    INFO(n << " reads in " << ms << " ms; one-way delay " << one_way << " ms");
    CHECK(ms < 0.75 * n * 2 * one_way);
}

TEST_CASE("reads batched on a replica: a failing read fails alone, the others are sent again", "[pg][pool][batch]") {
    // Reads submitted together to a busy replica endpoint share one sync (one
    // implicit transaction): an error skips the rest of the batch, which must be
    // re-sent, not failed.
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto o = eu_replica_from_tokyo(env);
    o.pool_size = 1;
    auto ep = Endpoint::create(loop, o);
    ep->start();
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    REQUIRE(run_job(loop, *ep, read("select 0")).outcome.ok);
    for (int round = 0; round < 3; ++round) {
        const int n = 16;
        std::vector<std::optional<Outcome>> got(n);
        for (int i = 0; i < n; ++i) {
            std::string sql = "select $1::int";
            if (i == 5) sql = "select $1::int from rgd_no_such_table";  // Parse fails: 42P01
            if (i == 9) sql = "select $1::int / 0";                     // runs, fails: 22012
            ep->submit(read(sql, {std::to_string(i)}), [&got, i](Outcome&& out) {
                REQUIRE_FALSE(got[i].has_value());
                got[i] = std::move(out);
            });
        }
        REQUIRE(run_until(
            loop, [&] { return std::all_of(got.begin(), got.end(), [](auto& g) { return g.has_value(); }); }, 20s));
        for (int i = 0; i < n; ++i) {
            INFO("read " << i << " of round " << round);
            const Response r = decode(*got[i]);
            if (i == 5 || i == 9) {
                CHECK_FALSE(got[i]->ok);
                CHECK_FALSE(got[i]->retry_elsewhere);
                CHECK(std::string(r.sqlstate) == (i == 5 ? "42P01" : "22012"));
            } else {
                REQUIRE(got[i]->ok);
                REQUIRE(r.nrows() == 1);
                CHECK(cell(r, 0, 0) == std::to_string(i));
            }
        }
    }
    CHECK(ep->in_flight() == 0);
}

TEST_CASE("a full queue, a drain and an unreachable server answer at once", "[pg][pool]") {
    EventLoop loop;
    const auto& env = ClusterEnv::get();
    SECTION("queue full") {
        auto o = options("eu-west-1", Role::replica, env.app_conninfo_via("eu-west-1", "eu-west-1"), "replica-q");
        o.pool_size = 1;
        o.max_queue = 1;
        auto ep = Endpoint::create(loop, o);
        ep->start();
        // Nothing is connected yet: the first job waits in the queue, the second is refused.
        std::optional<Outcome> first, second;
        ep->submit(read("select 1"), [&](Outcome&& out) { first = std::move(out); });
        ep->submit(read("select 2"), [&](Outcome&& out) { second = std::move(out); });
        CHECK_FALSE(second.has_value());  // never answered from inside submit()
        REQUIRE(run_until(
            loop, [&] { return first && second; }, 10s));
        CHECK(first->ok);
        CHECK_FALSE(second->ok);
        CHECK(decode(*second).error.find("endpoint replica-q queue full") == 0);
    }
    SECTION("drain answers queued jobs, lets running ones finish, then reports drained") {
        auto ep = local_replica(loop, 1);
        REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);
        std::optional<Outcome> running, late;
        bool drained = false;
        ep->submit(read("select pg_sleep(0.3), 'done'"), [&](Outcome&& out) { running = std::move(out); });
        ep->drain("regiond is shutting down", [&] { drained = true; });
        ep->submit(read("select 1"), [&](Outcome&& out) { late = std::move(out); });
        REQUIRE(run_until(
            loop, [&] { return running && late && drained; }, 10s));
        CHECK(running->ok);
        CHECK_FALSE(late->ok);
        CHECK(decode(*late).error == "regiond is shutting down");
        CHECK(ep->in_flight() == 0);
    }
    SECTION("an unreachable server fails jobs fast, without leaking the conninfo") {
        auto o = options("eu-west-1", Role::replica, "host=127.0.0.1 port=1 dbname=app user=app password=sekrit-pw",
                         "127.0.0.1:1");
        o.down_after = 1;
        auto ep = Endpoint::create(loop, o);
        ep->start();
        auto r = run_job(loop, *ep, read("select 1"), 10s);
        CHECK_FALSE(r.outcome.ok);
        CHECK(r.outcome.retry_elsewhere);
        CHECK(r.response.error.find("127.0.0.1:1") != std::string::npos);
        CHECK(r.response.error.find("sekrit") == std::string::npos);
        REQUIRE(run_until(
            loop, [&] { return !ep->health().last_error.empty(); }, 5s));
        CHECK_FALSE(ep->health().healthy);
        CHECK(ep->health().last_error.find("sekrit") == std::string::npos);
    }
}

TEST_CASE("a cut link marks the endpoint down after down_after failures and up after restore", "[pg][health]") {
    const auto& env = ClusterEnv::get();
    const std::string link = env.link("ap-northeast-1", "eu-west-1", "pg").name;
    EventLoop loop;
    auto o = eu_replica_from_tokyo(env);
    o.check_interval = 100ms;
    o.connect_timeout = 300ms;
    o.down_after = 3;
    o.up_after = 2;
    auto ep = Endpoint::create(loop, o);
    int changes = 0;
    ep->on_health_change([&] { ++changes; });
    ep->start();
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    CHECK(ep->health().ever_connected);
    CHECK(ep->health().rtt_us > 0);
    CHECK(changes > 0);
    INFO("rtt " << ep->health().rtt_us << " us");
    // The link has 11 ms one way in the fast profile: the probe sees the round trip.
    CHECK(ep->health().rtt_us >= 2 * 11000 * 9 / 10);
    {
        LinkCut cut(env, link);
        const auto t0 = Clock::now();
        REQUIRE(run_until(
            loop, [&] { return !ep->health().healthy; }, 10s));
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        INFO("down after " << ms << " ms: " << ep->health().last_error);
        CHECK_FALSE(ep->health().last_error.empty());
        // three failures, each bounded by the probe's timeout
        CHECK(ms < 5000);
    }
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    CHECK(ep->health().last_error.empty());
    auto r = run_job(loop, *ep, read("select 1"));
    CHECK(r.outcome.ok);
}

TEST_CASE("a stalled link: the endpoint goes down within down_after checks and answers its reads in flight",
          "[pg][health]") {
    // A stall (packets vanish, nothing is refused) is the partition nothing else
    // ends: without the endpoint failing them, reads sent before the cut would
    // wait for their full deadline.
    const auto& env = ClusterEnv::get();
    const std::string link = env.link("ap-northeast-1", "eu-west-1", "pg").name;
    EventLoop loop;
    auto o = eu_replica_from_tokyo(env);
    o.check_interval = 200ms;
    o.connect_timeout = 2000ms;  // the probe's own deadline (4 s) is not what marks it down
    o.down_after = 3;
    auto ep = Endpoint::create(loop, o);
    ep->start();
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);  // a pooled connection is open

    std::vector<std::optional<Outcome>> got(3);
    for (auto& slot : got) {
        ep->submit(read("select pg_sleep(0.3)", {}, 60s), [&slot](Outcome&& out) {
            REQUIRE_FALSE(slot.has_value());
            slot = std::move(out);
        });
    }
    // Let the reads reach the server, then cut the link under them.
    REQUIRE(run_until(
        loop, [&] { return ep->in_flight() == 3; }, 1s));
    loop.run_once(50ms);
    LinkCut cut(env, link, "stall");
    const auto t0 = Clock::now();
    REQUIRE(run_until(
        loop, [&] { return !ep->health().healthy; }, 20s));
    const double down_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    INFO("down after " << down_ms << " ms: " << ep->health().last_error);
    CHECK(ep->health().last_error.find("has not answered") != std::string::npos);
    // Answered when the endpoint went down, long before their 60 s deadline.
    REQUIRE(run_until(
        loop, [&] { return got[0] && got[1] && got[2]; }, 5s));
    for (auto& out : got) {
        CHECK_FALSE(out->ok);
        CHECK(out->retry_elsewhere);
        const Response r = decode(*out);
        CHECK(r.error.find("was marked down") != std::string::npos);
    }
    CHECK(ep->in_flight() == 0);
}

TEST_CASE("new connections refused while the probe answers: the endpoint stays healthy, the long read finishes",
          "[pg][health]") {
    // Health comes from the probe alone (docs/design.md, "Health"): refused pool
    // connects ("too many connections for role") ask the probe, whose open
    // connection answers, so the endpoint stays healthy. What runs on the open
    // connection finishes; the jobs waiting for a connection get it after.
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto o = eu_replica_from_tokyo(env);
    o.pool_size = 4;
    o.check_interval = 100ms;
    o.down_after = 2;
    auto ep = Endpoint::create(loop, o);
    ep->start();
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);  // the pool's first connection

    // The application role may keep the connections it has (the pool's one and
    // the probe's) but gets no new one: "too many connections for role".
    PgSession primary(env.superuser_conninfo("us-east-1"));
    PgSession replica(env.superuser_conninfo("eu-west-1"));
    const std::string role = env.value("APP_USER");
    struct ConnLimitGuard {
        PgSession& primary;
        std::string role;
        ~ConnLimitGuard() {
            try {
                primary.exec("alter role " + role + " connection limit -1");
            } catch (...) {}
        }
    } guard{primary, role};
    primary.exec("alter role " + role + " connection limit 2");
    REQUIRE(eventually(
        [&] { return replica.scalar("select rolconnlimit from pg_roles where rolname = '" + role + "'") == "2"; },
        30s));

    std::optional<Outcome> long_read;
    ep->submit(read("select 'kept' as v, pg_sleep(1.5)", {}, 20s), [&](Outcome&& out) { long_read = std::move(out); });
    std::vector<std::optional<Outcome>> waiting(3);
    for (auto& w : waiting) ep->submit(read("select 2", {}, 20s), [&w](Outcome&& out) { w = std::move(out); });
    bool stayed_healthy = true;
    REQUIRE(run_until(
        loop,
        [&] {
            stayed_healthy = stayed_healthy && ep->health().healthy;
            return long_read && waiting[0] && waiting[1] && waiting[2];
        },
        15s));
    CHECK(stayed_healthy);
    INFO(decode(*long_read).error);
    REQUIRE(long_read->ok);  // finished on its connection, not cut off
    CHECK(cell(decode(*long_read), 0, 0) == "kept");
    for (auto& w : waiting) {
        INFO(decode(*w).error);
        CHECK(w->ok);  // sent on the connection the long read freed
    }
}

TEST_CASE("health settings changed at run time (SIGHUP) take effect on the next checks", "[pg][health]") {
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto o = eu_replica_from_tokyo(env);
    o.check_interval = 200ms;
    o.down_after = 100;  // 20 s of failed checks before down: longer than this test waits
    auto ep = Endpoint::create(loop, o);
    ep->start();
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    ep->update_health(2000ms, 100ms, 2, 2);
    CHECK(ep->options().down_after == 2);
    CHECK(ep->options().check_interval == 100ms);
    {
        LinkCut cut(env, env.link("ap-northeast-1", "eu-west-1", "pg").name, "stall");
        REQUIRE(run_until(
            loop, [&] { return !ep->health().healthy; }, 5s));
    }
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
}

TEST_CASE("lag: a paused replica shows bytes and growing milliseconds, then zero", "[pg][lag]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto tracker = std::make_shared<LagTracker>();
    auto primary = primary_from_eu(loop, 1);
    auto replica = local_replica(loop, 1);
    primary->set_lag_tracker(tracker);
    replica->set_lag_tracker(tracker);
    const auto& h = replica->health();
    REQUIRE(run_until(
        loop, [&] { return h.healthy && primary->health().healthy && tracker->has_primary(); }, 10s));
    // Caught up (possibly after a write of an earlier test): zero lag.
    REQUIRE(run_until(
        loop, [&] { return replica->health().lag_bytes == 0 && replica->health().lag_ms == 0; }, 10s));

    PgSession paused(env.superuser_conninfo("eu-west-1"));
    {
        ReplayPauseGuard guard(paused);
        REQUIRE(eventually([&] { return paused.scalar("select pg_get_wal_replay_pause_state()") == "paused"; }, 10s));
        auto w =
            run_job(loop, *primary, write(std::string("insert into ") + kTable + " (v) values ($1)", {unique_value()}));
        REQUIRE(w.outcome.ok);
        REQUIRE(run_until(
            loop, [&] { return replica->health().lag_bytes > 0 && replica->health().lag_ms > 0; }, 10s));
        const auto first_ms = replica->health().lag_ms;
        INFO("lag " << replica->health().lag_bytes << " bytes, " << first_ms << " ms");
        CHECK(replica->health().lag_bytes <= tracker->primary_lsn());
        REQUIRE(run_until(
            loop, [&] { return replica->health().lag_ms >= first_ms + 200; }, 10s));
    }
    REQUIRE(run_until(
        loop, [&] { return replica->health().lag_bytes == 0 && replica->health().lag_ms == 0; }, 10s));
}

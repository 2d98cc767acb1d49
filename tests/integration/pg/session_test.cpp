// Session isolation, health evidence, cancellation and streaming of daemon/pg/
// endpoints against the local cluster (docs/design.md, "Session isolation",
// "Health", "Cancellation", "Streaming"). Every check is made from outside too:
// pg_stat_activity, a superuser session, the decoded response.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "daemon/pg/connection.hpp"
#include "endpoint_harness.hpp"

using namespace regiond::testing::pg;
using regiond::daemon::pg::CloseCause;
using regiond::daemon::pg::CloseInfo;
using regiond::daemon::pg::Connection;
using regiond::daemon::pg::ConnectionSettings;
using regiond::daemon::pg::PgResultPtr;
using regiond::daemon::pg::Step;
using regiond::daemon::pg::Work;
using regiond::testing::ClusterEnv;
using regiond::testing::eventually;
using regiond::testing::PgSession;

namespace {

struct Got {
    std::optional<Outcome> outcome;
    std::vector<std::vector<std::byte>> streamed;  ///< chunks handed to partial
};

// The whole response: the chunks streamed through partial, then done's.
Response decode_all(const Got& g) {
    regiond::shm::ResponseDecoder dec;
    for (const auto& c : g.streamed) REQUIRE(dec.feed(c) == regiond::shm::CodecError::ok);
    for (const auto& c : g.outcome->chunks) REQUIRE(dec.feed(c) == regiond::shm::CodecError::ok);
    REQUIRE(dec.complete());
    return dec.take();
}

std::string active_count(PgSession& s, const std::string& marker) {
    return s.scalar("select count(*) from pg_stat_activity where state = 'active' and query like '%" + marker +
                    "%' and pid <> pg_backend_pid()");
}

void wait_replayed(PgSession& primary, const std::string& replica_region) {
    const std::string lsn = primary.scalar("select pg_current_wal_insert_lsn()");
    PgSession replica(ClusterEnv::get().superuser_conninfo(replica_region));
    REQUIRE(eventually(
        [&] { return replica.scalar("select pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn") == "t"; }, 30s));
}

const char* const kBigSql = "select g, repeat('x', 10) || g as label from generate_series(1, 200000) g";

}  // namespace

TEST_CASE("COPY as a read or a write: an error at once, the connection reset, the loop keeps serving",
          "[pg][session][copy]") {
    ensure_table();
    EventLoop loop;
    auto primary = primary_from_eu(loop, 1);
    auto replica = local_replica(loop, 1);
    struct Case {
        Endpoint* ep;
        Job job;
    };
    std::vector<Case> cases;
    cases.push_back({replica.get(), read("copy (select 1) to stdout")});
    cases.push_back({primary.get(), read("copy (select 1) to stdout")});
    cases.push_back({primary.get(), write("copy (select 1) to stdout")});
    cases.push_back({primary.get(), write(std::string("copy ") + kTable + " (v) from stdin")});
    cases.push_back({replica.get(), read(std::string("copy ") + kTable + " (v) from stdin")});
    for (auto& c : cases) {
        const bool copy_from_as_read =
            c.job.kind == Job::Kind::read && c.job.sql.find("from stdin") != std::string::npos;
        INFO(c.job.sql << (c.job.kind == Job::Kind::write ? " as a write" : " as a read"));
        // Limit: the loop would spin inside run_once forever without the fix;
        // a second bounds it generously on this shared machine.
        auto r = run_job(loop, *c.ep, std::move(c.job), 1000ms);
        CHECK_FALSE(r.outcome.ok);
        CHECK_FALSE(r.outcome.retry_elsewhere);
        CHECK(r.response.error.find("COPY") != std::string::npos);
        if (copy_from_as_read) {
            // Refused by the classifier (0A000), or, should it let it through,
            // by the server itself inside the read-only transaction (25006).
            CHECK((std::string(r.response.sqlstate) == "0A000" || std::string(r.response.sqlstate) == "25006"));
        } else {
            CHECK(std::string(r.response.sqlstate) == "0A000");
        }
        // The endpoint keeps serving, on a reset connection.
        auto next = run_job(loop, *c.ep, read("select 'next'"), 5000ms);
        REQUIRE(next.outcome.ok);
        CHECK(cell(next.response, 0, 0) == "next");
    }
}

TEST_CASE("a self-terminating read: its own error, the endpoint healthy, the other jobs fine",
          "[pg][session][health]") {
    EventLoop loop;
    auto ep = primary_from_eu(loop, 2);
    REQUIRE(run_until(
        loop, [&] { return ep->health().healthy; }, 10s));
    std::optional<Outcome> killer;
    std::vector<std::optional<Outcome>> others(8);
    ep->submit(read("select pg_terminate_backend(pg_backend_pid())"), [&](Outcome&& o) { killer = std::move(o); });
    for (std::size_t i = 0; i < others.size(); ++i)
        ep->submit(read("select $1::int", {std::to_string(i)}), [&, i](Outcome&& o) { others[i] = std::move(o); });
    bool healthy = true;
    REQUIRE(run_until(
        loop,
        [&] {
            healthy = healthy && ep->health().healthy;
            return killer && std::all_of(others.begin(), others.end(), [](auto& o) { return o.has_value(); });
        },
        10s));
    CHECK(healthy);
    CHECK_FALSE(killer->ok);
    CHECK_FALSE(killer->retry_elsewhere);  // not re-run anywhere: it would end another backend
    CHECK(std::string(decode(*killer).sqlstate) == "57P01");
    for (std::size_t i = 0; i < others.size(); ++i) {
        INFO("read " << i << ": " << decode(*others[i]).error);
        REQUIRE(others[i]->ok);
        CHECK(cell(decode(*others[i]), 0, 0) == std::to_string(i));
    }
    CHECK(ep->health().healthy);
    CHECK(ep->health().last_error.empty());
}

TEST_CASE("cancel: a running statement is stopped on the server before done, on the same connection",
          "[pg][session][cancel]") {
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    auto pid = run_job(loop, *ep, read("select pg_backend_pid()"));
    REQUIRE(pid.outcome.ok);
    const std::string backend = *cell(pid.response, 0, 0);
    PgSession primary(env.superuser_conninfo("us-east-1"));

    const std::string marker = unique_value();
    std::optional<Outcome> got;
    const JobId id =
        ep->submit(read("select pg_sleep(30), '" + marker + "'", {}, 60s), [&](Outcome&& o) { got = std::move(o); });
    wait_active(loop, primary, marker);
    ep->cancel(id);
    CHECK_FALSE(got.has_value());  // never from inside cancel()
    REQUIRE(run_until(
        loop, [&] { return got.has_value(); }, 5s));
    // done ran once the server had stopped it: no waiting here.
    CHECK(active_count(primary, marker) == "0");
    CHECK(got->cancelled);
    CHECK_FALSE(got->ok);
    CHECK_FALSE(got->retry_elsewhere);
    CHECK(std::string(decode(*got).sqlstate) == "57014");
    CHECK(ep->in_flight() == 0);
    // The connection was kept: the same backend answers the next job.
    auto again = run_job(loop, *ep, read("select pg_backend_pid()"));
    REQUIRE(again.outcome.ok);
    CHECK(cell(again.response, 0, 0) == backend);

    // A queued job is answered at once (nothing ran on the server).
    std::optional<Outcome> running, queued;
    const std::string marker2 = unique_value();
    ep->submit(read("select pg_sleep(0.5), '" + marker2 + "'"), [&](Outcome&& o) { running = std::move(o); });
    const JobId waiting = ep->submit(read("select 'queued'"), [&](Outcome&& o) { queued = std::move(o); });
    wait_active(loop, primary, marker2);
    ep->cancel(waiting);
    REQUIRE(run_until(
        loop, [&] { return queued.has_value(); }, 5s));
    CHECK(queued->cancelled);
    CHECK_FALSE(running.has_value());
    REQUIRE(run_until(
        loop, [&] { return running.has_value(); }, 5s));
    CHECK(running->ok);
}

TEST_CASE("a cancelled write reports what is known about its commit", "[pg][session][cancel]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    const std::string v = unique_value();
    std::optional<Outcome> got;
    const JobId id =
        ep->submit(write(std::string("insert into ") + kTable + " (v) select $1 from pg_sleep(30)", {v}, 60s),
                   [&](Outcome&& o) { got = std::move(o); });
    wait_active(loop, primary, "from pg_sleep(30)");
    ep->cancel(id);
    REQUIRE(run_until(
        loop, [&] { return got.has_value(); }, 5s));
    const Response r = decode(*got);
    INFO(r.error);
    CHECK(got->cancelled);
    CHECK(std::string(r.sqlstate) == "57014");
    CHECK(r.error.find("cancelled before commit") != std::string::npos);
    CHECK(count_of(primary, v) == "0");
}

TEST_CASE("single-row streaming: 200 000 rows through a receiver that pauses after every chunk",
          "[pg][session][stream]") {
    EventLoop loop;
    auto o = options("eu-west-1", Role::replica, ClusterEnv::get().app_conninfo_via("eu-west-1", "eu-west-1"), "local");
    o.pool_size = 2;
    o.max_chunk_bytes = 512 * 1024;  // the daemon's ring payload: chunks are taken at 64 KiB anyway
    auto ep = Endpoint::create(loop, o);
    ep->start();
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);

    Got got;
    bool paused = false;
    std::size_t max_between_resumes = 0, since_resume = 0;
    JobCallbacks cb;
    cb.partial = [&](std::vector<std::byte>&& chunk) {
        REQUIRE_FALSE(paused);  // nothing is handed out while paused
        since_resume += chunk.size();
        max_between_resumes = std::max(max_between_resumes, since_resume);
        got.streamed.push_back(std::move(chunk));
        paused = true;
        return false;
    };
    cb.done = [&](Outcome&& out) { got.outcome = std::move(out); };
    const JobId id = ep->submit(read(kBigSql, {}, 60s), std::move(cb));
    bool small_done_while_paused = false;
    int resumes = 0;
    REQUIRE(run_until(
        loop,
        [&] {
            if (got.outcome) return true;
            if (paused) {
                if (resumes == 3 && !small_done_while_paused) {
                    // While paused, a job submitted now goes to the other connection.
                    auto small = run_job(loop, *ep, read("select 'other'"), 5s);
                    small_done_while_paused = small.outcome.ok;
                    // Still paused: the loop ran, nothing more was handed out.
                    CHECK(got.streamed.size() == 4);
                }
                paused = false;
                since_resume = 0;
                ++resumes;
                ep->resume(id);
            }
            return false;
        },
        60s));
    CHECK(small_done_while_paused);
    REQUIRE(got.outcome->ok);
    CHECK(got.streamed.size() > 20);
    // What is handed out between two resumes is one chunk: 64 KiB and one row.
    INFO("largest hand-out between resumes: " << max_between_resumes);
    CHECK(max_between_resumes <= 64 * 1024 + 256);
    const Response r = decode_all(got);
    REQUIRE(r.nrows() == 200000);
    CHECK(r.value(0, 0) == "1");
    CHECK(r.value(199999, 1) == "xxxxxxxxxx200000");
}

TEST_CASE("single-row streaming yields to the loop: a bounded share of a large result per pass",
          "[pg][session][stream]") {
    EventLoop loop;
    auto ep = local_replica(loop, 1);
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);
    Got got;
    std::uint64_t pass = 0;
    std::map<std::uint64_t, std::size_t> bytes_per_pass;
    JobCallbacks cb;
    cb.partial = [&](std::vector<std::byte>&& chunk) {
        bytes_per_pass[pass] += chunk.size();
        got.streamed.push_back(std::move(chunk));
        return true;
    };
    cb.done = [&](Outcome&& out) { got.outcome = std::move(out); };
    ep->submit(read(kBigSql, {}, 60s), std::move(cb));
    const auto end = Clock::now() + 60s;
    while (!got.outcome && Clock::now() < end) {
        ++pass;
        loop.run_once(5ms);
    }
    REQUIRE(got.outcome);
    REQUIRE(got.outcome->ok);
    REQUIRE(bytes_per_pass.size() > 20);  // it streamed, over many passes
    std::size_t most = 0;
    for (auto& [p, b] : bytes_per_pass) most = std::max(most, b);
    INFO("passes with chunks: " << bytes_per_pass.size() << ", most bytes in one pass: " << most);
    // The budget is 64 KiB of values (or 256 rows) per pass; the encoding adds
    // a few bytes per row, and a chunk boundary may fall inside a pass.
    CHECK(most <= 2 * 64 * 1024 + 4096);
    CHECK(decode_all(got).nrows() == 200000);
}

TEST_CASE("max_result: a result beyond it fails naming the limit and stops on the server", "[pg][session][limit]") {
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    REQUIRE(run_job(loop, *ep, read("select 1")).outcome.ok);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    const std::string marker = unique_value();
    // Endless rows (a select-list set-returning function streams, one in FROM
    // would be materialized first): only the limit ends it.
    const std::string sql = "select generate_series(1, 100000000) as g, '" + marker + "' as m";

    SECTION("buffered (no partial)") {
        Job job = read(sql, {}, 60s);
        job.max_result = 1 << 20;
        auto r = run_job(loop, *ep, std::move(job), 30s);
        CHECK_FALSE(r.outcome.ok);
        CHECK(r.response.error == "result exceeds daemon.max_result (1 MiB)");
        CHECK(std::string(r.response.sqlstate) == "54000");
        CHECK(r.response.nrows() == 0);
    }
    SECTION("streamed: the rows already sent are discarded by an error trailer") {
        Got got;
        JobCallbacks cb;
        cb.partial = [&](std::vector<std::byte>&& chunk) {
            got.streamed.push_back(std::move(chunk));
            return true;
        };
        cb.done = [&](Outcome&& out) { got.outcome = std::move(out); };
        Job job = read(sql, {}, 60s);
        job.max_result = 1 << 20;
        ep->submit(std::move(job), std::move(cb));
        REQUIRE(run_until(
            loop, [&] { return got.outcome.has_value(); }, 30s));
        CHECK_FALSE(got.streamed.empty());
        const Response r = decode_all(got);
        CHECK(r.status == regiond::shm::Status::error);
        CHECK(r.error == "result exceeds daemon.max_result (1 MiB)");
        CHECK(r.nrows() == 0);
    }
    // Stopped on the server (done ran after it stopped), the connection kept.
    CHECK(active_count(primary, marker) == "0");
    CHECK(run_job(loop, *ep, read("select 1")).outcome.ok);
}

TEST_CASE("a session setting changed inside a function: the next job on every connection sees the default",
          "[pg][session][reset]") {
    const auto& env = ClusterEnv::get();
    PgSession primary(env.superuser_conninfo("us-east-1"));
    // What the classifier cannot see: the function's body changes the session.
    primary.exec(
        "create or replace function rgd_change_timezone() returns text language plpgsql as $$ begin "
        "perform set_config('TimeZone', 'America/New_York', false); "
        "return current_setting('TimeZone'); end $$");
    primary.exec("grant execute on function rgd_change_timezone() to " + env.value("APP_USER"));
    wait_replayed(primary, "eu-west-1");
    EventLoop loop;
    for (Role role : {Role::replica, Role::primary}) {
        INFO((role == Role::replica ? "replica" : "primary"));
        auto ep = role == Role::replica ? local_replica(loop, 4) : primary_from_eu(loop, 4);
        auto def = run_job(loop, *ep, read("select current_setting('TimeZone')"));
        REQUIRE(def.outcome.ok);
        const std::string default_tz = *cell(def.response, 0, 0);
        REQUIRE(default_tz != "America/New_York");
        // Several rounds, the function among plain reads submitted in the same
        // pass (on the replica they share batches): every read sees the default,
        // the function's own answer is its own.
        for (int round = 0; round < 4; ++round) {
            std::vector<std::optional<Outcome>> got(16);
            for (std::size_t i = 0; i < got.size(); ++i) {
                const std::string sql =
                    i % 5 == 0 ? "select rgd_change_timezone()" : "select current_setting('TimeZone')";
                ep->submit(read(sql), [&got, i](Outcome&& o) { got[i] = std::move(o); });
            }
            REQUIRE(run_until(
                loop, [&] { return std::all_of(got.begin(), got.end(), [](auto& g) { return g.has_value(); }); }, 20s));
            for (std::size_t i = 0; i < got.size(); ++i) {
                INFO("round " << round << " read " << i);
                REQUIRE(got[i]->ok);
                CHECK(cell(decode(*got[i]), 0, 0) == (i % 5 == 0 ? "America/New_York" : default_tz));
            }
        }
    }
}

TEST_CASE("a read on the primary runs read-only: a write sent as a read fails with 25006 and changes nothing",
          "[pg][session][readonly]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    const std::string v = unique_value();
    auto r = run_job(loop, *ep, read(std::string("insert into ") + kTable + " (v) values ($1)", {v}));
    CHECK_FALSE(r.outcome.ok);
    CHECK(std::string(r.response.sqlstate) == "25006");
    CHECK(count_of(primary, v) == "0");
    // The read-only is the read's own: the next write on the same connection works.
    auto w = run_job(loop, *ep, write(std::string("insert into ") + kTable + " (v) values ($1)", {v}));
    REQUIRE(w.outcome.ok);
    CHECK(count_of(primary, v) == "1");
    // Nor can a read lift it: the classifier refuses the call it can see...
    auto lift = run_job(loop, *ep, read("select set_config('transaction_read_only', 'off', true)"));
    CHECK_FALSE(lift.outcome.ok);
    CHECK(std::string(lift.response.sqlstate) == "0A000");
    CHECK(lift.response.error.find("transaction_read_only") != std::string::npos);
    // ...and the server refuses the one hidden in a function the classifier
    // cannot look into (25001: it must be set before any query).
    primary.exec("create or replace function rgd_lift_read_only() returns text language sql as "
                 "$$ select set_config('transaction_read_only', 'off', true) $$");
    auto hidden = run_job(loop, *ep, read("select rgd_lift_read_only()"));
    CHECK_FALSE(hidden.outcome.ok);
    CHECK(std::string(hidden.response.sqlstate) == "25001");
    auto w2 = run_job(loop, *ep, read(std::string("insert into ") + kTable + " (v) values ($1)", {v}));
    CHECK_FALSE(w2.outcome.ok);
    CHECK(count_of(primary, v) == "1");
}

TEST_CASE("BEGIN sent as a read leaves no transaction open: acknowledged writes are visible outside",
          "[pg][session][transaction]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto ep = primary_from_eu(loop, 1);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    for (const char* sql : {"begin", "start transaction", "savepoint s"}) {
        INFO(sql);
        auto b = run_job(loop, *ep, read(sql));
        CHECK_FALSE(b.outcome.ok);
        const std::string v = unique_value();
        auto w = run_job(loop, *ep, write(std::string("insert into ") + kTable + " (v) values ($1)", {v}));
        REQUIRE(w.outcome.ok);
        CHECK(count_of(primary, v) == "1");  // committed, seen from outside
    }
}

namespace {

// A Work that records what happened to it.
struct RecordingWork final : Work {
    std::vector<ExecStatusType> results;
    bool finished = false;
    std::optional<CloseInfo> closed;
    void on_result(std::size_t, PgResultPtr r) override { results.push_back(PQresultStatus(r.get())); }
    void on_finished() override { finished = true; }
    void on_connection_closed(const CloseInfo& info) override { closed = info; }
};

struct Listener final : Connection::Listener {
    bool connected = false;
    std::optional<CloseInfo> closed;
    void on_connected(Connection&) override { connected = true; }
    void on_closed(Connection&, const CloseInfo& info, bool) override { closed = info; }
    void on_work_done(Connection&) override {}
};

}  // namespace

TEST_CASE("the session guard: a transaction block left open closes the connection after its sync",
          "[pg][session][transaction]") {
    // Defence in depth behind the classifier (which refuses BEGIN): the
    // connection itself notices an open transaction block after a sync.
    const auto& env = ClusterEnv::get();
    const std::string app_name = "rgd_guard_" + unique_value().substr(2);
    ConnectionSettings settings;
    settings.conninfo = env.app_conninfo_via("eu-west-1", "us-east-1") + " application_name=" + app_name;
    settings.display_name = "guard";
    EventLoop loop;
    Listener listener;
    Connection conn(loop, settings, listener);
    conn.connect();
    REQUIRE(run_until(
        loop, [&] { return listener.connected; }, 10s));
    RecordingWork opener, behind;
    const Step begin[] = {Step::command("begin", {}, 0), Step::sync()};
    const Step select[] = {Step::command("select 1", {}, 0), Step::sync()};
    conn.send(opener, begin);
    conn.send(behind, select);
    REQUIRE(run_until(
        loop, [&] { return listener.closed.has_value(); }, 10s));
    CHECK(opener.finished);  // its own answer came
    REQUIRE(behind.closed.has_value());
    CHECK(behind.closed->cause == CloseCause::reset);
    CHECK(behind.closed->culprit != &behind);  // not its fault: the scheduler re-sends it for free
    CHECK(listener.closed->why.find("transaction block was left open") != std::string::npos);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    CHECK(eventually(
        [&] {
            return primary.scalar("select count(*) from pg_stat_activity where application_name = '" + app_name +
                                  "'") == "0";
        },
        5s));
}

TEST_CASE("reset after a job: DISCARD ALL right behind it drops what the session kept, the cache re-prepares",
          "[pg][session][reset]") {
    // The mechanism behind changes_session (the classifier decides when): the
    // connection stays, its session is as new, and the statement cache, which
    // DISCARD ALL emptied on the server, starts again.
    const auto& env = ClusterEnv::get();
    ConnectionSettings settings;
    settings.conninfo = env.app_conninfo_via("eu-west-1", "us-east-1");
    settings.display_name = "reset";
    EventLoop loop;
    Listener listener;
    Connection conn(loop, settings, listener);
    conn.connect();
    REQUIRE(run_until(
        loop, [&] { return listener.connected; }, 10s));
    struct Rows final : Work {
        std::vector<std::string> values;
        bool finished = false;
        std::optional<CloseInfo> closed;
        void on_result(std::size_t, PgResultPtr r) override {
            if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) == 1)
                values.push_back(PQgetvalue(r.get(), 0, 0));
            if (PQresultStatus(r.get()) == PGRES_FATAL_ERROR)
                values.push_back(std::string("error ") + PQresultErrorField(r.get(), PG_DIAG_SQLSTATE));
        }
        void on_finished() override { finished = true; }
        void on_connection_closed(const CloseInfo& info) override { closed = info; }
    };
    const char* const state_sql =
        "select pg_backend_pid() || ' prepared=' || (select count(*) from pg_prepared_statements where from_sql) || "
        "' advisory=' || (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) || "
        "' tz=' || current_setting('TimeZone') || ' path=' || current_setting('search_path')";
    Rows before;
    const Step state[] = {Step::command(state_sql, {}, 0), Step::sync()};
    conn.send(before, state);
    REQUIRE(run_until(
        loop, [&] { return before.finished; }, 10s));
    REQUIRE(before.values.size() == 1);
    const std::string pid = before.values[0].substr(0, before.values[0].find(' '));

    Rows changer, after, cached;
    const Step change[] = {Step::command("prepare rgd_reset_p as select 1", {}, 0),
                           Step::command("select pg_advisory_lock(7171)::text", {}, 1),
                           Step::command("select set_config('search_path', 'pg_catalog', false)", {}, 2),
                           Step::command("select set_config('TimeZone', 'America/New_York', false)", {}, 3),
                           Step::sync()};
    conn.send(changer, change, /*reset_after=*/true);
    conn.send(after, state);  // pipelined behind the DISCARD ALL, same statement text (was cached)
    conn.send(cached, state);
    REQUIRE(run_until(
        loop, [&] { return changer.finished && after.finished && cached.finished; }, 10s));
    CHECK_FALSE(listener.closed.has_value());  // reset, not closed
    REQUIRE(after.values.size() == 1);
    CHECK(after.values[0] == before.values[0]);  // the same backend, as it was
    REQUIRE(cached.values.size() == 1);
    CHECK(cached.values[0] == before.values[0]);
    CHECK(after.values[0].rfind(pid + " ", 0) == 0);
    PgSession primary(env.superuser_conninfo("us-east-1"));
    CHECK(primary.scalar("select pg_try_advisory_lock(7171)") == "t");
    primary.exec("select pg_advisory_unlock_all()");
}

TEST_CASE("the connection string cannot change what the classifier assumes: UTF-8, standard strings",
          "[pg][session][encoding]") {
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    SECTION("client_encoding in the conninfo is overridden") {
        auto o = options("us-east-1", Role::primary,
                         env.app_conninfo_via("eu-west-1", "us-east-1") + " client_encoding=LATIN1",
                         link_display(env, "eu-west-1", "us-east-1"));
        o.pool_size = 1;
        auto ep = Endpoint::create(loop, o);
        ep->start();
        auto r = run_job(loop, *ep, read("select current_setting('client_encoding'), 'é'"));
        REQUIRE(r.outcome.ok);
        CHECK(cell(r.response, 0, 0) == "UTF8");
        CHECK(cell(r.response, 0, 1) == "\xc3\xa9");  // UTF-8 bytes of é, not LATIN1's 0xe9
    }
    SECTION("standard_conforming_strings off (options) makes the endpoint unusable, with the reason") {
        auto o = options("us-east-1", Role::primary,
                         env.app_conninfo_via("eu-west-1", "us-east-1") +
                             " options='-c standard_conforming_strings=off'",
                         link_display(env, "eu-west-1", "us-east-1"));
        o.pool_size = 1;
        auto ep = Endpoint::create(loop, o);
        ep->start();
        auto r = run_job(loop, *ep, read("select 1"));
        CHECK_FALSE(r.outcome.ok);
        CHECK_THAT(r.response.error, Catch::Contains("standard_conforming_strings is off"));
        REQUIRE(run_until(
            loop, [&] { return !ep->health().last_error.empty(); }, 10s));
        CHECK_FALSE(ep->health().healthy);
        CHECK_THAT(ep->health().last_error, Catch::Contains("standard_conforming_strings"));
    }
}

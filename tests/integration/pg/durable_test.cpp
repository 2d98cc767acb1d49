// The PostgreSQL side of cache invalidation against the local cluster: a
// write with keys writes its regiond.invalidations row in its own transaction
// (exactly one; none when the write fails; the write fails whole when the row
// cannot be written), keys of every awkward kind round trip, and the floor
// LSN of reads on a replica and on the primary against known write tokens.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "../cluster_env.hpp"
#include "../pg_session.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/pg/endpoint.hpp"
#include "durable_harness.hpp"
#include "endpoint_harness.hpp"

using namespace std::chrono_literals;
using regiond::daemon::EventLoop;
using regiond::daemon::pg::Job;
using regiond::testing::ClusterEnv;
using regiond::testing::eventually;
using regiond::testing::PgSession;

using namespace regiond::testing::pg;

namespace {

std::string insert_sql() {
    return std::string("insert into ") + kTable + " (v) values ($1)";
}

}  // namespace

TEST_CASE("a write with keys writes exactly one invalidation row, in its own transaction", "[pg][durable]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto primary = primary_from_eu(loop);
    Db db(env.superuser_conninfo("us-east-1"));

    const std::string origin = "eu-west-1/" + unique_value();
    const std::string v = unique_value();
    auto w = write_with_keys(loop, *primary, insert_sql(), {v}, {"user:1", "user:2"}, origin);
    REQUIRE(w.outcome.ok);
    CHECK(w.response.affected == 1);  // the invalidation row is not counted
    const auto rows = invalidation_rows(db, origin);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].keys == std::vector<std::string>{"user:1", "user:2"});
    // The same transaction: the row and the write's row were created by one xid.
    CHECK(db.scalar("select count(*) from regiond.invalidations i, " + std::string(kTable) +
                        " t where i.origin = $1 and t.v = $2 and i.xmin = t.xmin"
                        " and i.xid::text::bigint % 4294967296 = t.xmin::text::bigint",
                    {origin, v}) == "1");
    // Its token was read after the commit, as for any write: a replica that
    // has replayed up to it has the invalidation row.
    write_filler();  // so that replay can pass a token at a WAL page boundary
    wait_replay_at_least("eu-west-1", token_lsn(w.response));
    Db replica(env.superuser_conninfo("eu-west-1"));
    CHECK(invalidation_rows(replica, origin).size() == 1);

    // A write that fails writes none.
    const std::string failing_origin = "eu-west-1/" + unique_value();
    auto f = write_with_keys(loop, *primary, std::string("insert into ") + kTable + " (v) values (null)", {},
                             {"user:3"}, failing_origin);
    CHECK_FALSE(f.outcome.ok);
    CHECK(std::string(f.response.sqlstate) == "23502");  // the write's own error, not the insert's
    CHECK(invalidation_rows(db, failing_origin).empty());

    // A write without keys writes none (nothing with its origin, nothing at all for it).
    const std::string before = db.scalar("select count(*) from regiond.invalidations");
    auto plain = run_job(loop, *primary, write(insert_sql(), {unique_value()}));
    REQUIRE(plain.outcome.ok);
    CHECK(db.scalar("select count(*) from regiond.invalidations") == before);
}

TEST_CASE("a write whose invalidation row cannot be written commits nothing and says why", "[pg][durable]") {
    make_db_without_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto o = options("us-east-1", Role::primary, with_db(env.app_conninfo_via("eu-west-1", "us-east-1"), kNoTableDb),
                     link_display(env, "eu-west-1", "us-east-1"));
    auto primary = Endpoint::create(loop, o);
    primary->start();
    Db db(with_db(env.superuser_conninfo("us-east-1"), kNoTableDb));

    const std::string v = unique_value();
    auto w = write_with_keys(loop, *primary, "insert into t (v) values ($1)", {v}, {"k"}, "eu-west-1/test");
    CHECK_FALSE(w.outcome.ok);
    CHECK(std::string(w.response.sqlstate) == "42P01");
    const std::string error(w.response.error);
    INFO(error);
    CHECK(error.find("the write was rolled back") != std::string::npos);
    CHECK(error.find("regiond.invalidations") != std::string::npos);
    CHECK(error.find("scripts/schema.sql") != std::string::npos);
    CHECK(db.scalar("select count(*) from t where v = $1", {v}) == "0");

    // The same write without keys commits (the table is only needed for keys).
    auto ok = run_job(loop, *primary, write("insert into t (v) values ($1)", {v}));
    REQUIRE(ok.outcome.ok);
    CHECK(db.scalar("select count(*) from t where v = $1", {v}) == "1");
}

TEST_CASE("keys round trip byte for byte: quotes, backslashes, commas, braces, spaces, NULL, non-ASCII",
          "[pg][durable]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto primary = primary_from_eu(loop);
    Db db(env.superuser_conninfo("us-east-1"));
    const std::vector<std::string> keys = {
        "plain",
        R"(say "hi")",
        R"(back\slash)",
        R"(\)",
        R"(")",
        "a,b",
        "{braces}",
        "}{",
        " lead and trail ",
        "\ttab\nnewline",
        "NULL",
        "null",
        "",
        "'single'",
        "caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80",
        R"({"json": [1, "x"]})",
    };
    const std::string origin = "eu-west-1/" + unique_value();
    auto w = write_with_keys(loop, *primary, insert_sql(), {unique_value()}, keys, origin);
    REQUIRE(w.outcome.ok);
    const auto rows = invalidation_rows(db, origin);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].keys == keys);
    // Not one of them read as SQL NULL.
    CHECK(db.scalar("select count(*) from regiond.invalidations i, unnest(i.keys) k where i.origin = $1 and k is null",
                    {origin}) == "0");

    // A key PostgreSQL text cannot hold: refused, nothing sent, nothing written.
    const std::string bad_origin = "eu-west-1/" + unique_value();
    const std::string v = unique_value();
    auto bad = write_with_keys(loop, *primary, insert_sql(), {v}, {"ok", "\xff"}, bad_origin);
    CHECK_FALSE(bad.outcome.ok);
    CHECK(std::string(bad.response.sqlstate) == "22021");
    CHECK(invalidation_rows(db, bad_origin).empty());
    CHECK(db.scalar(std::string("select count(*) from ") + kTable + " where v = $1", {v}) == "0");
}

TEST_CASE("floor_lsn on a replica: the replay LSN before the read, against a write's token", "[pg][durable][floor]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto primary = primary_from_eu(loop);
    auto replica = local_replica(loop);
    PgSession replica_session(env.superuser_conninfo("eu-west-1"));
    const std::string select_v = std::string("select v from ") + kTable + " where v = $1";

    const std::string v = unique_value();
    auto w = run_job(loop, *primary, write(insert_sql(), {v}));
    REQUIRE(w.outcome.ok);
    const std::uint64_t token = token_lsn(w.response);
    write_filler();  // so that replay can pass a token at a page boundary
    wait_replay_at_least("eu-west-1", token);

    Job r = read(select_v, {v});
    r.want_floor = true;
    auto seen = run_job(loop, *replica, std::move(r));
    REQUIRE(seen.outcome.ok);
    REQUIRE(seen.response.nrows() == 1);     // it saw the write...
    CHECK(seen.outcome.floor_lsn >= token);  // ...and its floor says so
    CHECK(seen.outcome.floor_lsn <= seen.outcome.lsn);

    // Without want_floor (and without min_lsn) no floor.
    auto plain = run_job(loop, *replica, read(select_v, {v}));
    REQUIRE(plain.outcome.ok);
    CHECK(plain.outcome.floor_lsn == 0);

    // Replay paused behind a write: the read does not see it, its floor is below the token.
    {
        ReplayPauseGuard pause(replica_session);
        REQUIRE(eventually([&] { return replica_session.scalar("select pg_get_wal_replay_pause_state()") == "paused"; },
                           10s));
        const std::string v2 = unique_value();
        auto w2 = run_job(loop, *primary, write(insert_sql(), {v2}));
        REQUIRE(w2.outcome.ok);
        Job r2 = read(select_v, {v2});
        r2.want_floor = true;
        auto stale = run_job(loop, *replica, std::move(r2));
        REQUIRE(stale.outcome.ok);
        CHECK(stale.response.nrows() == 0);
        CHECK(stale.outcome.floor_lsn > 0);
        CHECK(stale.outcome.floor_lsn < token_lsn(w2.response));
    }

    // The floor is read BEFORE the read: a read whose snapshot was taken
    // before replay passed a write (it then waits on an advisory lock the
    // test holds on the replica while replay goes on) has a floor below the
    // write's token, though its own token, read after it, is past it.
    {
        PgSession locker(env.superuser_conninfo("eu-west-1"));
        const std::string lock_key = std::to_string(4243000 + getpid() % 1000);
        locker.exec("select pg_advisory_lock(" + lock_key + ")");
        const std::string v3 = unique_value();
        const std::string marker = "rgd_replica_floor_" + unique_value().substr(2);
        Job blocked = read("select /* " + marker + " */ pg_advisory_xact_lock_shared(" + lock_key +
                               ")::text, (select count(*) from " + kTable + " where v = $1)",
                           {v3});
        blocked.want_floor = true;
        std::optional<Outcome> got;
        replica->submit(std::move(blocked), [&](Outcome&& o) { got = std::move(o); });
        wait_active(loop, locker, marker);
        auto w3 = run_job(loop, *primary, write(insert_sql(), {v3}));
        REQUIRE(w3.outcome.ok);
        const std::uint64_t token3 = token_lsn(w3.response);
        write_filler();
        wait_replay_at_least("eu-west-1", token3);
        locker.exec("select pg_advisory_unlock(" + lock_key + ")");
        REQUIRE(run_until(
            loop, [&] { return got.has_value(); }, 15s));
        REQUIRE(got->ok);
        const auto br = decode(*got);
        REQUIRE(br.nrows() == 1);
        CHECK(cell(br, 0, 1) == "0");  // its snapshot predates the write
        CHECK(got->floor_lsn > 0);
        CHECK(got->floor_lsn < token3);
        CHECK(got->lsn >= token3);  // the token (read after the read) is past it
    }

    // min_lsn and want_floor together: the guard is the floor.
    Job guarded = read(select_v, {v});
    guarded.min_lsn = token;
    guarded.want_floor = true;
    auto g = run_job(loop, *replica, std::move(guarded));
    REQUIRE(g.outcome.ok);
    CHECK(g.outcome.floor_lsn >= token);
}

TEST_CASE("floor_lsn on the primary: the insert LSN before the read, minus one", "[pg][durable][floor]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto primary = primary_from_eu(loop);
    PgSession su(env.superuser_conninfo("us-east-1"));
    const std::string select_v = std::string("select v from ") + kTable + " where v = $1";

    // After the write (and WAL past its token): floor >= token, the row seen.
    const std::string v = unique_value();
    auto w = run_job(loop, *primary, write(insert_sql(), {v}));
    REQUIRE(w.outcome.ok);
    const std::uint64_t token = token_lsn(w.response);
    write_filler();
    Job r = read(select_v, {v});
    r.want_floor = true;
    auto after = run_job(loop, *primary, std::move(r));
    REQUIRE(after.outcome.ok);
    REQUIRE(after.response.nrows() == 1);
    CHECK(after.outcome.floor_lsn >= token);
    CHECK(after.outcome.floor_lsn < after.outcome.lsn);

    // A read that started before the write: its guard ran, then it waits on
    // an advisory lock the test holds (its snapshot is already taken) while
    // the write commits. It does not see the write, and its floor is below
    // the write's token.
    const std::string lock_key = std::to_string(4242000 + getpid() % 1000);
    su.exec("select pg_advisory_lock(" + lock_key + ")");
    const std::string v2 = unique_value();
    const std::string marker = "rgd_floor_marker_" + unique_value().substr(2);
    Job blocked = read("select /* " + marker + " */ pg_advisory_xact_lock_shared(" + lock_key +
                           ")::text, (select count(*) from " + kTable + " where v = $1)",
                       {v2});
    blocked.want_floor = true;
    std::optional<Outcome> got;
    primary->submit(std::move(blocked), [&](Outcome&& o) { got = std::move(o); });
    wait_active(loop, su, marker);
    auto w2 = run_job(loop, *primary, write(insert_sql(), {v2}));
    REQUIRE(w2.outcome.ok);
    const std::uint64_t token2 = token_lsn(w2.response);
    su.exec("select pg_advisory_unlock(" + lock_key + ")");
    REQUIRE(run_until(
        loop, [&] { return got.has_value(); }, 15s));
    REQUIRE(got->ok);
    const auto br = decode(*got);
    REQUIRE(br.nrows() == 1);
    CHECK(cell(br, 0, 1) == "0");  // the write is not in its snapshot
    CHECK(got->floor_lsn > 0);
    CHECK(got->floor_lsn < token2);

    // Without want_floor: none.
    auto plain = run_job(loop, *primary, read(select_v, {v}));
    REQUIRE(plain.outcome.ok);
    CHECK(plain.outcome.floor_lsn == 0);
}

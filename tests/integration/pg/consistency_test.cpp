// read_consistent's part in daemon/pg/ against the local cluster: the min_lsn
// guard on replica reads, the token of every read (replica, primary, batched),
// route_reason in the response head, and the fast LSN watch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
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
using regiond::daemon::pg::format_lsn;
using regiond::daemon::pg::Job;
using regiond::daemon::pg::JobCallbacks;
using regiond::daemon::pg::Outcome;
using regiond::daemon::pg::parse_lsn;
using regiond::shm::Response;
using regiond::testing::ClusterEnv;
using regiond::testing::eventually;
using regiond::testing::PgSession;

using namespace regiond::testing::pg;

namespace {

struct Token {
    std::string sysid;
    std::uint64_t lsn = 0;
};

// "SYSTEMID/LSN" -> its parts; fails the test on anything else.
Token parse_token(const std::string& token) {
    INFO("token '" << token << "'");
    const auto slash = token.find('/');
    REQUIRE(slash != std::string::npos);
    REQUIRE(slash > 0);
    Token t;
    t.sysid = token.substr(0, slash);
    REQUIRE(t.sysid.find_first_not_of("0123456789") == std::string::npos);
    const auto lsn = parse_lsn(token.substr(slash + 1));
    REQUIRE(lsn.has_value());
    t.lsn = *lsn;
    return t;
}

std::string primary_sysid() {
    PgSession primary(ClusterEnv::get().superuser_conninfo("us-east-1"));
    return primary.scalar("select system_identifier from pg_control_system()");
}

std::uint64_t replay_lsn_of(PgSession& replica) {
    const auto lsn = parse_lsn(replica.scalar("select pg_last_wal_replay_lsn()"));
    REQUIRE(lsn.has_value());
    return *lsn;
}

// A write through the primary endpoint; returns its value and token LSN.
std::pair<std::string, std::uint64_t> write_value(EventLoop& loop, Endpoint& primary) {
    const std::string v = unique_value();
    auto w = run_job(loop, primary, write(std::string("insert into ") + kTable + " (v) values ($1)", {v}));
    REQUIRE(w.outcome.ok);
    return {v, parse_token(w.response.token).lsn};
}

std::string select_value_sql() {
    return std::string("select v from ") + kTable + " where v = $1";
}

// A job run with a partial callback: the chunks it streamed, its end, and
// the whole answer decoded as a client would (streamed chunks first).
struct Streamed {
    int partials = 0;
    Outcome outcome;
    Response response;
};

Streamed run_streaming(EventLoop& loop, Endpoint& ep, Job job) {
    Streamed s;
    std::vector<std::vector<std::byte>> chunks;
    std::optional<Outcome> got;
    ep.submit(std::move(job), JobCallbacks{[&](std::vector<std::byte>&& chunk) {
                                               ++s.partials;
                                               chunks.push_back(std::move(chunk));
                                               return true;
                                           },
                                           [&](Outcome&& o) { got = std::move(o); }});
    REQUIRE(run_until(
        loop, [&] { return got.has_value(); }, 20s));
    s.outcome = std::move(*got);
    regiond::shm::ResponseDecoder dec;
    for (const auto& c : chunks) REQUIRE(dec.feed(c) == regiond::shm::CodecError::ok);
    for (const auto& c : s.outcome.chunks) REQUIRE(dec.feed(c) == regiond::shm::CodecError::ok);
    REQUIRE(dec.complete());
    s.response = dec.take();
    return s;
}

}  // namespace

TEST_CASE("min_lsn: met, the rows; above the replica's replay LSN, behind and not a row", "[pg][consistency]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto primary = primary_from_eu(loop);
    auto replica = local_replica(loop);
    PgSession replica_session(env.superuser_conninfo("eu-west-1"));

    // Met: the replay LSN now is what the replica has reached.
    auto [v0, w0] = write_value(loop, *primary);
    REQUIRE(eventually([&] { return replay_lsn_of(replica_session) >= w0; }, 30s));
    Job met = read(select_value_sql(), {v0});
    met.min_lsn = w0;
    auto r = run_job(loop, *replica, std::move(met));
    REQUIRE(r.outcome.ok);
    CHECK_FALSE(r.outcome.behind);
    REQUIRE(r.response.nrows() == 1);
    CHECK(cell(r.response, 0, 0) == v0);
    CHECK(parse_token(r.response.token).lsn >= w0);

    {
        ReplayPauseGuard pause(replica_session);
        REQUIRE(eventually([&] { return replica_session.scalar("select pg_get_wal_replay_pause_state()") == "paused"; },
                           10s));
        const std::uint64_t at = replay_lsn_of(replica_session);
        auto [v1, w1] = write_value(loop, *primary);
        REQUIRE(w1 > at);

        // Behind: no row streamed, the error names both positions.
        Job behind = read(select_value_sql(), {v1});
        behind.min_lsn = w1;
        auto b = run_streaming(loop, *replica, std::move(behind));
        CHECK(b.partials == 0);
        CHECK_FALSE(b.outcome.ok);
        CHECK(b.outcome.behind);
        CHECK_FALSE(b.outcome.retry_elsewhere);
        const Response& br = b.response;
        CHECK(br.status == regiond::shm::Status::error);
        CHECK(std::string(br.sqlstate).empty());
        CHECK(br.error == "replica at " + format_lsn(at) + " is behind token " + format_lsn(w1));
        CHECK(br.nrows() == 0);

        // A large read behind: not a row leaves (it is stopped on the server).
        Job large = read("select g, repeat('x', 100) from generate_series(1, 200000) g");
        large.min_lsn = w1;
        auto l = run_streaming(loop, *replica, std::move(large));
        CHECK(l.partials == 0);
        CHECK(l.outcome.behind);
        CHECK(l.response.nrows() == 0);

        // Without min_lsn the same replica answers (and does not have the row).
        auto plain = run_job(loop, *replica, read(select_value_sql(), {v1}));
        REQUIRE(plain.outcome.ok);
        CHECK(plain.response.nrows() == 0);
        CHECK(parse_token(plain.response.token).lsn < w1);

        // On the primary min_lsn is ignored.
        Job on_primary = read(select_value_sql(), {v1});
        on_primary.min_lsn = w1 + (1ull << 40);
        auto p = run_job(loop, *primary, std::move(on_primary));
        REQUIRE(p.outcome.ok);
        CHECK(p.response.nrows() == 1);
    }
    // Replay resumed: the guarded read gets its row.
    auto [v2, w2] = write_value(loop, *primary);
    REQUIRE(eventually([&] { return replay_lsn_of(replica_session) >= w2; }, 30s));
    Job after = read(select_value_sql(), {v2});
    after.min_lsn = w2;
    auto a = run_job(loop, *replica, std::move(after));
    REQUIRE(a.outcome.ok);
    REQUIRE(a.response.nrows() == 1);
    CHECK(replica->in_flight() == 0);
}

TEST_CASE("a replica read's token: at or past a write it shows, below one it cannot show yet", "[pg][consistency]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    const std::string sysid = primary_sysid();
    EventLoop loop;
    auto primary = primary_from_eu(loop);
    auto replica = local_replica(loop);
    PgSession replica_session(env.superuser_conninfo("eu-west-1"));

    auto [v, w] = write_value(loop, *primary);
    REQUIRE(eventually([&] { return replay_lsn_of(replica_session) >= w; }, 30s));
    auto r = run_job(loop, *replica, read(select_value_sql(), {v}));
    REQUIRE(r.outcome.ok);
    REQUIRE(r.response.nrows() == 1);
    const Token t = parse_token(r.response.token);
    CHECK(t.sysid == sysid);  // a replica's system identifier is the primary's
    CHECK(t.lsn >= w);
    CHECK(r.outcome.lsn == t.lsn);

    // Paused behind a write: the read does not show it, and its token says so.
    ReplayPauseGuard pause(replica_session);
    REQUIRE(
        eventually([&] { return replica_session.scalar("select pg_get_wal_replay_pause_state()") == "paused"; }, 10s));
    auto [v1, w1] = write_value(loop, *primary);
    auto stale = run_job(loop, *replica, read(select_value_sql(), {v1}));
    REQUIRE(stale.outcome.ok);
    CHECK(stale.response.nrows() == 0);
    CHECK(parse_token(stale.response.token).lsn < w1);
}

TEST_CASE("a primary read's token is at or past the writes it shows", "[pg][consistency]") {
    ensure_table();
    const std::string sysid = primary_sysid();
    EventLoop loop;
    auto primary = primary_from_eu(loop);
    auto [v, w] = write_value(loop, *primary);
    auto r = run_job(loop, *primary, read(select_value_sql(), {v}));
    REQUIRE(r.outcome.ok);
    REQUIRE(r.response.nrows() == 1);
    const Token t = parse_token(r.response.token);
    CHECK(t.sysid == sysid);
    CHECK(t.lsn >= w);
    CHECK(r.outcome.lsn == t.lsn);
    CHECK(r.response.affected == -1);
    // Still read-only: the LSN step did not open a way around it.
    auto refused = run_job(loop, *primary, read(std::string("insert into ") + kTable + " (v) values ('x')"));
    CHECK_FALSE(refused.outcome.ok);
}

TEST_CASE("batched replica reads each carry the batch's token", "[pg][consistency][batch]") {
    const auto& env = ClusterEnv::get();
    const std::string sysid = primary_sysid();
    EventLoop loop;
    auto replica = local_replica(loop, 1);
    REQUIRE(run_job(loop, *replica, read("select 0")).outcome.ok);
    PgSession replica_session(env.superuser_conninfo("eu-west-1"));
    const std::uint64_t before = replay_lsn_of(replica_session);
    const int n = 16;
    std::vector<std::optional<Outcome>> got(n);
    for (int i = 0; i < n; ++i) {
        replica->submit(read("select $1::int", {std::to_string(i)}), [&got, i](Outcome&& o) { got[i] = std::move(o); });
    }
    REQUIRE(run_until(
        loop, [&] { return std::all_of(got.begin(), got.end(), [](auto& g) { return g.has_value(); }); }, 20s));
    for (int i = 0; i < n; ++i) {
        INFO("read " << i);
        REQUIRE(got[i]->ok);
        const Response r = decode(*got[i]);
        REQUIRE(r.nrows() == 1);
        CHECK(cell(r, 0, 0) == std::to_string(i));
        const Token t = parse_token(r.token);
        CHECK(t.sysid == sysid);
        CHECK(t.lsn >= before);
    }
}

TEST_CASE("route_reason arrives in the response head, for answers and errors", "[pg][consistency]") {
    EventLoop loop;
    auto replica = local_replica(loop);
    const std::string why = "local replica at 0/1 >= token 0/1 (test)";
    auto with_reason = [&](Job j) {
        j.route_reason = why;
        return j;
    };
    auto ok = run_job(loop, *replica, with_reason(read("select 1")));
    REQUIRE(ok.outcome.ok);
    CHECK(ok.response.route_reason == why);

    auto sql_error = run_job(loop, *replica, with_reason(read("select 1 from rgd_no_such_table")));
    CHECK_FALSE(sql_error.outcome.ok);
    CHECK(sql_error.response.route_reason == why);

    auto refused = run_job(loop, *replica, with_reason(read("begin")));
    CHECK_FALSE(refused.outcome.ok);
    CHECK(refused.response.route_reason == why);

    // Streamed: the head leaves first and carries it; a token trailer follows.
    Streamed big = run_streaming(loop, *replica, with_reason(read("select g from generate_series(1, 100000) g")));
    REQUIRE(big.outcome.ok);
    CHECK(big.partials > 0);
    CHECK(big.response.nrows() == 100000);
    CHECK(big.response.route_reason == why);
    CHECK_FALSE(big.response.token.empty());

    // Behind (the guard's answer) too.
    Job guarded = with_reason(read("select 1"));
    guarded.min_lsn = ~std::uint64_t{0} >> 1;
    auto behind = run_job(loop, *replica, std::move(guarded));
    CHECK(behind.outcome.behind);
    CHECK(behind.response.route_reason == why);

    // A write (on the primary) and its errors too.
    auto primary = primary_from_eu(loop);
    auto w = run_job(loop, *primary, with_reason(write("select 1")));
    REQUIRE(w.outcome.ok);
    CHECK(w.response.route_reason == why);
}

TEST_CASE("the fast LSN watch: a callback per poll while replay advances, health not republished per poll",
          "[pg][consistency][watch]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    EventLoop loop;
    auto o = options("eu-west-1", regiond::daemon::pg::Role::replica, env.app_conninfo_via("eu-west-1", "eu-west-1"),
                     link_display(env, "eu-west-1", "eu-west-1"));
    o.check_interval = 2000ms;  // normal polling: once per 2 s (no lag tracker)
    auto replica = Endpoint::create(loop, o);
    std::uint64_t calls = 0;
    std::uint64_t seen = 0;
    int health_calls = 0;
    replica->on_replay_lsn([&](std::uint64_t lsn) {
        ++calls;
        seen = std::max(seen, lsn);
    });
    replica->on_health_change([&] { ++health_calls; });
    replica->start();
    REQUIRE(run_until(
        loop, [&] { return replica->health().healthy && calls > 0; }, 10s));

    replica->set_lsn_watch(true);
    const auto t0 = Clock::now();
    const std::uint64_t calls0 = calls;
    const int health0 = health_calls;
    PgSession primary(env.superuser_conninfo("us-east-1"));
    for (int i = 0; i < 3; ++i) {
        primary.exec(std::string("insert into ") + kTable + " (v) values ('" + unique_value() + "')");
        const auto w = parse_lsn(primary.scalar("select pg_current_wal_insert_lsn()"));
        REQUIRE(w.has_value());
        // Normal polling would need ~2 s per answer; the deadline is no speed
        // requirement, it bounds a hang.
        REQUIRE(run_until(
            loop, [&] { return seen >= *w; }, 10s));
    }
    REQUIRE(run_until(
        loop, [&] { return calls - calls0 >= 100; }, 20s));
    CHECK(replica->health().replay_rate > 0);
    const double elapsed_checks =
        std::chrono::duration<double>(Clock::now() - t0) / std::chrono::duration<double>(o.check_interval);
    INFO((calls - calls0) << " polls, " << (health_calls - health0) << " health callbacks over " << elapsed_checks
                          << " check intervals");
    // At most a check and one period-bound notification per check interval.
    CHECK(health_calls - health0 <= 2 + 2 * static_cast<int>(elapsed_checks + 1));
    replica->set_lsn_watch(false);
}

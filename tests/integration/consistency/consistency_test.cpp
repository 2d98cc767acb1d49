// read_consistent end to end (issue 8): real regiond daemons on two emulated
// hosts (eu-west-1 and ap-northeast-1, each on a copy of the cluster's config
// with its own sockets and state segment), real client processes (forked
// libregiond children, regionctl), the cluster's servers and WAN links
// (scripts/cluster.sh up --profile fast). Every value is checked by value;
// where an answer went is checked from served_by and route_reason only where
// that proves the path. Waits are polls with deadlines.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <regiond/client.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "../cluster_env.hpp"
#include "../isolation/clients.hpp"
#include "hosts.hpp"
#include "sessions.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
using namespace regiond::testing::consistency;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kEu = "eu-west-1";
const std::string kAp = "ap-northeast-1";
// The primary's link from the eu-west-1 host. The eu-west-1 replica also
// streams through it (scripts/cluster.sh), so cutting it stops both.
const std::string kEuToPrimary = "eu-west-1>us-east-1:pg";

// Write/read pairs per run, and the children they are spread over: the pairs
// are latency-bound (a write pays the 20 ms round trip to the primary of the
// fast profile), so 8 concurrent clients make 2,000 pairs take ~6 s on 2 cores.
constexpr long kPairs = 2000;
constexpr int kPairChildren = 8;

std::string unique_key(const std::string& what) {
    return what + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(Clock::now().time_since_epoch().count() % 1000000000);
}

Tally collect(isolation::Children& children, std::chrono::milliseconds timeout) {
    Tally all;
    for (const std::string& line : children.collect(timeout)) {
        INFO("a child's report: " << line);
        REQUIRE_NOTHROW(all += Tally::parse(line));
    }
    return all;
}

Tally run_pairs(const Host& writer, const Host& reader, long pairs, int children_n) {
    const std::string base = unique_key("pair");
    isolation::Children children(children_n, [&](int i) {
        const long mine = pairs / children_n + (i < pairs % children_n ? 1 : 0);
        return write_read_pairs(writer.socket(), reader.socket(), reader.region(), base + "-" + std::to_string(i), mine,
                                nullptr)
            .line();
    });
    return collect(children, 120s);
}

void report(const std::string& what, const Tally& t, Clock::time_point started) {
    std::printf("[consistency] %s (%.1f s): %s\n", what.c_str(),
                std::chrono::duration<double>(Clock::now() - started).count(), t.summary().c_str());
    std::fflush(stdout);
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

// A value written through `host` and its token.
struct Written {
    std::string key, value, token;
};
Written write_value(const Host& host, const std::string& key, const std::string& value) {
    const Answer w = host.write(
        std::string("insert into ") + kTable + " (k, v) values ($1, $2) on conflict (k) do update set v = excluded.v",
        {key, value});
    INFO(w.describe());
    REQUIRE(w.status == 0);
    REQUIRE_FALSE(w.token.empty());
    return {key, value, w.token};
}

std::string select_v() {
    return std::string("select v from ") + kTable + " where k = $1";
}

}  // namespace

// Test names keep any ": " near their start: Catch2 2.13's console reporter
// indents a wrapped name to its first ": " and aborts when that is past the
// line width (seen with a failing test: the report became a SIGABRT).
TEST_CASE(
    "read-your-writes: 2,000 write -> read_consistent pairs from eu-west-1, and 2,000 with the token carried "
    "to ap-northeast-1, every value read back",
    "[consistency][ryw]") {
    ensure_table();
    const Host eu(kEu);
    const Host ap(kAp);

    auto t0 = Clock::now();
    const Tally local = run_pairs(eu, eu, kPairs, kPairChildren);
    report("pairs eu-west-1 -> eu-west-1", local, t0);
    INFO(local.summary());
    CHECK(local.pairs == kPairs);
    CHECK(local.stale == 0);
    CHECK(local.errors == 0);
    CHECK(local.token_behind == 0);
    // The local replica gets the write about when the write's answer gets to
    // the host: most reads are local, at once or after a short wait.
    CHECK(local.local + local.waited > 0);
    if (local.local > 0)
        CHECK_THAT(local.local_reason,
                   Catch::StartsWith(kEu + "/replica: local replica at") && Catch::Contains(">= token"));
    if (local.waited > 0) CHECK_THAT(local.waited_reason, Catch::StartsWith(kEu + "/replica: waited"));

    t0 = Clock::now();
    const Tally carried = run_pairs(eu, ap, kPairs, kPairChildren);
    report("pairs eu-west-1 -> ap-northeast-1", carried, t0);
    INFO(carried.summary());
    CHECK(carried.pairs == kPairs);
    CHECK(carried.stale == 0);
    CHECK(carried.errors == 0);
    CHECK(carried.token_behind == 0);
    // Tokyo's replica gets the write 7.5 ms after the token reaches Tokyo (the
    // replica streams over the 17.5 ms link, the token comes 10 + 0.5 ms): that
    // is sooner than its 35 ms round trip to the primary, so it waits.
    CHECK(carried.waited > 0);
    CHECK_THAT(carried.waited_reason, Catch::StartsWith(kAp + "/replica: waited"));
}

TEST_CASE("replay paused in eu-west-1: every read_consistent from the primary; after resume, local again",
          "[consistency][paused]") {
    ensure_table();
    const Host eu(kEu);
    const auto t0 = Clock::now();
    {
        ReplayPause pause(kEu);
        const Tally paused = run_pairs(eu, eu, 200, 4);
        report("pairs eu-west-1 with its replica paused", paused, t0);
        INFO(paused.summary());
        CHECK(paused.pairs == 200);
        CHECK(paused.stale == 0);
        CHECK(paused.errors == 0);
        CHECK(paused.primary == paused.pairs);
        CHECK_THAT(paused.primary_reason, Catch::StartsWith("us-east-1/primary: local replica at") &&
                                              Catch::Contains("< token") && Catch::EndsWith("; primary"));
        pause.resume();
    }
    // Resumed: the replica catches up and answers fresh tokens again.
    Answer last;
    const bool local_again = eventually(
        [&] {
            const Written w = write_value(eu, unique_key("resumed"), "1");
            last = eu.read_consistent(w.token, select_v(), {w.key});
            REQUIRE(last.status == 0);
            REQUIRE(last.first() == "1");
            return last.served_by == kEu + "/replica";
        },
        20s);
    INFO(last.describe());
    CHECK(local_again);
    CHECK((starts_with(last.route_reason, "local replica at") || starts_with(last.route_reason, "waited")));
    const Tally after = run_pairs(eu, eu, 200, 4);
    report("pairs eu-west-1 after resume", after, t0);
    INFO(after.summary());
    CHECK(after.stale == 0);
    CHECK(after.errors == 0);
    CHECK(after.local + after.waited > 0);
}

TEST_CASE(
    "the primary's link cut: a token the local replica has is served locally; one it has not is a clear "
    "error within the request's deadline",
    "[consistency][cut]") {
    ensure_table();
    const auto& env = ClusterEnv::get();
    const Host eu(kEu);

    const Written reached = write_value(eu, unique_key("reached"), "41");
    wait_replayed(kEu, token_lsn(reached.token));
    eu.wait_replay_known(kEu, token_lsn(reached.token));

    // Neither replica may replay the next write: nobody but the (cut off)
    // primary can answer its token.
    ReplayPause pause_eu(kEu);
    ReplayPause pause_ap(kAp);
    const Written beyond = write_value(eu, unique_key("beyond"), "42");

    LinkCut cut(env, kEuToPrimary);
    std::string primary_state;
    const bool primary_down = eventually(
        [&] {
            const Json p = eu.endpoint("us-east-1", "primary");
            primary_state = p["last_error"].str();
            return !p["healthy"].boolean();
        },
        20s);
    INFO("primary's last error: " << primary_state);
    REQUIRE(primary_down);

    const Answer local = eu.read_consistent(reached.token, select_v(), {reached.key});
    INFO(local.describe());
    CHECK(local.status == 0);
    CHECK(local.first() == "41");
    CHECK(local.served_by == kEu + "/replica");
    CHECK_THAT(local.route_reason, Catch::StartsWith("local replica at") && Catch::Contains(">= token"));

    constexpr unsigned kTimeoutMs = 1000;
    const std::vector<std::string> lines = isolation::run_children(
        1, [&](int) { return one_read_consistent(eu.socket(), beyond.token, select_v(), beyond.key, kTimeoutMs); },
        30s);
    const OneRead r = OneRead::parse(lines.at(0));
    std::printf("[consistency] token beyond every reachable endpoint: error after %.0f ms: %s\n", r.ms,
                r.error.c_str());
    INFO("after " << r.ms << " ms: " << r.error << " (served_by " << r.served_by << ", value " << r.value << ")");
    CHECK_FALSE(r.ok);
    CHECK(r.value == "<no row>");
    // Within the request's deadline: the timeout plus what a busy 2-core
    // machine may add to hand the answer back (not a performance figure).
    CHECK(r.ms < kTimeoutMs + 1000);
    // The daemon's answer, which says why, not only the client's own timer
    // ("timed out after 1000 ms" says nothing about the token).
    CHECK_THAT(r.error, Catch::Contains("token " + format_lsn(token_lsn(beyond.token))) &&
                            Catch::Contains("primary unreachable"));
}

TEST_CASE("tokens from another cluster and malformed tokens are clear errors", "[consistency][tokens]") {
    ensure_table();
    const Host eu(kEu);
    const Written w = write_value(eu, unique_key("tokens"), "7");
    const std::string sysid = w.token.substr(0, w.token.find('/'));
    const std::string lsn = w.token.substr(w.token.find('/') + 1);
    // Another cluster: the same LSN under a different system identifier.
    const std::string other = std::to_string(std::stoull(sysid) ^ 1) + "/" + lsn;

    const auto foreign = OneRead::parse(isolation::run_children(1, [&](int) {
                                            return one_read_consistent(eu.socket(), other, select_v(), w.key, 5000);
                                        }).at(0));
    INFO("foreign token: " << foreign.error);
    CHECK_FALSE(foreign.ok);
    CHECK_THAT(foreign.error, Catch::Contains("another cluster") && Catch::Contains(sysid));
    CHECK(rgd_token_cmp(w.token.c_str(), other.c_str()) == -2);

    for (const std::string& bad :
         {std::string("garbage"), sysid, sysid + "/", sysid + "/0/", "/" + lsn, sysid + "/0/XYZ", sysid + "/0/1/2",
          sysid + "/" + lsn + " ", "-" + sysid + "/" + lsn, "99999999999999999999999/" + lsn, sysid + "/1/",
          std::string(300, '7') + "/0/1", sysid + "/0x1/0"}) {
        const auto r = OneRead::parse(isolation::run_children(1, [&](int) {
                                          return one_read_consistent(eu.socket(), bad, select_v(), w.key, 5000);
                                      }).at(0));
        INFO("token '" << bad << "': " << (r.ok ? "ok, served by " + r.served_by : r.error));
        CHECK_FALSE(r.ok);
        CHECK_THAT(r.error, Catch::Contains("token"));
        CHECK(r.self_cmp == -2);
    }

    // regionctl says so too, on stderr, exit 1.
    const Answer cli = eu.read_consistent("not-a-token", select_v(), {w.key});
    INFO(cli.error);
    CHECK(cli.status == 1);
    CHECK_THAT(cli.error, Catch::Contains("token"));
    const Answer cli_foreign = eu.read_consistent(other, select_v(), {w.key});
    INFO(cli_foreign.error);
    CHECK(cli_foreign.status == 1);
    CHECK_THAT(cli_foreign.error, Catch::Contains("another cluster"));

    // An empty token waits for nothing: read_local.
    const Answer empty = eu.read_consistent("", select_v(), {w.key});
    INFO(empty.describe());
    CHECK(empty.status == 0);
    CHECK(empty.served_by == kEu + "/replica");
}

TEST_CASE(
    "replica restart: the local replica comes back behind where it was while reads with fresh tokens go "
    "on, and no answer is stale",
    "[consistency][restart]") {
    ensure_table();
    const Host eu(kEu);
    const auto t0 = Clock::now();
    // Set before the restart, in effect after it: the replica comes back with
    // the last 3 s of commits not replayed (its replay LSN goes back), while
    // the daemon still holds the replay LSN it polled before the restart.
    ApplyDelay delay(kEu, "3s");
    SharedBlock shared;
    isolation::Children children(4, [&](int i) {
        return write_read_pairs(eu.socket(), eu.socket(), kEu, unique_key("restart") + "-" + std::to_string(i), -1,
                                shared.get())
            .line();
    });
    struct Stop {
        Shared* s;
        ~Stop() { s->stop.store(1); }
    } stop_on_exit{shared.get()};

    REQUIRE(eventually([&] { return shared->local.load() >= 50; }, 20s));
    const std::uint64_t before = replica_replay_lsn(kEu);
    const long pairs_before = shared->pairs.load();
    const isolation::Command restart = restart_replica(kEu);
    INFO("pg_ctl restart: " << restart.out << restart.err);
    REQUIRE(restart.status == 0);
    const std::uint64_t came_back = replica_replay_lsn(kEu);
    std::printf("[consistency] eu-west-1 replica restarted: replay LSN %s before, %s when it accepted connections\n",
                format_lsn(before).c_str(), format_lsn(came_back).c_str());
    std::fflush(stdout);
    // The precondition that makes this test worth running.
    CHECK(came_back < before);
    wait_streaming(kEu);
    // Pairs go on against the replica that is behind; then it catches up and
    // answers locally again.
    REQUIRE(eventually([&] { return shared->pairs.load() >= pairs_before + 100; }, 30s));
    delay.reset();
    const long local_before = shared->local.load();
    const bool local_again = eventually([&] { return shared->local.load() >= local_before + 50; }, 30s);
    shared->stop.store(1);
    const Tally t = collect(children, 60s);
    report("pairs eu-west-1 across a restart of its replica", t, t0);
    INFO(t.summary());
    CHECK(local_again);
    CHECK(t.stale == 0);
    CHECK(t.token_behind == 0);
    CHECK(t.errors == 0);
}

TEST_CASE(
    "replica restart: tokens it had replayed before, read again after it came back behind them, are never "
    "answered from behind",
    "[consistency][restart][guard]") {
    ensure_table();
    // The daemon learns the replica's replay LSN from its polls only (nothing
    // is written while the old tokens are read, so nobody waits and there is
    // no fast watch): after the restart it holds the LSN it polled before,
    // which the replica is now behind, until it polls again; a slower poll
    // widens that window. Reads planned in it are stopped by the min_lsn guard
    // (route_reason "local replica was behind the token when the read ran")
    // or by the endpoint re-probing the replica before it reuses it; with the
    // guard dropped from the plan this test still passed in 5 runs here, so it
    // proves "no stale answer", not that the guard alone provides it.
    const Host eu(kEu, {{"poll_interval", "\"1s\""}});
    const auto t0 = Clock::now();
    ApplyDelay delay(kEu, "3s");
    SharedBlock shared;
    constexpr int kChildren = 4;
    isolation::Children children(kChildren, [&](int i) {
        return old_token_reads(eu.socket(), kEu, unique_key("old-token") + "-" + std::to_string(i), shared.get())
            .line();
    });
    struct Stop {
        Shared* s;
        ~Stop() { s->stop.store(1); }
    } stop_on_exit{shared.get()};

    // Tokens to read again: 50 writes per child (about a second, within the
    // 3 s apply delay, so the replica comes back behind most of them).
    REQUIRE(eventually([&] { return shared->writes.load() >= 50 * kChildren; }, 30s));
    shared->replay_old.store(1);
    REQUIRE(eventually([&] { return shared->replaying.load() == kChildren; }, 10s));
    // The old tokens are all local now.
    REQUIRE(eventually([&] { return shared->local.load() >= 100; }, 10s));

    // A commit replayed moments before the restart, so the replica comes back
    // behind it whatever the machine's load did to the children's pace (the
    // apply delay only takes effect at the restart: until then it replays at
    // once; after it, commits younger than 3 s wait).
    const Answer fresh = eu.write(std::string("insert into ") + kTable +
                                  " (k, v) values ($1, 1) on conflict (k) do update set v = excluded.v + 1",
                                  {unique_key("restart-marker")});
    INFO(fresh.describe());
    REQUIRE(fresh.status == 0);
    wait_replayed(kEu, token_lsn(fresh.token));
    const std::uint64_t before = replica_replay_lsn(kEu);
    const isolation::Command restart = restart_replica(kEu);
    INFO("pg_ctl restart: " << restart.out << restart.err);
    REQUIRE(restart.status == 0);
    const std::uint64_t came_back = replica_replay_lsn(kEu);
    std::printf("[consistency] eu-west-1 replica restarted under old tokens: replay LSN %s before, %s after\n",
                format_lsn(before).c_str(), format_lsn(came_back).c_str());
    std::fflush(stdout);
    CHECK(came_back < before);
    // Reads go on against the replica that is behind, then it catches up.
    const long after_restart = shared->pairs.load();
    REQUIRE(eventually([&] { return shared->pairs.load() >= after_restart + 200; }, 30s));
    delay.reset();
    const long local_before = shared->local.load();
    const bool local_again = eventually([&] { return shared->local.load() >= local_before + 100; }, 30s);
    shared->stop.store(1);
    const Tally t = collect(children, 60s);
    report("old-token reads across a restart of the replica", t, t0);
    INFO(t.summary());
    CHECK(local_again);
    CHECK(t.stale == 0);
    CHECK(t.errors == 0);
    // Some reads found the replica behind at query time and went on.
    CHECK(eu.counter("consistent_reads_to_primary") + eu.counter("consistent_reads_waited") > 0);
}

TEST_CASE("idle primary: every replica shows lag 0, and read_consistent with an old token is local",
          "[consistency][idle]") {
    ensure_table();
    const Host eu(kEu);
    const Host ap(kAp);
    const Written old = write_value(eu, unique_key("old"), "5");
    // Nothing writes now: both daemons see both replicas caught up.
    for (const Host* h : {&eu, &ap}) {
        for (const std::string& region : {kEu, kAp}) {
            std::string last;
            const bool zero = eventually(
                [&] {
                    const Json e = h->endpoint(region, "replica");
                    last = "lag_ms " + std::to_string(e["lag_ms"].num()) + ", lag_bytes " +
                           std::to_string(e["lag_bytes"].num()) + ", replay_lsn " + e["replay_lsn"].str();
                    return e["lag_ms"].num() == 0 && e["lag_bytes"].num() == 0;
                },
                15s);
            INFO(h->region() << "'s view of the " << region << " replica: " << last);
            CHECK(zero);
        }
    }
    for (const Host* h : {&eu, &ap}) {
        h->wait_replay_known(h->region(), token_lsn(old.token));
        const Answer a = h->read_consistent(old.token, select_v(), {old.key});
        INFO(h->region() << ": " << a.describe());
        CHECK(a.status == 0);
        CHECK(a.first() == "5");
        CHECK(a.served_by == h->region() + "/replica");
        CHECK_THAT(a.route_reason, Catch::StartsWith("local replica at") && Catch::Contains(">= token"));
    }
}

TEST_CASE(
    "monotonic reads: a value read from the primary is never followed by an older one on a replica paused "
    "behind it",
    "[consistency][monotonic]") {
    ensure_table();
    const Host eu(kEu);
    const Host ap(kAp);
    const Written first = write_value(eu, unique_key("mono"), "1");
    wait_replayed(kAp, token_lsn(first.token));

    ReplayPause pause(kAp);
    const Answer w = eu.write(std::string("update ") + kTable + " set v = 2 where k = $1", {first.key});
    REQUIRE(w.status == 0);
    const Answer seen = eu.query({"--primary", select_v(), first.key});
    INFO("read_primary: " << seen.describe());
    REQUIRE(seen.first() == "2");
    REQUIRE_FALSE(seen.token.empty());
    CHECK(token_lsn(seen.token) >= token_lsn(w.token));

    // The precondition: Tokyo's replica still has the older value.
    const Answer behind = ap.query({select_v(), first.key});
    INFO("read_local in Tokyo: " << behind.describe());
    REQUIRE(behind.first() == "1");

    const Answer next = ap.read_consistent(seen.token, select_v(), {first.key});
    INFO("read_consistent in Tokyo with the primary read's token: " << next.describe());
    CHECK(next.status == 0);
    CHECK(next.first() == "2");
    CHECK(next.served_by != kAp + "/replica");
    CHECK_THAT(next.route_reason, Catch::Contains("< token"));
}

TEST_CASE(
    "monotonic reads: 1,000 interleaved reads from two regions with the session's newest token never go "
    "back in time",
    "[consistency][monotonic]") {
    ensure_table();
    const Host eu(kEu);
    const Host ap(kAp);
    const std::string key = unique_key("version");
    write_value(eu, key, "0");
    const auto t0 = Clock::now();

    SharedBlock shared;
    struct Stop {
        Shared* s;
        ~Stop() { s->stop.store(1); }
    } stop_on_exit{shared.get()};
    isolation::Children writer(1, [&](int) { return version_writer(eu.socket(), key, shared.get()).line(); });
    REQUIRE(eventually([&] { return shared->writes.load() >= 10; }, 20s));

    // Four sessions of 250 reads: two start in Ireland, two in Tokyo.
    constexpr long kReads = 250;
    isolation::Children sessions(4, [&](int i) {
        const Host& a = i % 2 == 0 ? eu : ap;
        const Host& b = i % 2 == 0 ? ap : eu;
        return monotonic_session(a.socket(), a.region(), b.socket(), b.region(), key, kReads, shared.get()).line();
    });
    const Tally reads = collect(sessions, 120s);
    shared->stop.store(1);
    const Tally writes = collect(writer, 30s);
    report("interleaved session reads", reads, t0);
    std::printf("[consistency] the writer made %ld increments\n", shared->writes.load());
    INFO(reads.summary());
    INFO("writer: " << writes.summary());
    CHECK(reads.pairs == 4 * kReads);
    CHECK(reads.stale == 0);
    CHECK(reads.errors == 0);
    CHECK(reads.token_behind == 0);
    CHECK(writes.errors == 0);
    CHECK(reads.local + reads.waited > 0);
}

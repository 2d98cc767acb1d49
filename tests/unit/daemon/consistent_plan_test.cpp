// Where a read_consistent goes (daemon/consistent_plan.hpp): pure, no servers.
#include <catch2/catch.hpp>

#include "daemon/consistent_plan.hpp"

using namespace regiond::daemon;
using regiond::daemon::pg::Role;
using namespace std::chrono_literals;

namespace {

EndpointState endpoint(std::string region, Role role, std::uint32_t rtt_us, std::uint64_t replay_lsn, double rate = 0,
                       std::uint64_t lag_ms = 0) {
    EndpointState e;
    e.region = std::move(region);
    e.name = e.region + "-host:5432";
    e.role = role;
    e.healthy = true;
    e.checked = true;
    e.rtt_us = rtt_us;
    e.replay_lsn = replay_lsn;
    e.replay_rate = rate;
    e.lag_ms = lag_ms;
    e.system_identifier = 42;
    return e;
}

// From eu-west-1: 0 primary (us-east-1, 200 ms), 1 local replica, 2 Tokyo replica (220 ms).
std::vector<EndpointState> cluster(std::uint64_t local_lsn, std::uint64_t tokyo_lsn, double local_rate = 0) {
    return {endpoint("us-east-1", Role::primary, 200'000, 0),
            endpoint("eu-west-1", Role::replica, 500, local_lsn, local_rate),
            endpoint("ap-northeast-1", Role::replica, 220'000, tokyo_lsn)};
}

const RoutingSettings eu{"eu-west-1", 5s};

ConsistentQuery query(std::uint64_t token, std::chrono::nanoseconds wait = 50ms,
                      std::chrono::nanoseconds deadline = 30s) {
    ConsistentQuery q;
    q.token_lsn = token;
    q.wait_budget = wait;
    q.deadline_budget = deadline;
    q.fresh_sample = true;  // judged by a sample taken after the request (see the recheck test)
    return q;
}

}  // namespace

TEST_CASE("the local replica at or past the token reads at once, guarded by the token", "[consistent]") {
    const auto endpoints = cluster(0x5A3F10, 0);
    const auto d = plan_consistent_read(endpoints, eu, query(0x59F000));
    REQUIRE(d.action == ConsistentAction::read);
    CHECK(d.endpoint == 1);
    CHECK(d.min_lsn == 0x59F000);
    CHECK(d.kind == ConsistentKind::local);
    CHECK(d.reason == "local replica at 0/5A3F10 >= token 0/59F000");
    // Exactly at the token is enough.
    CHECK(plan_consistent_read(endpoints, eu, query(0x5A3F10)).endpoint == 1);
}

TEST_CASE("behind the token but expected soon: wait for the local replica", "[consistent]") {
    SECTION("by its replay rate") {
        const auto endpoints = cluster(1'000'000, 0, 10'000'000.0);            // 10 MB/s
        const auto d = plan_consistent_read(endpoints, eu, query(1'100'000));  // 100 kB: 10 ms
        REQUIRE(d.action == ConsistentAction::wait);
        CHECK(d.endpoint == 1);
        CHECK(d.wait_for == 50ms);
    }
    SECTION("rate unknown, caught up with the primary's last position: expected within a poll") {
        const auto d = plan_consistent_read(cluster(1000, 0), eu, query(2000));
        CHECK(d.action == ConsistentAction::wait);
    }
}

TEST_CASE("predicted catch-up beyond max_wait: the primary, saying why", "[consistent]") {
    const auto endpoints = cluster(0, 0, 1'000'000.0);                  // 1 MB/s
    const auto d = plan_consistent_read(endpoints, eu, query(80'000));  // 80 ms
    REQUIRE(d.action == ConsistentAction::read);
    CHECK(d.endpoint == 0);
    CHECK(d.min_lsn == 0);
    CHECK(d.kind == ConsistentKind::primary);
    CHECK(d.reason == "local replica at 0/0 < token 0/13880, predicted catch-up 80ms > max_wait; primary");
}

TEST_CASE("after a wait that ran out: the primary, with how long it waited", "[consistent]") {
    ConsistentQuery q = query(2000, 0ms);
    q.has_waited = true;
    q.waited = 50ms;
    const auto d = plan_consistent_read(cluster(1000, 0), eu, q);
    REQUIRE(d.action == ConsistentAction::read);
    CHECK(d.endpoint == 0);
    CHECK(d.reason == "local replica at 0/3E8 < token 0/7D0 after waiting 50ms; primary");
}

TEST_CASE("released after a wait: the reason says how long", "[consistent]") {
    ConsistentQuery q = query(2000);
    q.has_waited = true;
    q.waited = 12ms;
    const auto d = plan_consistent_read(cluster(2500, 0), eu, q);
    REQUIRE(d.action == ConsistentAction::read);
    CHECK(d.kind == ConsistentKind::local_after_wait);
    CHECK(d.reason == "waited 12ms for the local replica (at 0/9C4 >= token 0/7D0)");
}

TEST_CASE("the local replica down: a replica elsewhere that has the token, if nearer than the primary",
          "[consistent]") {
    auto endpoints = cluster(5000, 5000);
    endpoints[1].healthy = false;
    SECTION("Tokyo is farther than the primary: the primary") {
        const auto d = plan_consistent_read(endpoints, eu, query(4000));
        CHECK(d.endpoint == 0);
        CHECK(d.reason == "local replica unreachable; primary");
    }
    SECTION("Tokyo nearer than the primary and at the token: Tokyo, guarded") {
        endpoints[2].rtt_us = 100'000;
        const auto d = plan_consistent_read(endpoints, eu, query(4000));
        REQUIRE(d.action == ConsistentAction::read);
        CHECK(d.endpoint == 2);
        CHECK(d.min_lsn == 4000);
        CHECK(d.kind == ConsistentKind::elsewhere);
        CHECK(d.reason == "local replica unreachable; ap-northeast-1 replica at 0/1388 >= token 0/FA0 (rtt 100ms)");
    }
    SECTION("Tokyo nearer but behind the token: the primary") {
        endpoints[2].rtt_us = 100'000;
        endpoints[2].replay_lsn = 100;
        CHECK(plan_consistent_read(endpoints, eu, query(4000)).endpoint == 0);
    }
}

TEST_CASE("a replica lagging past max_lag is passed over even when at the token", "[consistent]") {
    auto endpoints = cluster(5000, 0);
    endpoints[1].lag_ms = 7200;
    const auto d = plan_consistent_read(endpoints, eu, query(4000));
    CHECK(d.endpoint == 0);
    CHECK(d.reason == "local replica lag 7.2s > max_lag 5s; primary");
}

TEST_CASE("the primary down: the local replica is waited for up to the deadline, then an error", "[consistent]") {
    auto endpoints = cluster(1000, 0, 1'000'000.0);
    endpoints[0].healthy = false;
    const auto wait = plan_consistent_read(endpoints, eu, query(3000, 50ms, 10s));
    REQUIRE(wait.action == ConsistentAction::wait);
    CHECK(wait.wait_for == 10s);
    ConsistentQuery over = query(3000, 0ms, 0ms);
    over.has_waited = true;
    over.waited = 10s;
    const auto fail = plan_consistent_read(endpoints, eu, over);
    REQUIRE(fail.action == ConsistentAction::fail);
    CHECK(fail.error ==
          "no endpoint has reached token 0/BB8 (local replica at 0/3E8 < token 0/BB8 after waiting 10s; primary "
          "unreachable)");
    // A token the replica has: still served locally.
    CHECK(plan_consistent_read(endpoints, eu, query(1000)).endpoint == 1);
}

TEST_CASE("in the primary's region the primary is local", "[consistent]") {
    const RoutingSettings us{"us-east-1", 5s};
    const auto d = plan_consistent_read(cluster(0, 0), us, query(4000));
    REQUIRE(d.action == ConsistentAction::read);
    CHECK(d.endpoint == 0);
    CHECK(d.kind == ConsistentKind::local);
    CHECK(d.reason == "local primary");
}

TEST_CASE("an endpoint excluded after it answered behind the token is not chosen again", "[consistent]") {
    const auto endpoints = cluster(5000, 0);
    const std::vector<std::size_t> tried{1};
    const auto d = plan_consistent_read(endpoints, eu, query(4000, 0ms), tried);
    CHECK(d.endpoint == 0);
    CHECK(d.reason == "local replica was behind the token when the read ran; primary");
}

TEST_CASE("a replica that is behind the primary and not replaying is not waited for", "[consistent]") {
    // Replay paused (or stuck): no rate, and the primary's position is known to
    // be past it. Waiting would cost max_wait and end at the primary anyway.
    auto endpoints = cluster(1000, 0);
    endpoints[1].lag_bytes = 5000;
    const auto d = plan_consistent_read(endpoints, eu, query(2000));
    REQUIRE(d.action == ConsistentAction::read);
    CHECK(d.endpoint == 0);
    CHECK(d.reason == "local replica at 0/3E8 < token 0/7D0, not replaying (5000 bytes behind the primary); primary");
    // Replaying (a rate), the same distance is worth a wait.
    endpoints[1].replay_rate = 10'000'000.0;
    CHECK(plan_consistent_read(endpoints, eu, query(2000)).action == ConsistentAction::wait);
}

TEST_CASE("a replay LSN polled before the request came is looked at again before giving up on the replica",
          "[consistent]") {
    // The last poll says behind (and even predicts a long catch-up), but it is
    // older than the request: one more poll first.
    auto endpoints = cluster(0, 0, 1'000'000.0);
    ConsistentQuery q = query(80'000);
    q.fresh_sample = false;
    const auto d = plan_consistent_read(endpoints, eu, q);
    REQUIRE(d.action == ConsistentAction::wait);
    CHECK(d.recheck);
    CHECK(d.endpoint == 1);
    CHECK(d.reason == "local replica at 0/0 < token 0/13880 when last polled: looking again");
    // Judged by a fresh sample, the same numbers go to the primary.
    q.fresh_sample = true;
    CHECK(plan_consistent_read(endpoints, eu, q).endpoint == 0);
    // A replica that is not replaying is not looked at again.
    endpoints[1].replay_rate = 0;
    endpoints[1].lag_bytes = 5000;
    q.fresh_sample = false;
    CHECK(plan_consistent_read(endpoints, eu, q).endpoint == 0);
}

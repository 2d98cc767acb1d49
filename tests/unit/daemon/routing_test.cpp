// Routing decisions (daemon/routing.hpp): pure, no servers.
#include <catch2/catch.hpp>

#include "daemon/routing.hpp"

using namespace regiond::daemon;
using regiond::daemon::pg::Role;
using namespace std::chrono_literals;

namespace {

EndpointState endpoint(std::string region, Role role, bool healthy, std::uint32_t rtt_us, std::uint64_t lag_ms = 0,
                       std::string name = "") {
    EndpointState e;
    e.region = std::move(region);
    e.name = name.empty() ? e.region + "-host:5432" : std::move(name);
    e.role = role;
    e.healthy = healthy;
    e.checked = true;
    e.rtt_us = rtt_us;
    e.lag_ms = lag_ms;
    return e;
}

// The three-region cluster as seen from eu-west-1: index 0 primary (us-east-1),
// 1 the local replica, 2 the Tokyo replica.
std::vector<EndpointState> cluster(bool primary_up, bool local_up, bool tokyo_up, std::uint64_t local_lag = 0) {
    return {endpoint("us-east-1", Role::primary, primary_up, 200'000),
            endpoint("eu-west-1", Role::replica, local_up, 500, local_lag),
            endpoint("ap-northeast-1", Role::replica, tokyo_up, 220'000)};
}

const RoutingSettings eu{"eu-west-1", 5s};

}  // namespace

TEST_CASE("read_local goes to the healthy local replica first", "[routing]") {
    const auto endpoints = cluster(true, true, true);
    const Route route = plan_route(RouteKind::read_local, endpoints, eu);
    REQUIRE(route.ok());
    CHECK(route.candidates.front() == 1);
    // Then the other region's replica, the primary last.
    CHECK(route.candidates == std::vector<std::size_t>{1, 2, 0});
}

TEST_CASE("read_local with the local replica down goes to the nearest by RTT, the primary last", "[routing]") {
    auto endpoints = cluster(true, false, true);
    Route route = plan_route(RouteKind::read_local, endpoints, eu);
    CHECK(route.candidates == std::vector<std::size_t>{2, 0});

    // The primary is last even when it is nearer than the other replica.
    endpoints[2].rtt_us = 300'000;
    route = plan_route(RouteKind::read_local, endpoints, eu);
    CHECK(route.candidates == std::vector<std::size_t>{2, 0});
}

TEST_CASE("several local replicas are ordered by RTT", "[routing]") {
    std::vector<EndpointState> endpoints = {
        endpoint("us-east-1", Role::primary, true, 200'000),
        endpoint("eu-west-1", Role::replica, true, 900, 0, "a:5432"),
        endpoint("eu-west-1", Role::replica, true, 300, 0, "b:5432"),
    };
    const Route route = plan_route(RouteKind::read_local, endpoints, eu);
    CHECK(route.candidates == std::vector<std::size_t>{2, 1, 0});
}

TEST_CASE("a replica lagging past max_lag gets no reads", "[routing]") {
    auto endpoints = cluster(true, true, true, 7200);
    Route route = plan_route(RouteKind::read_local, endpoints, eu);
    CHECK(route.candidates == std::vector<std::size_t>{2, 0});

    // Exactly max_lag is still acceptable.
    endpoints[1].lag_ms = 5000;
    route = plan_route(RouteKind::read_local, endpoints, eu);
    CHECK(route.candidates.front() == 1);
}

TEST_CASE("nothing qualifies: the error names every reason", "[routing]") {
    SECTION("the API.md example: lagging replica, unreachable primary") {
        const std::vector<EndpointState> endpoints = {endpoint("us-east-1", Role::primary, false, 0),
                                                      endpoint("eu-west-1", Role::replica, true, 500, 7200)};
        const Route route = plan_route(RouteKind::read_local, endpoints, eu);
        REQUIRE_FALSE(route.ok());
        CHECK(route.error ==
              "no healthy endpoint for reads in eu-west-1 (replica lag 7.2s > max_lag 5s; primary unreachable)");
    }
    SECTION("all three down") {
        const auto endpoints = cluster(false, false, false);
        const Route route = plan_route(RouteKind::read_local, endpoints, eu);
        REQUIRE_FALSE(route.ok());
        CHECK(route.error ==
              "no healthy endpoint for reads in eu-west-1 (replica unreachable; "
              "ap-northeast-1 replica unreachable; primary unreachable)");
    }
    SECTION("endpoints not probed yet say so") {
        auto endpoints = cluster(false, false, false);
        for (auto& e : endpoints) e.checked = false;
        const Route route = plan_route(RouteKind::read_local, endpoints, eu);
        CHECK_THAT(route.error, Catch::Contains("replica not checked yet"));
        CHECK(route.awaiting_verdict);  // worth waiting for the first probe
    }
    SECTION("a verdict of down everywhere is final: nothing to wait for") {
        const auto endpoints = cluster(false, false, false);
        CHECK_FALSE(plan_route(RouteKind::read_local, endpoints, eu).awaiting_verdict);
        CHECK_FALSE(plan_route(RouteKind::write, endpoints, eu).awaiting_verdict);
    }
    SECTION("one endpoint without a verdict is enough to wait") {
        auto endpoints = cluster(false, false, false);
        endpoints[2].checked = false;
        CHECK(plan_route(RouteKind::read_local, endpoints, eu).awaiting_verdict);
        CHECK_FALSE(plan_route(RouteKind::write, endpoints, eu).awaiting_verdict);  // the primary is decided
        endpoints[0].checked = false;
        CHECK(plan_route(RouteKind::write, endpoints, eu).awaiting_verdict);
        CHECK(plan_route(RouteKind::read_primary, endpoints, eu).awaiting_verdict);
    }
}

TEST_CASE("us-east-1: a local read goes to the local primary", "[routing]") {
    const RoutingSettings us{"us-east-1", 5s};
    const auto endpoints = cluster(true, true, true);
    const Route route = plan_route(RouteKind::read_local, endpoints, us);
    REQUIRE(route.ok());
    CHECK(route.candidates == std::vector<std::size_t>{0, 1, 2});
}

TEST_CASE("us-east-1 with the primary down reads from the nearest replica", "[routing]") {
    const RoutingSettings us{"us-east-1", 5s};
    const auto endpoints = cluster(false, true, true);
    const Route route = plan_route(RouteKind::read_local, endpoints, us);
    CHECK(route.candidates == std::vector<std::size_t>{1, 2});
}

TEST_CASE("writes and read_primary go to the primary only", "[routing]") {
    auto endpoints = cluster(true, true, true);
    CHECK(plan_route(RouteKind::write, endpoints, eu).candidates == std::vector<std::size_t>{0});
    CHECK(plan_route(RouteKind::read_primary, endpoints, eu).candidates == std::vector<std::size_t>{0});

    endpoints[0].healthy = false;
    const Route write = plan_route(RouteKind::write, endpoints, eu);
    REQUIRE_FALSE(write.ok());
    CHECK(write.error == "no healthy primary for writes (primary us-east-1 us-east-1-host:5432 unreachable)");
    const Route read = plan_route(RouteKind::read_primary, endpoints, eu);
    CHECK_THAT(read.error, Catch::StartsWith("no healthy primary for read_primary"));
}

TEST_CASE("a retry excludes the endpoints already tried", "[routing]") {
    const auto endpoints = cluster(true, true, true);
    const std::vector<std::size_t> tried{1};
    const Route route = plan_route(RouteKind::read_local, endpoints, eu, tried);
    CHECK(route.candidates == std::vector<std::size_t>{2, 0});
}

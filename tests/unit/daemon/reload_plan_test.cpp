// SIGHUP: what is applied live and what needs a restart (daemon/reload_plan.hpp).
#include <catch2/catch.hpp>

#include "daemon/reload_plan.hpp"

using namespace regiond::daemon;
using namespace std::chrono_literals;

namespace {

regiond::config::Config base_config() {
    regiond::config::Config c;
    c.daemon.region = "eu-west-1";
    regiond::config::Region us;
    us.name = "us-east-1";
    us.primary = "host=10.0.0.1 password=secret";
    us.redis = "redis://10.0.0.2:6379";
    regiond::config::Region eu;
    eu.name = "eu-west-1";
    eu.replicas = {"host=10.1.0.1"};
    eu.redis = "redis://10.1.0.2:6379";
    c.regions = {us, eu};
    return c;
}

}  // namespace

TEST_CASE("no change, nothing to do", "[reload]") {
    const ReloadPlan plan = plan_reload(base_config(), base_config());
    CHECK(plan.applied.empty());
    CHECK(plan.need_restart.empty());
}

TEST_CASE("thresholds, timeouts and health parameters apply live", "[reload]") {
    auto next = base_config();
    next.lag.max_lag = 10s;
    next.lag.alert_after = 3s;
    next.daemon.request_timeout = 5s;
    next.daemon.allowed_uids = {1000};
    next.health.check_interval = 1s;
    const ReloadPlan plan = plan_reload(base_config(), next);
    CHECK(plan.applied == std::vector<std::string>{"daemon.allowed_uids", "daemon.request_timeout", "lag.max_lag",
                                                   "lag.alert_after", "health.check_interval"});
    CHECK(plan.need_restart.empty());
    CHECK(plan.effective.lag.max_lag == 10s);
    CHECK(plan.effective.health.check_interval == 1s);
    CHECK(plan.notes.empty());  // health.* applies to every endpoint now
}

TEST_CASE("the resource bounds apply live", "[reload]") {
    auto next = base_config();
    next.daemon.max_in_flight_per_client = 8;
    next.daemon.max_result = 1u << 20;
    next.daemon.max_backlog = 2u << 20;
    next.daemon.max_request_timeout = 10s;
    next.daemon.max_request = 64u << 10;
    const ReloadPlan plan = plan_reload(base_config(), next);
    CHECK(plan.applied == std::vector<std::string>{"daemon.max_request", "daemon.max_in_flight_per_client",
                                                   "daemon.max_result", "daemon.max_backlog",
                                                   "daemon.max_request_timeout"});
    CHECK(plan.need_restart.empty());
    CHECK(plan.effective.daemon.max_in_flight_per_client == 8);
    CHECK(plan.effective.daemon.max_result == 1u << 20);
    CHECK(plan.effective.daemon.max_backlog == 2u << 20);
    CHECK(plan.effective.daemon.max_request_timeout == 10s);
}

TEST_CASE("names, sizes and the region list need a restart and keep their running values", "[reload]") {
    auto next = base_config();
    next.daemon.socket = "/run/other.sock";
    next.daemon.ring_size = 4u << 20;
    next.cache.memory = 1u << 20;
    next.lag.poll_interval = 1s;
    next.regions[0].primary = "host=10.9.9.9 password=other";
    next.regions[1].pool_size = 3;
    const ReloadPlan plan = plan_reload(base_config(), next);
    CHECK(plan.applied.empty());
    CHECK(plan.need_restart == std::vector<std::string>{"daemon.socket", "daemon.ring_size", "cache.memory",
                                                        "lag.poll_interval", "regions[0].primary",
                                                        "regions[1].pool_size"});
    CHECK(plan.effective.daemon.socket == base_config().daemon.socket);
    CHECK(plan.effective.regions[0].primary == base_config().regions[0].primary);
    // Keys only: never a conninfo value.
    for (const auto& key : plan.need_restart) CHECK(key.find("secret") == std::string::npos);

    auto fewer = base_config();
    fewer.regions.pop_back();
    CHECK(plan_reload(base_config(), fewer).need_restart == std::vector<std::string>{"regions"});
}

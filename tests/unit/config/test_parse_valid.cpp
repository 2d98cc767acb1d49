#include <catch2/catch.hpp>

#include <grp.h>

#include "config/parse.hpp"
#include "test_support.hpp"

using namespace regiond::config;
using namespace std::chrono_literals;
using test::parse;

namespace {

const Config& require_config(const ParseOutcome& outcome) {
    INFO(test::all_messages(outcome));
    REQUIRE(outcome.errors.empty());
    REQUIRE(outcome.config.has_value());
    return *outcome.config;
}

constexpr std::string_view full_config = R"(# every key, none at its default
[daemon]
region = "eu-west-1"
socket = "/run/regiond-eu/regiond.sock"
admin_socket = "/run/regiond-eu/admin.sock"
state_segment = "/regiond-eu"
client_group = "root"
allowed_uids = [1000, 1001]
max_clients = 1024
max_request = "1MiB"
request_timeout = "10s"
drain_timeout = "0s"
ring_size = "4MiB"
max_in_flight_per_client = 32
max_result = "64MiB"
max_backlog = "1GiB"
max_request_timeout = "1m"

[cache]
memory = "256MiB"
default_ttl = "5m"

[consistency]
max_wait = "0s"

[lag]
poll_interval = "250ms"
max_lag = "2.5s"
alert_after = "1m"

[health]
down_after = 5
up_after = 1
connect_timeout = "1500ms"
check_interval = "1s"

[[regions]]
name = "us-east-1"
primary = "host=10.0.0.1 port=5432 dbname=app user=app"
replicas = ["host=10.0.0.3 port=5432 dbname=app user=app"]
redis = "redis://:pw@10.0.0.2:6379/2"
pool_size = 50

[[regions]]
name = "eu-west-1"
replicas = ["host=10.1.0.1 dbname=app", "postgresql://app@10.1.0.2/app"]
redis = "unix:///run/redis/eu.sock"
)";

}  // namespace

TEST_CASE("a full configuration parses into the right values", "[config][parse]") {
    const ParseOutcome outcome = parse(full_config);
    const Config& config = require_config(outcome);

    CHECK(config.source_path == "test.toml");
    const DaemonSection& daemon = config.daemon;
    CHECK(daemon.region == "eu-west-1");
    CHECK(daemon.socket == "/run/regiond-eu/regiond.sock");
    CHECK(daemon.admin_socket == "/run/regiond-eu/admin.sock");
    CHECK(daemon.state_segment == "/regiond-eu");
    CHECK(daemon.client_group == "root");
    CHECK(daemon.client_gid == 0);
    CHECK(daemon.allowed_uids == std::vector<uid_t>{1000, 1001});
    CHECK(daemon.max_clients == 1024);
    CHECK(daemon.max_request == 1 * MiB);
    CHECK(daemon.request_timeout == 10s);
    CHECK(daemon.drain_timeout == 0s);
    CHECK(daemon.ring_size == 4 * MiB);
    CHECK(daemon.max_in_flight_per_client == 32);
    CHECK(daemon.max_result == 64 * MiB);
    CHECK(daemon.max_backlog == 1 * GiB);
    CHECK(daemon.max_request_timeout == 1min);

    CHECK(config.cache.memory == 256 * MiB);
    CHECK(config.cache.default_ttl == 5min);
    CHECK(config.consistency.max_wait == 0s);
    CHECK(config.lag.poll_interval == 250ms);
    CHECK(config.lag.max_lag == 2500ms);
    CHECK(config.lag.alert_after == 1min);
    CHECK(config.health.down_after == 5);
    CHECK(config.health.up_after == 1);
    CHECK(config.health.connect_timeout == 1500ms);
    CHECK(config.health.check_interval == 1s);

    REQUIRE(config.regions.size() == 2);
    const Region& us = config.regions[0];
    CHECK(us.name == "us-east-1");
    CHECK(us.primary == "host=10.0.0.1 port=5432 dbname=app user=app");
    CHECK(us.replicas == std::vector<std::string>{"host=10.0.0.3 port=5432 dbname=app user=app"});
    CHECK(us.redis == "redis://:pw@10.0.0.2:6379/2");
    CHECK(us.pool_size == 50);
    const Region& eu = config.regions[1];
    CHECK(eu.name == "eu-west-1");
    CHECK_FALSE(eu.primary.has_value());
    CHECK(eu.replicas.size() == 2);
    CHECK(eu.redis == "unix:///run/redis/eu.sock");
    CHECK(eu.pool_size == 20);

    CHECK(&config.local_region() == &eu);
    CHECK(&config.primary_region() == &us);
    CHECK(config.find_region("nowhere") == nullptr);
}

TEST_CASE("omitted keys take the documented defaults", "[config][parse]") {
    const ParseOutcome outcome = parse(test::minimal_config);
    const Config& config = require_config(outcome);

    CHECK(config.daemon.socket == "/run/regiond/regiond.sock");
    CHECK(config.daemon.admin_socket == "/run/regiond/admin.sock");
    CHECK(config.daemon.state_segment == "/regiond");
    CHECK(config.daemon.allowed_uids.empty());
    CHECK(config.daemon.max_clients == 256);
    CHECK(config.daemon.max_request == 256 * KiB);
    CHECK(config.daemon.request_timeout == 30s);
    CHECK(config.daemon.drain_timeout == 10s);
    CHECK(config.daemon.ring_size == 1 * MiB);
    CHECK(config.daemon.max_in_flight_per_client == 256);
    CHECK(config.daemon.max_result == 256 * MiB);
    CHECK(config.daemon.max_backlog == 256 * MiB);
    CHECK(config.daemon.max_request_timeout == 5min);
    CHECK(config.cache.memory == 64 * MiB);
    CHECK(config.cache.default_ttl == 60s);
    CHECK(config.consistency.max_wait == 50ms);
    CHECK(config.lag.poll_interval == 100ms);
    CHECK(config.lag.max_lag == 5s);
    CHECK(config.lag.alert_after == 5s);
    CHECK(config.health.down_after == 3);
    CHECK(config.health.up_after == 2);
    CHECK(config.health.connect_timeout == 2s);
    CHECK(config.health.check_interval == 500ms);
    REQUIRE(config.regions.size() == 1);
    CHECK(config.regions[0].replicas.empty());
    CHECK(config.regions[0].pool_size == 20);
    CHECK(&config.local_region() == &config.primary_region());
}

TEST_CASE("the default client_group is \"regiond\"", "[config][parse]") {
    // Without client_group the parser looks up "regiond"; whether that passes
    // depends on the host, so only the default itself is checked here.
    CHECK(DaemonSection{}.client_group == "regiond");
    const ParseOutcome outcome = parse(R"([daemon]
region = "us"
[[regions]]
name = "us"
primary = "host=db1"
redis = "redis://h:6379"
)");
    if (::getgrnam("regiond") != nullptr) {
        CHECK(outcome.ok());
    } else {
        REQUIRE(outcome.errors.size() == 1);
        CHECK(outcome.errors[0].key == "daemon.client_group");
        CHECK(outcome.errors[0].line == 1);  // at the [daemon] table, where the key belongs
    }
}

TEST_CASE("inline tables and dotted keys are the same TOML", "[config][parse]") {
    const ParseOutcome outcome = parse(R"(daemon = { region = "us", client_group = "root" }
lag.max_lag = "1s"
regions = [
  { name = "us", primary = "host=db1", redis = "redis://h:6379", pool_size = 3 },
]
)");
    const Config& config = require_config(outcome);
    CHECK(config.lag.max_lag == 1s);
    CHECK(config.regions.at(0).pool_size == 3);
}

TEST_CASE("a valid file parses from disk and names its path", "[config][parse]") {
    const test::TempDir dir;
    const std::string path = dir.write("regiond.toml", test::minimal_config);
    const ParseOutcome outcome = parse_config_file(path);
    const Config& config = require_config(outcome);
    CHECK(config.source_path == path);
}

TEST_CASE("the example configuration is valid", "[config][parse][example]") {
    const std::string path = test::required_env("REGIOND_EXAMPLE_CONFIG");
    const ParseOutcome outcome = parse_config_file(path);
    INFO(test::all_messages(outcome));
    // The example uses client_group "regiond"; on a host without that group it
    // is the only thing allowed to fail.
    for (const Diagnostic& diagnostic : outcome.errors) CHECK(diagnostic.key == "daemon.client_group");
    if (::getgrnam("regiond") != nullptr) CHECK(outcome.ok());
}

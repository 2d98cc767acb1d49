// Formatting of `status`, `status json` and `metrics` (daemon/status_report.hpp).
#include <catch2/catch.hpp>

#include <map>
#include <sstream>

#include "daemon/status_report.hpp"

using namespace regiond::daemon;
using namespace std::chrono_literals;

namespace {

StatusSnapshot sample() {
    StatusSnapshot s;
    s.region = "eu-west-1";
    s.pid = 4242;
    s.generation = 77;
    s.state_segment = "/regiond.0a1b2c3d";
    s.uptime_s = 3725;
    s.waiting = WaitingReport{2, 1, 1, 3, 1234, 1, 4, 1, false};
    s.hot_cache.capacity = 64 << 20;
    s.hot_cache.bytes_used = 1024;
    s.hot_cache.entries = 3;
    s.hot_cache.vouched = true;
    s.hot_cache.fences = 2;
    s.clients = 3;
    s.in_flight = 12;
    s.orphaned = 2;
    s.backlog_bytes = 3 << 20;
    s.alert_after = 5s;
    s.max_lag = 5s;
    EndpointReport primary;
    primary.region = "us-east-1";
    primary.endpoint = "10.0.0.1:5432";
    primary.role = pg::Role::primary;
    primary.healthy = true;
    primary.rtt_us = 200'123;
    primary.replay_lsn = 0x16B3748;
    primary.pool_in_use = 1;
    primary.pool_size = 20;
    primary.cache_healthy = true;
    EndpointReport replica;
    replica.region = "eu-west-1";
    replica.endpoint = "10.1.0.1:5432";
    replica.role = pg::Role::replica;
    replica.healthy = true;
    replica.lag_ms = 7200;
    replica.lag_bytes = 123456;
    replica.rtt_us = 450;
    replica.replay_lsn = (std::uint64_t{0x16} << 32) | 0xB374D848;
    replica.pool_size = 20;
    replica.cache_healthy = false;
    replica.alert = true;
    replica.last_error = "a \"quoted\"\nproblem";
    s.endpoints = {primary, replica};
    s.caches = {{"us-east-1", true, 300, ""}, {"eu-west-1", false, 0, "connection refused"}};
    s.counters = {{"requests_read_local", 10},
                  {"requests_write", 2},
                  {"errors", 1},
                  {"clients_connected", 5},
                  {"clients_dropped", 1}};
    return s;
}

}  // namespace

TEST_CASE("status text: header, table and alerts", "[status]") {
    const std::string text = format_status_text(sample());
    CHECK_THAT(text,
               Catch::StartsWith("region eu-west-1  pid 4242  uptime 1h2m5s  generation 77  clients 3  in flight 12  "
                                 "orphaned 2  backlog 3 MiB\n"
                                 "state segment /regiond.0a1b2c3d\n\n"));
    CHECK_THAT(text, Catch::Contains("REGION     ENDPOINT       ROLE     HEALTHY  LAG_MS  LAG_BYTES  REPLAY_LSN   "
                                     "RTT_MS   POOL  CACHE  ALERT\n"));
    CHECK_THAT(text, Catch::Contains("us-east-1  10.0.0.1:5432  primary  yes      -       -          -            "
                                     "200.123  1/20  up     -\n"));
    CHECK_THAT(text, Catch::Contains("eu-west-1  10.1.0.1:5432  replica  yes      7200    123456     16/B374D848  "
                                     "0.450    0/20  down   LAG\n"));
    CHECK_THAT(text,
               Catch::Contains("alerts:\n  eu-west-1 replica 10.1.0.1:5432: replication lag 7.2s > alert_after 5s\n"));
    CHECK_THAT(text, Catch::Contains("  eu-west-1 redis: down (connection refused)\n"));
}

TEST_CASE("status text: the hot cache's use, and why it is not in use", "[status]") {
    StatusSnapshot s = sample();
    CHECK_THAT(format_status_text(s), Catch::Contains("\nhot cache 1 KiB of 64 MiB used, 3 entries; "));
    CHECK_THAT(format_status_text(s), Catch::Contains("hot cache vouched for\n"));
    s.hot_cache.vouched = false;
    s.hot_cache.not_vouched = "subscription to eu-west-1's Redis lost: connection refused";
    CHECK_THAT(
        format_status_text(s),
        Catch::Contains("hot cache NOT vouched for: subscription to eu-west-1's Redis lost: connection refused\n"));
    CHECK_THAT(format_status_text(s),
               Catch::Contains("  hot cache not in use: subscription to eu-west-1's Redis lost: connection refused\n"));
}

TEST_CASE("status text without problems says so", "[status]") {
    StatusSnapshot s = sample();
    s.endpoints.pop_back();
    s.caches.pop_back();
    CHECK_THAT(format_status_text(s), Catch::EndsWith("\nalerts: none\n"));
}

TEST_CASE("status json has the documented keys and escapes strings", "[status]") {
    const std::string json = format_status_json(sample());
    CHECK_THAT(json, Catch::StartsWith("{\"region\":\"eu-west-1\",\"pid\":4242,\"generation\":77,\"uptime_s\":3725,"
                                       "\"clients\":3,\"in_flight\":12,\"orphaned\":2,\"backlog_bytes\":3145728,"
                                       "\"draining\":false,\"endpoints\":[{"));
    CHECK_THAT(json, Catch::Contains("{\"region\":\"eu-west-1\",\"endpoint\":\"10.1.0.1:5432\",\"role\":\"replica\","
                                     "\"healthy\":true,\"lag_ms\":7200,\"lag_bytes\":123456,\"rtt_ms\":0.450,"
                                     "\"replay_lsn\":\"16/B374D848\",\"pool_in_use\":0,\"pool_size\":20,"
                                     "\"cache_healthy\":false,\"alert\":true,"
                                     "\"last_error\":\"a \\\"quoted\\\"\\nproblem\"}"));
    CHECK_THAT(json, Catch::Contains("\"replay_lsn\":\"0/16B3748\""));
    CHECK_THAT(json,
               Catch::Contains("}],\"state_segment\":\"/regiond.0a1b2c3d\",\"hot_cache\":{\"capacity_bytes\":"
                               "67108864,\"used_bytes\":1024,\"entries\":3,\"vouched\":true,\"not_vouched\":\"\","
                               "\"fences\":2,\"fence_floor\":\"0/0\"},\"waiting\":{\"usable_cores\":2,\"busy_cores\":1,"
                               "\"spare_cores\":1,\"runnable\":3,\"in_flight_avg\":1.2,\"clients_spinning\":1,"
                               "\"clients_sleeping\":4,\"client_permits\":1,\"daemon_may_spin\":false},"
                               "\"counters\":{"));
    CHECK_THAT(json, Catch::EndsWith("\"counters\":{\"requests_read_local\":10,\"requests_write\":2,\"errors\":1,"
                                     "\"clients_connected\":5,\"clients_dropped\":1}}\n"));
    CHECK(std::count(json.begin(), json.end(), '\n') == 1);
}

TEST_CASE("metrics follow the Prometheus text format", "[metrics]") {
    const std::string text = format_metrics(sample());
    // Every sample line belongs to a family announced by HELP and TYPE just before.
    std::istringstream in(text);
    std::string line, family;
    std::map<std::string, std::string> samples;
    while (std::getline(in, line)) {
        REQUIRE_FALSE(line.empty());
        if (line.rfind("# HELP ", 0) == 0) {
            family = line.substr(7, line.find(' ', 7) - 7);
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            CHECK(line.substr(7, family.size()) == family);
            const std::string type = line.substr(8 + family.size());
            CHECK((type == "gauge" || type == "counter" || type == "histogram"));
            continue;
        }
        INFO(line);
        CHECK(line.rfind(family, 0) == 0);
        const auto space = line.rfind(' ');
        REQUIRE(space != std::string::npos);
        const std::string value = line.substr(space + 1);
        CHECK_NOTHROW(std::stod(value));
        samples[line.substr(0, space)] = value;
    }
    CHECK(samples.at("regiond_endpoint_healthy{region=\"eu-west-1\",endpoint=\"10.1.0.1:5432\",role=\"replica\"}") ==
          "1");
    CHECK(samples.at(
              "regiond_replication_lag_seconds{region=\"eu-west-1\",endpoint=\"10.1.0.1:5432\",role=\"replica\"}") ==
          "7.200");
    CHECK(
        samples.at("regiond_replication_lag_bytes{region=\"eu-west-1\",endpoint=\"10.1.0.1:5432\",role=\"replica\"}") ==
        "123456");
    CHECK(
        samples.at("regiond_endpoint_rtt_seconds{region=\"us-east-1\",endpoint=\"10.0.0.1:5432\",role=\"primary\"}") ==
        "0.200123");
    CHECK(samples.at("regiond_lag_alert{region=\"eu-west-1\",endpoint=\"10.1.0.1:5432\",role=\"replica\"}") == "1");
    CHECK(samples.at("regiond_replay_lsn_bytes{region=\"eu-west-1\",endpoint=\"10.1.0.1:5432\",role=\"replica\"}") ==
          std::to_string((std::uint64_t{0x16} << 32) | 0xB374D848));
    CHECK(samples.at("regiond_consistent_reads_total{outcome=\"waited\"}") == "0");
    CHECK(samples.at("regiond_consistent_wait_seconds_bucket{le=\"+Inf\"}") == "0");
    CHECK(samples.at("regiond_consistent_wait_seconds_count") == "0");
    CHECK(samples.at("regiond_cache_healthy{region=\"eu-west-1\"}") == "0");
    CHECK(samples.at("regiond_requests_in_flight") == "12");
    CHECK(samples.at("regiond_requests_orphaned") == "2");
    CHECK(samples.at("regiond_response_backlog_bytes") == "3145728");
    CHECK(samples.at("regiond_requests_total{op=\"read_local\"}") == "10");
    CHECK(samples.at("regiond_requests_total{op=\"cached_read\"}") == "0");
    CHECK(samples.at("regiond_errors_total") == "1");
    CHECK(samples.at("regiond_clients_connected") == "3");
    CHECK(samples.at("regiond_clients_dropped_total") == "1");
    // The primary has no lag series.
    CHECK(samples.count(
              "regiond_replication_lag_seconds{region=\"us-east-1\",endpoint=\"10.0.0.1:5432\",role=\"primary\"}") ==
          0);
}

TEST_CASE("metric label values are escaped", "[metrics]") {
    StatusSnapshot s = sample();
    s.endpoints[0].endpoint = "we\"ird\\name";
    CHECK_THAT(format_metrics(s), Catch::Contains("endpoint=\"we\\\"ird\\\\name\""));
}

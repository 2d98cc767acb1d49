// RedisConnection and RedisProbe against the cluster's real Redis: commands and
// reply types from a real server, pipelining measured through a WAN link (many
// commands in about one round trip), and the probe across a stalled link
// (down by reply timeout, up again on a new connection after restore).
#include <catch2/catch.hpp>

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "../cluster_env.hpp"
#include "daemon/log.hpp"
#include "daemon/redis/redis_connection.hpp"
#include "daemon/redis_probe.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace std::chrono_literals;
using regiond::testing::ClusterEnv;
using regiond::testing::LinkCut;
using Clock = std::chrono::steady_clock;

namespace {

bool run_until(EventLoop& loop, const std::function<bool()>& done, std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
        if (Clock::now() > deadline) return false;
        loop.run_once(5ms);
    }
    return true;
}

RedisTarget target(const std::string& host, int port) {
    RedisTarget t;
    t.address = host;
    t.port = port;
    return t;
}

struct QuietLog {
    QuietLog() {
        log::set_sink([](log::Level, std::string_view) {});
    }
    ~QuietLog() { log::set_sink({}); }
};

}  // namespace

TEST_CASE("redis client: a real Redis answers commands of every reply type, pipelined", "[redis]") {
    const ClusterEnv& env = ClusterEnv::get();
    EventLoop loop;
    RedisConnection c(loop, target("127.0.0.1", env.redis_port("eu-west-1")), {}, {});
    const std::string key = "regiond-test:" + std::to_string(::getpid());
    const std::string value("bin\r\n\0ary", 9);

    std::vector<std::string> seen;
    auto keep = [&seen](const RedisReply& r) {
        REQUIRE(r.arrived());
        const redisReply* raw = r.raw();
        switch (raw->type) {
            case REDIS_REPLY_INTEGER: seen.push_back("int:" + std::to_string(raw->integer)); break;
            case REDIS_REPLY_NIL: seen.push_back("nil"); break;
            case REDIS_REPLY_ARRAY: seen.push_back("array:" + std::to_string(raw->elements)); break;
            case REDIS_REPLY_ERROR: seen.push_back("error"); break;
            default: seen.emplace_back(r.text());
        }
    };
    c.command({"PING"}, keep);
    c.command({"DEL", key}, keep);
    c.command({"SET", key, value, "PX", "60000"}, keep);
    c.command({"GET", key}, keep);
    c.command({"INCR", key + ":n"}, keep);
    c.command({"MGET", key, key + ":none"}, keep);
    c.command({"NOSUCHCOMMAND"}, keep);
    c.command({"DEL", key, key + ":n"}, keep);
    c.command({"GET", key}, keep);
    CHECK(c.outstanding() == 9);
    REQUIRE(run_until(loop, [&] { return seen.size() == 9; }));
    CHECK(seen == std::vector<std::string>{"PONG", seen[1], "OK", value, "int:1", "array:2", "error", "int:2", "nil"});
}

TEST_CASE("redis client: 100 pipelined commands through a WAN link take about one round trip", "[redis]") {
    const ClusterEnv& env = ClusterEnv::get();
    const auto& link = env.link("eu-west-1", "us-east-1", "redis");
    const double rtt_ms = 2 * link.delay_ms;
    REQUIRE(rtt_ms >= 10);
    EventLoop loop;
    RedisConnection c(loop, target(link.listen_host, link.listen_port), {}, {});
    bool ready = false;
    c.command({"PING"}, [&](const RedisReply& r) { ready = r.is_status("PONG"); });
    REQUIRE(run_until(loop, [&] { return ready; }));

    std::vector<std::string> answers;
    const auto t0 = Clock::now();
    for (int i = 0; i < 100; ++i)
        c.command({"ECHO", std::to_string(i)}, [&](const RedisReply& r) { answers.emplace_back(r.text()); });
    REQUIRE(run_until(loop, [&] { return answers.size() == 100; }));
    const double elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    INFO("100 commands in " << elapsed_ms << " ms, round trip " << rtt_ms << " ms");
    CHECK(elapsed_ms >= rtt_ms * 0.9);
    CHECK(elapsed_ms < rtt_ms * 5);  // one command at a time would be 100 round trips
    for (int i = 0; i < 100; ++i) CHECK(answers[static_cast<std::size_t>(i)] == std::to_string(i));
}

TEST_CASE("redis client: the probe measures the WAN round trip, goes down on a stalled link, comes back", "[redis]") {
    QuietLog quiet;
    const ClusterEnv& env = ClusterEnv::get();
    const auto& link = env.link("eu-west-1", "us-east-1", "redis");
    EventLoop loop;
    RedisProbeSettings s;
    s.region = "us-east-1";
    s.address.host = link.listen_host;
    s.address.port = static_cast<std::uint16_t>(link.listen_port);
    s.connect_timeout = 300ms;
    s.check_interval = 50ms;
    s.down_after = 2;
    s.up_after = 2;
    RedisProbe probe(loop, s, {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.healthy(); }));
    CHECK(probe.rtt_us() >= static_cast<std::uint32_t>(2 * link.delay_ms * 1000 * 0.9));
    {
        LinkCut cut(env, link.name, "stall");
        REQUIRE(run_until(loop, [&] { return !probe.healthy(); }));
        INFO(probe.last_error());
        CHECK((probe.last_error() == "no reply within 300ms" ||
               probe.last_error().find("connect") != std::string::npos));
    }
    REQUIRE(run_until(loop, [&] { return probe.healthy(); }, 10000ms));
    CHECK(probe.last_error().empty());
}

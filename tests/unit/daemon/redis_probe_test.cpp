// The Redis health check (daemon/redis_probe.hpp) against a tiny fake Redis
// served from the same event loop (fake_redis.hpp): PING/PONG and its round trip,
// AUTH, error replies, a server that never answers, one that sends garbage, one
// that closes, reconnecting with backoff, and the hysteresis.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>

#include "daemon/log.hpp"
#include "daemon/redis_probe.hpp"
#include "fake_redis.hpp"
#include "loop_helpers.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace std::chrono_literals;

using regiond::daemon::test::QuietLog;
using regiond::daemon::test::run_until;

namespace {

using testing::FakeRedis;

RedisProbeSettings settings_for(std::uint16_t port) {
    RedisProbeSettings s;
    s.region = "eu-west-1";
    s.address.host = "127.0.0.1";
    s.address.port = port;
    s.connect_timeout = 300ms;
    s.check_interval = 10ms;
    s.down_after = 2;
    s.up_after = 2;
    return s;
}

}  // namespace

TEST_CASE("redis probe: PONG marks the cache up, a vanished server marks it down", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    int changes = 0;
    RedisProbe probe(loop, settings_for(redis.port), [&] { ++changes; });
    CHECK(probe.display_name() == "127.0.0.1:" + std::to_string(redis.port));
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.healthy(); }));
    CHECK(changes == 1);
    CHECK(probe.last_error().empty());
    // The connection is kept: several PINGs, one connection, no AUTH.
    REQUIRE(run_until(loop, [&] { return redis.commands.size() >= 3; }));
    CHECK(std::all_of(redis.commands.begin(), redis.commands.end(),
                      [](const auto& c) { return c == std::vector<std::string>{"PING"}; }));

    redis.stop();
    REQUIRE(run_until(loop, [&] { return !probe.healthy(); }));
    CHECK(changes == 2);
    CHECK_FALSE(probe.last_error().empty());
}

TEST_CASE("redis probe: AUTH and SELECT come first on a new connection", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.replies = {"+OK\r\n", "+OK\r\n", "+PONG\r\n"};
    redis.answer_after = 3;  // no answer before all three arrived: only a pipelining client gets one
    RedisProbeSettings s = settings_for(redis.port);
    s.address.password = "s3cret";
    s.address.db = 2;
    RedisProbe probe(loop, s, {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.healthy(); }));
    REQUIRE(redis.commands.size() >= 3);
    CHECK(redis.commands[0] == std::vector<std::string>{"AUTH", "s3cret"});
    CHECK(redis.commands[1] == std::vector<std::string>{"SELECT", "2"});
    CHECK(redis.commands[2] == std::vector<std::string>{"PING"});
    CHECK(redis.largest_batch == 3);
}

TEST_CASE("redis probe: an error reply is a failure that names the server's answer", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.replies = {"-NOAUTH Authentication required.\r\n"};
    RedisProbe probe(loop, settings_for(redis.port), {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.checked(); }));
    CHECK_FALSE(probe.healthy());
    CHECK(probe.last_error() == "server answered: NOAUTH Authentication required.");
}

TEST_CASE("redis probe: nobody listening is a failure", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    std::uint16_t port = 0;
    {
        FakeRedis gone(loop);  // take a free port, then release it
        port = gone.port;
    }
    RedisProbe probe(loop, settings_for(port), {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.checked(); }));
    CHECK_FALSE(probe.healthy());
    CHECK_THAT(probe.last_error(), Catch::Contains("connect"));
}

TEST_CASE("redis probe: the round trip is measured", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.delay = 40ms;
    RedisProbeSettings s = settings_for(redis.port);
    s.check_interval = 100ms;
    RedisProbe probe(loop, s, {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.healthy(); }));
    CHECK(probe.rtt_us() >= 40'000);
    CHECK(probe.rtt_us() < 300'000);
}

TEST_CASE("redis probe: a server that never answers is a failure (reply timeout)", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::silent;
    RedisProbeSettings s = settings_for(redis.port);
    s.connect_timeout = 100ms;
    RedisProbe probe(loop, s, {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.checked(); }));
    CHECK_FALSE(probe.healthy());
    CHECK(probe.last_error() == "no reply within 100ms");
}

TEST_CASE("redis probe: garbage from the server is a failure, not a crash", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    std::string expected;
    SECTION("not RESP") {
        redis.behaviour = FakeRedis::Behaviour::garbage;
        expected = "Protocol error, got \"!\" as reply type byte";
    }
    SECTION("an answer that is not PONG") {
        redis.replies = {":42\r\n"};
        expected = "unexpected answer to PING";
    }
    SECTION("an endless answer") {
        redis.replies = {"$100000000\r\n" + std::string(200'000, 'x')};
        expected = "a reply larger than 64 KiB";
    }
    RedisProbe probe(loop, settings_for(redis.port), {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.checked(); }));
    CHECK_FALSE(probe.healthy());
    CHECK(probe.last_error() == expected);
}

TEST_CASE("redis probe: an answer nobody asked for drops the connection, not the daemon", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.replies = {"+PONG\r\n+PONG\r\n"};  // hiredis 0.14 alone would abort() on the second
    RedisProbe probe(loop, settings_for(redis.port), {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return redis.accepted >= 3; }));
    CHECK(probe.healthy());  // each PING got its PONG; the extra one closed that connection
}

TEST_CASE("redis probe: a server that closes the connection is reconnected to", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.close_after = 1;  // each connection answers one PING, then closes
    RedisProbe probe(loop, settings_for(redis.port), {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return redis.accepted >= 5; }));
    CHECK(probe.healthy());
    CHECK(probe.last_error().empty());

    // Closed in the middle of a check: a failure, then up again on a new connection.
    redis.close_after = 0;
    redis.behaviour = FakeRedis::Behaviour::close;
    REQUIRE(run_until(loop, [&] { return !probe.healthy(); }));
    CHECK_THAT(probe.last_error(), Catch::Contains("closed"));
    redis.behaviour = FakeRedis::Behaviour::script;
    REQUIRE(run_until(loop, [&] { return probe.healthy(); }));
}

TEST_CASE("redis probe: reconnects back off while Redis keeps failing", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::close;
    RedisProbeSettings s = settings_for(redis.port);
    s.check_interval = 10ms;  // backoff 10, 20, 40, 80, then at most 160 ms
    RedisProbe probe(loop, s, {});
    probe.start();
    run_until(
        loop, [] { return false; }, 1000ms);
    CHECK_FALSE(probe.healthy());
    // About 100 checks in that second; without backoff each one reconnects.
    INFO("connections: " << redis.accepted);
    CHECK(redis.accepted >= 4);
    CHECK(redis.accepted <= 15);
    // Back: found again within the longest backoff.
    redis.behaviour = FakeRedis::Behaviour::script;
    REQUIRE(run_until(
        loop, [&] { return probe.healthy(); }, 1000ms));
}

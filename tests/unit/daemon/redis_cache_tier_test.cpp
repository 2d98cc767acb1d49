// RedisCacheTier (daemon/redis/redis_cache_tier.hpp) against the in-process fake
// Redis (fake_redis.hpp, Behaviour::server): GET hit, miss and every kind of
// failure; SET with its TTL; invalidate() as DEL + PUBLISH in one flush; AUTH and
// SELECT; reconnecting after a loss, and failing fast while the backoff runs;
// healthy(); the counters; and a tier destroyed inside its own callbacks.
#include <catch2/catch.hpp>

#include <hiredis/hiredis.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/log.hpp"
#include "daemon/redis/invalidation_message.hpp"
#include "daemon/redis/reconnect_backoff.hpp"
#include "daemon/redis/redis_cache_tier.hpp"
#include "fake_redis.hpp"
#include "loop_helpers.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace std::chrono_literals;
using testing::FakeRedis;

using regiond::daemon::test::QuietLog;
using regiond::daemon::test::run_until;

namespace {

RedisCacheTierSettings settings_for(std::uint16_t port) {
    RedisCacheTierSettings s;
    s.region = "eu-west-1";
    s.address.host = "127.0.0.1";
    s.address.port = port;
    s.connect_timeout = 300ms;
    s.command_timeout = 300ms;
    s.min_backoff = 10ms;
    s.max_backoff = 40ms;
    return s;
}

// get() with the outcome kept.
std::optional<RedisGetResult> get_now(EventLoop& loop, RedisCacheTier& tier, std::string_view key) {
    std::optional<RedisGetResult> out;
    tier.get(key, [&out](RedisGetResult&& r) { out.emplace(std::move(r)); });
    REQUIRE_FALSE(out.has_value());  // never from inside get()
    REQUIRE(run_until(loop, [&] { return out.has_value(); }));
    return out;
}

std::uint16_t unused_port(EventLoop& loop) {
    FakeRedis gone(loop);
    return gone.port;
}

}  // namespace

TEST_CASE("reconnect backoff: doubles from the first wait up to the cap, reset by a success", "[redis]") {
    ReconnectBackoff b(10ms, 2s);
    std::vector<std::chrono::nanoseconds> waits;
    for (int i = 0; i < 12; ++i) waits.push_back(b.next());
    CHECK(waits[0] == 10ms);
    CHECK(waits[1] == 20ms);
    CHECK(waits[2] == 40ms);
    CHECK(waits[7] == 1280ms);
    CHECK(waits[8] == 2s);
    CHECK(waits[11] == 2s);
    CHECK(b.failures() == 12);
    b.reset();
    CHECK(b.next() == 10ms);
    ReconnectBackoff huge(1s, 5s);
    for (int i = 0; i < 100; ++i) CHECK(huge.next() <= 5s);  // no overflow after many failures
}

TEST_CASE("redis cache tier: get answers hit or miss, binary-safe; set stores with PX", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    RedisCacheTier tier(loop, settings_for(redis.port));
    CHECK(tier.display_name() == "127.0.0.1:" + std::to_string(redis.port));
    tier.start();
    REQUIRE(run_until(loop, [&] { return tier.healthy(); }));

    const std::string key("k\0ey\r\n\xff", 8);
    const std::string value("RGDV\0\x01\r\n*1\r\n$3\r\n\xfe\xff", 18);
    auto miss = get_now(loop, tier, key);
    CHECK(miss->is_miss());
    CHECK(miss->value().empty());

    tier.set(key, value, 1500ms);
    REQUIRE(run_until(loop, [&] { return redis.store.count(key) == 1; }));
    CHECK(redis.store[key] == value);
    CHECK(redis.ttls[key] == "1500");
    CHECK(redis.commands.back() == std::vector<std::string>{"SET", key, value, "PX", "1500"});

    auto hit = get_now(loop, tier, key);
    REQUIRE(hit->is_hit());
    CHECK(hit->value() == value);

    tier.set("zero-ttl", "v", 0ms);  // PX 0 is an error in Redis: at least 1 ms
    REQUIRE(run_until(loop, [&] { return redis.ttls.count("zero-ttl") == 1; }));
    CHECK(redis.ttls["zero-ttl"] == "1");

    const auto& c = tier.counters();
    CHECK(c.gets == 2);
    CHECK(c.hits == 1);
    CHECK(c.misses == 1);
    CHECK(c.sets == 2);
    CHECK(c.failures == 0);
    CHECK(tier.healthy());
    CHECK(tier.last_error().empty());
    CHECK(redis.accepted == 1);  // one connection for everything
}

TEST_CASE("redis cache tier: a get fails with the reason, counted; healthy() follows the last command", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    RedisCacheTierSettings s = settings_for(redis.port);
    RedisCacheTier tier(loop, s);
    tier.start();
    REQUIRE(run_until(loop, [&] { return tier.healthy(); }));

    SECTION("an error reply: the connection stays") {
        redis.failing = {"GET"};
        auto r = get_now(loop, tier, "k");
        REQUIRE(r->is_failed());
        CHECK(r->failure() == "GET failed: server answered: ERR injected failure");
        CHECK(tier.counters().failures == 1);
        CHECK_FALSE(tier.healthy());
        CHECK(tier.last_error() == r->failure());
        redis.failing.clear();
        CHECK(get_now(loop, tier, "k")->is_miss());
        CHECK(tier.healthy());
        CHECK(redis.accepted == 1);
    }
    SECTION("a reply of the wrong type") {
        redis.store["k"] = "v";
        redis.behaviour = FakeRedis::Behaviour::script;
        redis.replies = {":7\r\n"};
        auto r = get_now(loop, tier, "k");
        REQUIRE(r->is_failed());
        CHECK(r->failure() == "GET failed: an unexpected reply");
        CHECK(tier.counters().failures == 1);
    }
    SECTION("no reply within the command timeout") {
        redis.behaviour = FakeRedis::Behaviour::silent;
        auto r = get_now(loop, tier, "k");
        REQUIRE(r->is_failed());
        CHECK(r->failure() == "no reply within 300ms");
        CHECK(tier.counters().failures == 1);
        CHECK_FALSE(tier.healthy());
    }
    SECTION("the server closes the connection") {
        redis.behaviour = FakeRedis::Behaviour::close;
        auto r = get_now(loop, tier, "k");
        REQUIRE(r->is_failed());
        CHECK(r->failure() == "Server closed the connection");
        CHECK(tier.counters().failures == 1);
        CHECK_FALSE(tier.healthy());
    }
    SECTION("a value larger than the tier takes: a failed get, the connection stays") {
        RedisCacheTierSettings small = s;
        small.max_value_bytes = 100;
        RedisCacheTier limited(loop, small);
        redis.store["big"] = std::string(101, 'x');
        redis.store["fits"] = std::string(100, 'x');
        auto r = get_now(loop, limited, "big");
        REQUIRE(r->is_failed());
        CHECK(r->failure() == "a value of 101 bytes, more than 100 bytes");
        CHECK(get_now(loop, limited, "fits")->is_hit());
        CHECK(limited.healthy());
        CHECK(limited.counters().failures == 1);
        CHECK(limited.counters().hits == 1);
    }
}

TEST_CASE("redis cache tier: nobody listening fails gets at once; the backoff holds new connections back", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    const std::uint16_t port = unused_port(loop);
    RedisCacheTierSettings s = settings_for(port);
    s.min_backoff = 60s;  // one attempt, then a long backoff
    s.max_backoff = 60s;
    RedisCacheTier tier(loop, s);
    auto first = get_now(loop, tier, "k");
    REQUIRE(first->is_failed());
    CHECK(first->failure() == "connect: Connection refused");
    CHECK_FALSE(tier.healthy());

    // A server appears, but the backoff has 60 s to run: no new connection, and a
    // get fails at once with the last error instead of waiting.
    FakeRedis redis(loop, 8, port);
    redis.behaviour = FakeRedis::Behaviour::server;
    auto second = get_now(loop, tier, "k");
    REQUIRE(second->is_failed());
    CHECK(second->failure() == "redis eu-west-1 unavailable: connect: Connection refused");
    tier.set("k", "v", 1s);
    const std::vector<std::string> keys{"a"};
    tier.invalidate(keys, "{}");
    run_until(
        loop, [] { return false; }, 50ms);
    CHECK(redis.accepted == 0);
    CHECK(tier.counters().failures == 5);  // two gets, one set, DEL and PUBLISH
}

TEST_CASE("redis cache tier: a lost connection is replaced after the backoff, without traffic", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    RedisCacheTier tier(loop, settings_for(redis.port));
    tier.start();
    REQUIRE(run_until(loop, [&] { return tier.healthy(); }));
    redis.drop_connections();
    REQUIRE(run_until(loop, [&] { return !tier.healthy(); }));
    CHECK_FALSE(tier.last_error().empty());  // closed or reset, as the kernel saw it
    // The new connection's PING proves it: healthy again with no command of ours.
    REQUIRE(run_until(loop, [&] { return tier.healthy(); }));
    CHECK(redis.accepted == 2);
    CHECK(tier.counters().gets == 0);
    redis.store["k"] = "v";
    CHECK(get_now(loop, tier, "k")->value() == "v");
}

TEST_CASE("redis cache tier: AUTH and SELECT lead a new connection, pipelined with what waits", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    redis.password = "s3cret";
    redis.store["k"] = "v";
    RedisCacheTierSettings s = settings_for(redis.port);
    s.address.password = "s3cret";
    s.address.db = 3;

    SECTION("accepted") {
        RedisCacheTier tier(loop, s);
        auto r = get_now(loop, tier, "k");  // queued before the connection exists
        CHECK(r->value() == "v");
        REQUIRE(redis.commands.size() == 4);
        CHECK(redis.commands[0] == std::vector<std::string>{"AUTH", "s3cret"});
        CHECK(redis.commands[1] == std::vector<std::string>{"SELECT", "3"});
        CHECK(redis.commands[2] == std::vector<std::string>{"PING"});
        CHECK(redis.commands[3] == std::vector<std::string>{"GET", "k"});
        CHECK(redis.largest_read == 4);
    }
    SECTION("refused: commands fail, the password is never shown, the tier retries") {
        redis.password = "other";
        RedisCacheTier tier(loop, s);
        auto r = get_now(loop, tier, "k");
        REQUIRE(r->is_failed());
        CHECK_THAT(r->failure(), Catch::Contains("NOAUTH"));
        REQUIRE(run_until(loop, [&] { return redis.accepted >= 3; }));
        CHECK_FALSE(tier.healthy());
        CHECK_THAT(tier.last_error(), Catch::StartsWith("server answered: WRONGPASS"));
        CHECK(tier.last_error().find("s3cret") == std::string::npos);
        redis.password = "s3cret";
        REQUIRE(run_until(loop, [&] { return tier.healthy(); }));
    }
}

TEST_CASE("redis cache tier: invalidate sends DEL and PUBLISH pipelined, in one write", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    RedisCacheTier tier(loop, settings_for(redis.port));
    tier.start();
    REQUIRE(run_until(loop, [&] { return tier.healthy(); }));
    // A subscriber on the fake, through a raw connection.
    RedisConnection listener(loop, RedisTarget{false, "127.0.0.1", redis.port, {}}, {}, {});
    std::vector<std::string> heard;
    listener.subscribe(kInvalidationChannel, [&](const RedisReply& r) {
        if (r.raw()->elements == 3 && std::string_view(r.raw()->element[0]->str) == "message")
            heard.emplace_back(r.raw()->element[2]->str, r.raw()->element[2]->len);
    });
    REQUIRE(run_until(loop, [&] { return redis.subscribers() == 1; }));

    redis.store["a"] = "1";
    redis.store[std::string("b\0", 2)] = "2";
    redis.store["c"] = "3";
    redis.largest_read = 0;
    redis.answer_after = 2;  // no answer before both arrived: only a pipelining client gets one
    const std::size_t before = redis.commands.size();
    const std::vector<std::string> keys{"a", std::string("b\0", 2)};
    const std::string payload = encode_invalidation({keys, 0x16B3748, 7, "eu-west-1/h1"});
    tier.invalidate(keys, payload);
    REQUIRE(run_until(loop, [&] { return heard.size() == 1; }));
    CHECK(heard[0] == payload);
    REQUIRE(redis.commands.size() == before + 2);
    CHECK(redis.commands[before] == std::vector<std::string>{"DEL", "a", std::string("b\0", 2)});
    CHECK(redis.commands[before + 1] == std::vector<std::string>{"PUBLISH", "replication:events", payload});
    CHECK(redis.largest_read == 2);  // both in one read: written together
    CHECK(redis.store.count("a") == 0);
    CHECK(redis.store.count("c") == 1);
    REQUIRE(run_until(loop, [&] { return tier.connected() && redis.largest_batch >= 2; }));

    // No keys: only the PUBLISH.
    redis.answer_after = 1;
    tier.invalidate({}, "no keys");
    REQUIRE(run_until(loop, [&] { return heard.size() == 2; }));
    CHECK(redis.commands.back() == std::vector<std::string>{"PUBLISH", "replication:events", "no keys"});
    CHECK(tier.counters().invalidations == 2);

    // Failures are counted and kept.
    redis.failing = {"DEL", "PUBLISH"};
    tier.invalidate(keys, payload);
    REQUIRE(run_until(loop, [&] { return tier.counters().failures == 2; }));
    CHECK(tier.last_error() == "PUBLISH failed: server answered: ERR injected failure");
    CHECK_FALSE(tier.healthy());
}

TEST_CASE("redis cache tier: a callback may destroy the tier", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    redis.store["k"] = "v";
    auto tier = std::make_unique<RedisCacheTier>(loop, settings_for(redis.port));
    int calls = 0;
    auto destroy = [&](RedisGetResult&&) {
        ++calls;
        tier.reset();
    };

    SECTION("in a hit, with more answers in the same read") {
        redis.answer_after = 4;  // PING and three GETs answered together
        for (int i = 0; i < 3; ++i) tier->get("k", destroy);
    }
    SECTION("in a failure, with more failures to report") {
        redis.behaviour = FakeRedis::Behaviour::close;
        for (int i = 0; i < 3; ++i) tier->get("k", destroy);
    }
    SECTION("in a failure reported while the backoff runs") {
        RedisCacheTierSettings s = settings_for(unused_port(loop));
        s.min_backoff = s.max_backoff = 60s;
        tier = std::make_unique<RedisCacheTier>(loop, s);
        bool failed_once = false;
        tier->get("k", [&](RedisGetResult&&) { failed_once = true; });
        REQUIRE(run_until(loop, [&] { return failed_once; }));
        for (int i = 0; i < 3; ++i) tier->get("k", destroy);
    }
    REQUIRE(run_until(loop, [&] { return tier == nullptr; }));
    run_until(
        loop, [] { return false; }, 50ms);
    CHECK(calls == 1);
}

// RedisCacheTier and RedisSubscriber (daemon/redis/) against real Redis servers:
// the cluster's (scripts/cluster.sh), directly and through a WAN link, and a
// private redis-server this test starts, kills and starts again on the same port
// (the cluster's servers are shared with the other tests and stay untouched).
//   - an invalidation published by a tier in one region reaches a subscriber on
//     that Redis, and its DEL removes the keys; binary keys and values round-trip;
//   - a killed and restarted redis-server: on_lost once, then on_subscribed, and
//     messages flow again; the tier reconnects on its own;
//   - a stalled WAN link (the socket stays open): the heartbeat finds the loss.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cluster_env.hpp"
#include "daemon/log.hpp"
#include "daemon/redis/invalidation_message.hpp"
#include "daemon/redis/redis_cache_tier.hpp"
#include "daemon/redis/redis_subscriber.hpp"

extern char** environ;

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

struct QuietLog {
    QuietLog() {
        log::set_sink([](log::Level, std::string_view) {});
    }
    ~QuietLog() { log::set_sink({}); }
};

config::RedisEndpoint endpoint(const std::string& host, int port) {
    config::RedisEndpoint e;
    e.host = host;
    e.port = static_cast<std::uint16_t>(port);
    return e;
}

RedisCacheTierSettings tier_settings(const std::string& region, const config::RedisEndpoint& address) {
    RedisCacheTierSettings s;
    s.region = region;
    s.address = address;
    s.min_backoff = 20ms;
    s.max_backoff = 200ms;
    return s;
}

RedisSubscriberSettings subscriber_settings(const std::string& region, const config::RedisEndpoint& address) {
    RedisSubscriberSettings s;
    s.region = region;
    s.address = address;
    s.heartbeat_interval = 50ms;
    s.reply_timeout = 300ms;
    s.connect_timeout = 300ms;
    s.min_backoff = 20ms;
    s.max_backoff = 200ms;
    return s;
}

struct Recorder {
    int subscribed = 0;
    int lost = 0;
    std::vector<std::string> messages;
    std::vector<std::string> events;

    RedisSubscriber::Hooks hooks() {
        return {.on_subscribed =
                    [this] {
                        ++subscribed;
                        events.emplace_back("subscribed");
                    },
                .on_message = [this](std::string_view payload) { messages.emplace_back(payload); },
                .on_lost =
                    [this](const std::string& reason) {
                        ++lost;
                        events.push_back("lost:" + reason);
                    }};
    }
};

std::string all_bytes() {
    std::string s;
    for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
    return s;
}

// A unique prefix so reruns and other tests never share keys.
std::string unique(const std::string& what) {
    return "regiond-test:" + std::to_string(::getpid()) + ":" +
           std::to_string(Clock::now().time_since_epoch().count()) + ":" + what;
}

std::optional<RedisGetResult> get_now(EventLoop& loop, RedisCacheTier& tier, const std::string& key) {
    std::optional<RedisGetResult> out;
    tier.get(key, [&out](RedisGetResult&& r) { out.emplace(std::move(r)); });
    REQUIRE(run_until(loop, [&] { return out.has_value(); }));
    return out;
}

// A redis-server of this test's own, on a port picked free; stop() kills it
// (SIGKILL: a crash, no goodbye), start() brings it back on the same port.
class PrivateRedis {
public:
    PrivateRedis() {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("cannot pick a free port");
        port = ntohs(a.sin_port);
        ::close(fd);
        start();
    }
    ~PrivateRedis() { stop(); }
    PrivateRedis(const PrivateRedis&) = delete;
    PrivateRedis& operator=(const PrivateRedis&) = delete;

    void start() {
        const std::string port_text = std::to_string(port);
        std::vector<std::string> args = {"redis-server", "--port", port_text,   "--bind", "127.0.0.1",   "--save", "",
                                         "--appendonly", "no",     "--logfile", "",       "--daemonize", "no"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        const int rc = posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) throw std::runtime_error("cannot start redis-server (is it installed?)");
        // Ready when it answers (it listens a little after it starts).
        EventLoop loop;
        RedisCacheTier probe(loop, tier_settings("private", endpoint("127.0.0.1", port)));
        probe.start();
        if (!run_until(
                loop, [&] { return probe.healthy(); }, 10000ms))
            throw std::runtime_error("redis-server on port " + port_text + " did not answer");
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    std::uint16_t port = 0;

private:
    pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("redis tier: an invalidation published by one region's tier reaches the subscriber; DEL removes the keys",
          "[redis]") {
    QuietLog quiet;
    const ClusterEnv& env = ClusterEnv::get();
    EventLoop loop;
    // eu-west-1's own daemon subscribes to its own Redis; a writer in us-east-1
    // reaches that Redis through the WAN link.
    Recorder rec;
    RedisSubscriber sub(loop, subscriber_settings("eu-west-1", endpoint("127.0.0.1", env.redis_port("eu-west-1"))),
                        rec.hooks());
    sub.start();
    const auto& link = env.link("us-east-1", "eu-west-1", "redis");
    RedisCacheTier writer(loop, tier_settings("eu-west-1", endpoint(link.listen_host, link.listen_port)));
    RedisCacheTier local(loop, tier_settings("eu-west-1", endpoint("127.0.0.1", env.redis_port("eu-west-1"))));
    REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));

    const std::vector<std::string> keys = {unique("a"), unique("b") + all_bytes()};
    for (const auto& k : keys) local.set(k, "old value", 60s);
    REQUIRE(run_until(loop, [&] { return local.counters().sets == 2 && get_now(loop, local, keys[1])->is_hit(); }));

    Invalidation inv{keys, 0x16B3748, 7312345678901234567ULL, "us-east-1/test"};
    const std::string payload = encode_invalidation(inv);
    writer.invalidate(keys, payload);
    REQUIRE(run_until(loop, [&] { return !rec.messages.empty(); }));
    // Other tests may publish on the shared channel: find ours.
    std::optional<Invalidation> got;
    for (const auto& m : rec.messages)
        if (m == payload) got = parse_invalidation(m);
    REQUIRE(got.has_value());
    CHECK(*got == inv);
    // The DEL went ahead of the PUBLISH on the same connection: both keys are gone.
    for (const auto& k : keys) CHECK(get_now(loop, local, k)->is_miss());
    CHECK(writer.counters().failures == 0);
    CHECK(writer.healthy());
    CHECK(rec.lost == 0);
}

TEST_CASE("redis tier: binary keys and values round-trip through a real Redis", "[redis]") {
    QuietLog quiet;
    const ClusterEnv& env = ClusterEnv::get();
    EventLoop loop;
    RedisCacheTier tier(loop, tier_settings("ap-northeast-1", endpoint("127.0.0.1", env.redis_port("ap-northeast-1"))));
    const std::string key = unique("bin") + all_bytes();
    std::string value = "RGDV" + all_bytes() + std::string("\r\n$-1\r\n*0\r\n", 11);
    for (int i = 0; i < 1000; ++i) value += all_bytes();  // 256 KiB: several reads
    CHECK(get_now(loop, tier, key)->is_miss());
    tier.set(key, value, 60s);
    auto hit = get_now(loop, tier, key);
    REQUIRE(hit->is_hit());
    CHECK(hit->value().size() == value.size());
    CHECK(hit->value() == value);
    // A key that differs in one byte is another key.
    std::string other = key;
    other.back() = '\x01';
    CHECK(get_now(loop, tier, other)->is_miss());
    tier.invalidate(std::vector<std::string>{key}, "{}");
    CHECK(get_now(loop, tier, key)->is_miss());
    CHECK(tier.counters().failures == 0);
}

TEST_CASE("redis tier: a killed and restarted redis-server is one loss, then a new subscription", "[redis]") {
    QuietLog quiet;
    PrivateRedis redis;
    EventLoop loop;
    Recorder rec;
    RedisSubscriber sub(loop, subscriber_settings("local", endpoint("127.0.0.1", redis.port)), rec.hooks());
    sub.start();
    RedisCacheTier tier(loop, tier_settings("local", endpoint("127.0.0.1", redis.port)));
    tier.start();
    REQUIRE(run_until(loop, [&] { return sub.subscribed() && tier.healthy(); }));
    tier.invalidate({}, "before");
    REQUIRE(run_until(loop, [&] { return rec.messages.size() == 1; }));

    redis.stop();
    REQUIRE(run_until(loop, [&] { return rec.lost == 1 && !tier.healthy(); }));
    CHECK_FALSE(sub.subscribed());
    // Down for a while: the resubscriptions fail, and none of them is a loss.
    REQUIRE(run_until(loop, [&] { return sub.last_error().find("refused") != std::string::npos; }));
    const auto until = Clock::now() + 300ms;
    run_until(loop, [&] { return Clock::now() > until; });
    CHECK(rec.lost == 1);
    tier.invalidate({}, "while down");  // fails, counted
    CHECK(tier.counters().failures >= 1);

    redis.start();
    REQUIRE(run_until(loop, [&] { return sub.subscribed() && tier.healthy(); }));
    CHECK(rec.events == std::vector<std::string>{"subscribed", rec.events[1], "subscribed"});
    CHECK_THAT(rec.events[1], Catch::StartsWith("lost:"));
    tier.invalidate({}, "after");
    REQUIRE(run_until(loop, [&] { return rec.messages.size() == 2; }));
    CHECK(rec.messages == std::vector<std::string>{"before", "after"});
    CHECK(rec.lost == 1);
}

TEST_CASE("redis tier: a stalled WAN link keeps the socket open; the heartbeat finds the loss", "[redis]") {
    QuietLog quiet;
    const ClusterEnv& env = ClusterEnv::get();
    const auto& link = env.link("ap-northeast-1", "us-east-1", "redis");
    EventLoop loop;
    Recorder rec;
    RedisSubscriber sub(loop, subscriber_settings("us-east-1", endpoint(link.listen_host, link.listen_port)),
                        rec.hooks());
    sub.start();
    REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
    {
        LinkCut cut(env, link.name, "stall");
        REQUIRE(run_until(loop, [&] { return rec.lost == 1; }));
        CHECK(rec.events.back() == "lost:no reply within 300ms");
    }
    REQUIRE(run_until(
        loop, [&] { return sub.subscribed(); }, 10000ms));
    CHECK(rec.lost == 1);
    CHECK(rec.subscribed == 2);
}

// RedisSubscriber (daemon/redis/redis_subscriber.hpp) and RedisConnection's
// subscribe mode against the in-process fake Redis (fake_redis.hpp,
// Behaviour::server): messages delivered byte for byte; malformed pushes dropped
// and counted; pushes hiredis 0.14 would abort on (or misroute) closing the
// connection instead; every loss reported once, then a resubscription; the
// heartbeat finding a server that stopped answering; AUTH before SUBSCRIBE; and
// a subscriber destroyed inside each of its hooks.
#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/log.hpp"
#include "daemon/redis/redis_subscriber.hpp"
#include "fake_redis.hpp"
#include "loop_helpers.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace std::chrono_literals;
using testing::FakeRedis;

using regiond::daemon::test::QuietLog;
using regiond::daemon::test::run_until;

namespace {

RedisSubscriberSettings subscriber_settings_for(std::uint16_t port) {
    RedisSubscriberSettings s;
    s.region = "eu-west-1";
    s.address.host = "127.0.0.1";
    s.address.port = port;
    s.connect_timeout = 300ms;
    s.reply_timeout = 300ms;
    s.heartbeat_interval = 20ms;
    s.min_backoff = 10ms;
    s.max_backoff = 40ms;
    return s;
}

// What the hooks saw, in order: "subscribed", "message:<payload>", "lost:<reason>".
struct Recorder {
    std::vector<std::string> events;
    int subscribed = 0;
    int lost = 0;
    std::vector<std::string> messages;

    RedisSubscriber::Hooks hooks() {
        return {.on_subscribed =
                    [this] {
                        ++subscribed;
                        events.emplace_back("subscribed");
                    },
                .on_message =
                    [this](std::string_view payload) {
                        messages.emplace_back(payload);
                        events.push_back("message:" + std::string(payload));
                    },
                .on_lost =
                    [this](const std::string& reason) {
                        ++lost;
                        events.push_back("lost:" + reason);
                    }};
    }
};

}  // namespace

TEST_CASE("redis subscriber: subscribes, then delivers every message byte for byte", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    Recorder rec;
    RedisSubscriber sub(loop, subscriber_settings_for(redis.port), rec.hooks());
    CHECK_FALSE(sub.subscribed());
    sub.start();
    CHECK(rec.events.empty());  // never inside start()
    REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
    CHECK(rec.events == std::vector<std::string>{"subscribed"});
    REQUIRE(redis.commands.size() >= 1);
    CHECK(redis.commands[0] == std::vector<std::string>{"SUBSCRIBE", "replication:events"});

    const std::string binary("a\0b\r\n*3\r\n\xff", 11);
    CHECK(redis.publish("replication:events", "first") == 1);
    CHECK(redis.publish("replication:events", binary) == 1);
    CHECK(redis.publish("replication:events", "") == 1);
    CHECK(redis.publish("other-channel", "not ours") == 0);
    REQUIRE(run_until(loop, [&] { return rec.messages.size() == 3; }));
    CHECK(rec.messages == std::vector<std::string>{"first", binary, ""});
    CHECK(sub.counters().messages == 3);
    CHECK(sub.counters().dropped == 0);
    CHECK(sub.counters().subscribed == 1);
    CHECK(rec.subscribed == 1);  // heartbeat confirmations are not new subscriptions

    // The heartbeat: SUBSCRIBE again on the same connection, confirmed each time.
    const std::size_t seen = redis.commands.size();
    REQUIRE(run_until(loop, [&] { return redis.commands.size() >= seen + 3; }));
    for (std::size_t i = seen; i < redis.commands.size(); ++i)
        CHECK(redis.commands[i] == std::vector<std::string>{"SUBSCRIBE", "replication:events"});
    CHECK(redis.accepted == 1);
    CHECK(rec.lost == 0);
    CHECK(redis.publish("replication:events", "after heartbeats") == 1);
    REQUIRE(run_until(loop, [&] { return rec.messages.size() == 4; }));
}

TEST_CASE("redis subscriber: AUTH and SELECT go first, in the same write as SUBSCRIBE", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    redis.password = "s3cret";
    RedisSubscriberSettings s = subscriber_settings_for(redis.port);
    s.address.password = "s3cret";
    s.address.db = 1;
    Recorder rec;

    SECTION("accepted") {
        RedisSubscriber sub(loop, s, rec.hooks());
        sub.start();
        REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
        REQUIRE(redis.commands.size() >= 3);
        CHECK(redis.commands[0] == std::vector<std::string>{"AUTH", "s3cret"});
        CHECK(redis.commands[1] == std::vector<std::string>{"SELECT", "1"});
        CHECK(redis.commands[2] == std::vector<std::string>{"SUBSCRIBE", "replication:events"});
        CHECK(redis.largest_read == 3);
    }
    SECTION("refused: never subscribed, so nothing is lost; retried until it works") {
        redis.password = "other";
        RedisSubscriber sub(loop, s, rec.hooks());
        sub.start();
        REQUIRE(run_until(loop, [&] { return redis.accepted >= 3; }));
        CHECK_FALSE(sub.subscribed());
        CHECK(rec.events.empty());
        CHECK_THAT(sub.last_error(), Catch::StartsWith("server answered: WRONGPASS"));
        CHECK(sub.last_error().find("s3cret") == std::string::npos);
        redis.password = "s3cret";
        REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
        CHECK(rec.events == std::vector<std::string>{"subscribed"});
    }
}

TEST_CASE("redis subscriber: malformed messages are dropped and counted; the subscription stays", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    RedisSubscriberSettings s = subscriber_settings_for(redis.port);
    s.max_payload_bytes = 16;
    Recorder rec;
    RedisSubscriber sub(loop, s, rec.hooks());
    sub.start();
    REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));

    const std::string ch = FakeRedis::bulk("replication:events");
    const std::vector<std::string> malformed = {
        "*2\r\n$7\r\nmessage\r\n" + ch,                             // no payload
        "*3\r\n$7\r\nmessage\r\n" + ch + ":42\r\n",                 // an integer payload
        "*3\r\n$7\r\nmessage\r\n" + ch + "$-1\r\n",                 // a nil payload
        "*3\r\n$7\r\nmessage\r\n" + ch + "*1\r\n$1\r\nx\r\n",       // an array payload
        "*3\r\n$7\r\nmessage\r\n" + ch + "+status\r\n",             // a status, not a bulk string
        "*4\r\n$7\r\nmessage\r\n" + ch + "$1\r\nx\r\n$1\r\ny\r\n",  // one element too many
        "*3\r\n$7\r\nMESSAGE\r\n" + ch + "$1\r\nx\r\n",             // not the exact word
        FakeRedis::push_message("message", "replication:events", FakeRedis::bulk(std::string(17, 'x'))),  // too large
        "*3\r\n$9\r\nsubscribe\r\n" + ch + "$1\r\n1\r\n",  // a confirmation without its count
    };
    for (const std::string& m : malformed) redis.push_raw(m);
    redis.publish("replication:events", std::string(16, 'y'));  // exactly the limit: delivered
    REQUIRE(run_until(loop, [&] { return rec.messages.size() == 1; }));
    CHECK(rec.messages[0] == std::string(16, 'y'));
    CHECK(sub.counters().dropped == malformed.size());
    CHECK(sub.subscribed());
    CHECK(rec.lost == 0);
    CHECK(redis.accepted == 1);
}

TEST_CASE("redis subscriber: a push hiredis 0.14 cannot take ends the connection, never the process", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    Recorder rec;
    RedisSubscriber sub(loop, subscriber_settings_for(redis.port), rec.hooks());
    sub.start();
    REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));

    const std::string ch = FakeRedis::bulk("replication:events");
    std::string push;
    std::string expected;
    // hiredis 0.14 alone: assert(reply->elements >= 2)
    SECTION("an empty array") {
        push = "*0\r\n";
        expected = "a push reply of 0 elements";
    }
    SECTION("an array of one") {
        push = "*1\r\n$7\r\nmessage\r\n";
        expected = "a push reply of 1 elements";
    }
    // hiredis 0.14 alone: assert(element[0]->type == REDIS_REPLY_STRING)
    SECTION("a first element that is not a bulk string") {
        push = "*3\r\n:1\r\n" + ch + "$1\r\nx\r\n";
        expected = "a push reply of an unexpected kind";
    }
    SECTION("a first element that is an array") {
        push = "*3\r\n*1\r\n$1\r\nx\r\n" + ch + "$1\r\nx\r\n";
        expected = "a push reply of an unexpected kind";
    }
    // hiredis 0.14 alone: assert(element[1]->type == REDIS_REPLY_STRING)
    SECTION("a channel that is not a bulk string") {
        push = "*3\r\n$7\r\nmessage\r\n:5\r\n$1\r\nx\r\n";
        expected = "a push reply of an unexpected kind";
    }
    // hiredis 0.14 alone: reads element[2] of an unsubscribe, asserts it is an integer
    SECTION("an unsubscribe we never asked for") {
        push = "*2\r\n$11\r\nunsubscribe\r\n" + ch;
        expected = "a push reply of an unexpected kind";
    }
    // hiredis 0.14 alone: dropped or handed to a stale callback
    SECTION("a pong") {
        push = "*2\r\n$4\r\npong\r\n$0\r\n\r\n";
        expected = "a push reply of an unexpected kind";
    }
    SECTION("a message for another channel") {
        push = FakeRedis::push_message("message", "other", FakeRedis::bulk("x"));
        expected = "a push reply for a channel not subscribed";
    }
    SECTION("a pattern message") {
        push = "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n" + ch + "$1\r\nx\r\n";
        expected = "a push reply of an unexpected kind";
    }
    SECTION("a bulk string") {
        push = "$3\r\nabc\r\n";
        expected = "a reply nobody asked for";
    }
    SECTION("an integer") {
        push = ":1\r\n";
        expected = "a reply nobody asked for";
    }
    SECTION("a nil") {
        push = "*-1\r\n";
        expected = "a reply nobody asked for";
    }
    SECTION("an error") {
        push = "-ERR something\r\n";
        expected = "server answered: ERR something";
    }
    SECTION("an array too long") {
        push = "*100000\r\n";
        expected = "an array of 100000 elements";
    }
    redis.push_raw(push);
    REQUIRE(run_until(loop, [&] { return rec.lost == 1; }));
    CHECK_THAT(rec.events.back(), Catch::Contains(expected));
    CHECK_FALSE(sub.subscribed());
    REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
    CHECK(rec.subscribed == 2);
    CHECK(rec.lost == 1);
    CHECK(redis.accepted == 2);
    redis.publish("replication:events", "still here");
    REQUIRE(run_until(loop, [&] { return rec.messages.size() == 1; }));
}

TEST_CASE("redis subscriber: a server that goes away is one loss, however long it stays away", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    auto redis = std::make_unique<FakeRedis>(loop);
    redis->behaviour = FakeRedis::Behaviour::server;
    const std::uint16_t port = redis->port;
    Recorder rec;
    RedisSubscriber sub(loop, subscriber_settings_for(port), rec.hooks());
    sub.start();
    REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));

    SECTION("its connection closed (a restart)") {
        redis->drop_connections();
        REQUIRE(run_until(loop, [&] { return rec.lost == 1; }));
        CHECK(rec.events.back() == "lost:Server closed the connection");
        REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
    }
    SECTION("gone for a while: failed attempts are not more losses") {
        redis.reset();
        REQUIRE(run_until(loop, [&] { return rec.lost == 1; }));
        REQUIRE(run_until(
            loop, [&] { return sub.last_error() == "connect: Connection refused" && sub.counters().lost == 1; }));
        // Let several attempts fail (backoff 10, 20, 40, 40 ms...).
        const auto until = std::chrono::steady_clock::now() + 200ms;
        run_until(loop, [&] { return std::chrono::steady_clock::now() > until; });
        CHECK(rec.lost == 1);
        redis = std::make_unique<FakeRedis>(loop, 8, port);
        redis->behaviour = FakeRedis::Behaviour::server;
        REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
    }
    SECTION("it stops answering (a hung server or a stalled link): the heartbeat finds out") {
        redis->behaviour = FakeRedis::Behaviour::silent;
        REQUIRE(run_until(loop, [&] { return rec.lost == 1; }));
        CHECK(rec.events.back() == "lost:no reply within 300ms");
        redis->behaviour = FakeRedis::Behaviour::server;
        REQUIRE(run_until(loop, [&] { return sub.subscribed(); }));
    }
    CHECK(rec.lost == 1);
    CHECK(rec.subscribed == 2);
    CHECK(rec.events.front() == "subscribed");
    CHECK(rec.events.back() == "subscribed");
    redis->publish("replication:events", "again");
    REQUIRE(run_until(loop, [&] { return rec.messages.size() == 1; }));
}

TEST_CASE("redis subscriber: a hook may destroy the subscriber", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    std::unique_ptr<RedisSubscriber> sub;
    int calls = 0;
    RedisSubscriber::Hooks hooks;

    SECTION("on_subscribed") {
        hooks.on_subscribed = [&] {
            ++calls;
            sub.reset();
        };
        sub = std::make_unique<RedisSubscriber>(loop, subscriber_settings_for(redis.port), hooks);
        sub->start();
    }
    SECTION("on_message, with more messages in the same read") {
        hooks.on_message = [&](std::string_view) {
            ++calls;
            sub.reset();
        };
        sub = std::make_unique<RedisSubscriber>(loop, subscriber_settings_for(redis.port), hooks);
        sub->start();
        REQUIRE(run_until(loop, [&] { return sub->subscribed(); }));
        redis.push_raw(FakeRedis::push_message("message", "replication:events", FakeRedis::bulk("1")) +
                       FakeRedis::push_message("message", "replication:events", FakeRedis::bulk("2")));
    }
    SECTION("on_lost") {
        hooks.on_lost = [&](const std::string&) {
            ++calls;
            sub.reset();
        };
        sub = std::make_unique<RedisSubscriber>(loop, subscriber_settings_for(redis.port), hooks);
        sub->start();
        REQUIRE(run_until(loop, [&] { return sub->subscribed(); }));
        redis.drop_connections();
    }
    REQUIRE(run_until(loop, [&] { return sub == nullptr; }));
    run_until(
        loop, [] { return false; }, 50ms);
    CHECK(calls == 1);
}

TEST_CASE("redis connection: a subscribed connection takes no other command", "[redis]") {
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::server;
    RedisConnection c(loop, RedisTarget{false, "127.0.0.1", redis.port, {}}, {}, {});
    int pushes = 0;
    c.subscribe("ch", [&](const RedisReply&) { ++pushes; });
    CHECK(c.subscribed());
    CHECK(c.outstanding() == 1);  // the confirmation
    std::string failure;
    c.command({"GET", "k"}, [&](const RedisReply& r) { failure = std::string(r.failure()); });
    CHECK(failure.empty());  // never inside command()
    REQUIRE(run_until(loop, [&] { return !failure.empty() && pushes == 1; }));
    CHECK(failure == "a subscribed connection takes no other commands");
    CHECK(c.outstanding() == 0);
    CHECK(c.open());
    CHECK(redis.commands.size() == 1);
}

// RedisConnection (daemon/redis/redis_connection.hpp): hiredis' async API on the
// daemon's EventLoop, against the in-process fake Redis (fake_redis.hpp): replies
// as callbacks, hiredis' formatting (binary-safe), pipelining in order, the
// connect and reply timeouts, garbage and unsolicited replies, a closing server,
// and what a callback may do to its own connection.
#include <catch2/catch.hpp>

#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/redis/redis_connection.hpp"
#include "fake_redis.hpp"
#include "loop_helpers.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace std::chrono_literals;
using testing::FakeRedis;

using regiond::daemon::test::run_until;

namespace {

RedisTarget loopback(std::uint16_t port) {
    RedisTarget t;
    t.address = "127.0.0.1";
    t.port = port;
    return t;
}

RedisConnectionSettings quick() {
    RedisConnectionSettings s;
    s.connect_timeout = 300ms;
    s.reply_timeout = 300ms;
    return s;
}

// What one command's callback saw.
struct Outcome {
    bool called = false;
    bool arrived = false;
    int type = 0;
    std::string text;
    std::string failure;
};

RedisConnection::ReplyCallback record(Outcome& out) {
    return [&out](const RedisReply& r) {
        REQUIRE_FALSE(out.called);  // exactly once
        out.called = true;
        out.arrived = r.arrived();
        out.failure = std::string(r.failure());
        out.text = std::string(r.text());
        out.type = r.raw() != nullptr ? r.raw()->type : 0;
    };
}

// A port nobody listens on.
std::uint16_t closed_port(EventLoop& loop) {
    FakeRedis gone(loop);
    return gone.port;
}

}  // namespace

TEST_CASE("redis connection: replies arrive as callbacks; hiredis formats binary-safe commands", "[redis]") {
    EventLoop loop;
    FakeRedis redis(loop);
    bool connected = false;
    RedisConnection c(loop, loopback(redis.port), quick(),
                      {.on_connected = [&] { connected = true; }, .on_closed = {}});
    Outcome pong;
    c.command({"PING"}, record(pong));
    CHECK_FALSE(pong.called);  // never from inside command()
    REQUIRE(run_until(loop, [&] { return pong.called; }));
    CHECK(connected);
    CHECK(c.connected());
    CHECK(pong.arrived);
    CHECK(pong.type == REDIS_REPLY_STATUS);
    CHECK(pong.text == "PONG");
    CHECK(c.outstanding() == 0);

    redis.behaviour = FakeRedis::Behaviour::echo;
    const std::string awkward("line\r\n*1\r\n$3\r\n\0nul", 19);
    Outcome echo;
    c.command({"ECHO", awkward}, record(echo));
    REQUIRE(run_until(loop, [&] { return echo.called; }));
    CHECK(echo.type == REDIS_REPLY_STRING);
    CHECK(echo.text == awkward);
    REQUIRE(redis.commands.size() == 2);
    CHECK(redis.commands[1] == std::vector<std::string>{"ECHO", awkward});
}

TEST_CASE("redis connection: pipelined commands are answered in order", "[redis]") {
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::echo;
    constexpr std::size_t kCommands = 200;
    redis.answer_after = kCommands;  // nothing is answered until all have arrived
    RedisConnection c(loop, loopback(redis.port), quick(), {});
    std::vector<std::string> answers;
    for (std::size_t i = 0; i < kCommands; ++i) {
        const std::string word = "value-" + std::to_string(i);
        c.command({"ECHO", word}, [&answers](const RedisReply& r) {
            REQUIRE(r.arrived());
            answers.emplace_back(r.text());
        });
    }
    CHECK(c.outstanding() == kCommands);
    REQUIRE(run_until(loop, [&] { return answers.size() == kCommands; }));
    CHECK(redis.largest_batch == kCommands);
    for (std::size_t i = 0; i < kCommands; ++i) CHECK(answers[i] == "value-" + std::to_string(i));
    CHECK(c.outstanding() == 0);
}

TEST_CASE("redis connection: no reply in time fails every outstanding command and closes", "[redis]") {
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::silent;
    std::vector<std::string> closed;
    RedisConnectionSettings s = quick();
    s.reply_timeout = 100ms;
    RedisConnection c(loop, loopback(redis.port), s,
                      {.on_connected = {}, .on_closed = [&](const std::string& why) { closed.push_back(why); }});
    Outcome first, second;
    c.command({"PING"}, record(first));
    c.command({"PING"}, record(second));
    const auto started = std::chrono::steady_clock::now();
    REQUIRE(run_until(loop, [&] { return second.called; }));
    CHECK(std::chrono::steady_clock::now() - started >= 100ms);
    CHECK_FALSE(first.arrived);
    CHECK(first.failure == "no reply within 100ms");
    CHECK(second.failure == "no reply within 100ms");
    CHECK(closed == std::vector<std::string>{"no reply within 100ms"});
    CHECK_FALSE(c.open());
    CHECK(c.close_reason() == "no reply within 100ms");

    // A command on the closed connection fails too, on the loop.
    Outcome late;
    c.command({"PING"}, record(late));
    CHECK_FALSE(late.called);
    REQUIRE(run_until(loop, [&] { return late.called; }));
    CHECK(late.failure == "no reply within 100ms");
}

TEST_CASE("redis connection: a connect that hangs times out", "[redis]") {
    EventLoop loop;
    // A listener that never accepts, its accept queue filled by other connects:
    // the kernel drops further SYNs, so our connect stays in progress.
    shm::UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    REQUIRE(::listen(listener.get(), 0) == 0);
    std::vector<shm::UniqueFd> fillers;
    for (int i = 0; i < 4; ++i) {
        fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        (void)::connect(fillers.back().get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
    }
    RedisConnectionSettings s = quick();
    s.connect_timeout = 150ms;
    std::string closed;
    RedisConnection c(loop, loopback(ntohs(address.sin_port)), s,
                      {.on_connected = {}, .on_closed = [&](const std::string& why) { closed = why; }});
    Outcome pong;
    c.command({"PING"}, record(pong));
    REQUIRE(run_until(loop, [&] { return pong.called; }));
    CHECK_FALSE(c.connected());
    CHECK(pong.failure == "connect timed out after 150ms");
    CHECK(closed == "connect timed out after 150ms");
}

TEST_CASE("redis connection: nobody listening fails the commands with the reason", "[redis]") {
    EventLoop loop;
    const std::uint16_t port = closed_port(loop);
    RedisConnection c(loop, loopback(port), quick(), {});
    Outcome pong;
    c.command({"PING"}, record(pong));
    CHECK_FALSE(pong.called);
    REQUIRE(run_until(loop, [&] { return pong.called; }));
    CHECK_FALSE(pong.arrived);
    CHECK(pong.failure == "connect: Connection refused");
}

TEST_CASE("redis connection: what the server sends cannot crash the daemon", "[redis]") {
    EventLoop loop;
    FakeRedis redis(loop);
    std::string expected;
    RedisConnectionSettings s = quick();
    SECTION("not RESP") {
        redis.behaviour = FakeRedis::Behaviour::garbage;
        expected = "Protocol error";
    }
    SECTION("a reply nobody asked for (hiredis 0.14 alone would abort)") {
        redis.replies = {"+PONG\r\n+PONG\r\n"};
        expected = "a reply nobody asked for";
    }
    SECTION("an array too long to allocate") {
        redis.replies = {"*2000000000\r\n"};
        expected = "an array of 2000000000 elements";
    }
    SECTION("a reply that never ends") {
        s.max_buffered_bytes = 64 * 1024;
        redis.replies = {"$1000000000\r\n" + std::string(300'000, 'x')};
        expected = "a reply larger than 64 KiB";
    }
    SECTION("nesting deeper than hiredis allows") {
        std::string nested;
        for (int i = 0; i < 20; ++i) nested += "*1\r\n";
        redis.replies = {nested + ":1\r\n"};
        expected = "nested multi bulk replies with depth > 7";
    }
    std::string closed;
    RedisConnection c(loop, loopback(redis.port), s,
                      {.on_connected = {}, .on_closed = [&](const std::string& why) { closed = why; }});
    Outcome first, second;
    c.command({"PING"}, record(first));
    c.command({"PING"}, record(second));
    REQUIRE(run_until(loop, [&] { return !closed.empty(); }));
    CHECK_THAT(closed, Catch::Contains(expected));
    CHECK(first.called);
    CHECK(second.called);  // answered (two PONGs each) or failed: never left hanging
    CHECK_FALSE(c.open());
}

TEST_CASE("redis connection: a server that closes fails the outstanding commands", "[redis]") {
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::close;
    std::string closed;
    RedisConnection c(loop, loopback(redis.port), quick(),
                      {.on_connected = {}, .on_closed = [&](const std::string& why) { closed = why; }});
    Outcome pong;
    c.command({"PING"}, record(pong));
    REQUIRE(run_until(loop, [&] { return pong.called; }));
    CHECK_FALSE(pong.arrived);
    CHECK(pong.failure == "Server closed the connection");
    CHECK(closed == pong.failure);

    // An idle connection the server drops: closed, reported, no command involved.
    redis.behaviour = FakeRedis::Behaviour::script;
    std::string idle_closed;
    RedisConnection idle(loop, loopback(redis.port), quick(),
                         {.on_connected = {}, .on_closed = [&](const std::string& why) { idle_closed = why; }});
    REQUIRE(run_until(loop, [&] { return idle.connected() && redis.accepted == 2; }));
    redis.drop_connections();
    REQUIRE(run_until(loop, [&] { return !idle.open(); }));
    CHECK(idle_closed == "Server closed the connection");
}

TEST_CASE("redis connection: a callback may destroy its connection or issue more commands", "[redis]") {
    EventLoop loop;
    FakeRedis redis(loop);
    redis.behaviour = FakeRedis::Behaviour::echo;
    redis.answer_after = 3;  // all three answers in one read

    SECTION("destroyed in the first of three callbacks: the others are dropped") {
        auto c = std::make_unique<RedisConnection>(loop, loopback(redis.port), quick(), RedisConnection::Hooks{});
        int calls = 0;
        for (int i = 0; i < 3; ++i)
            c->command({"ECHO", "x"}, [&](const RedisReply&) {
                ++calls;
                c.reset();
            });
        REQUIRE(run_until(loop, [&] { return c == nullptr; }));
        run_until(
            loop, [] { return false; }, 50ms);
        CHECK(calls == 1);
    }
    SECTION("destroyed in a failure callback") {
        redis.behaviour = FakeRedis::Behaviour::close;
        auto c = std::make_unique<RedisConnection>(loop, loopback(redis.port), quick(), RedisConnection::Hooks{});
        int calls = 0;
        for (int i = 0; i < 3; ++i)
            c->command({"ECHO", "x"}, [&](const RedisReply&) {
                ++calls;
                c.reset();
            });
        REQUIRE(run_until(loop, [&] { return c == nullptr; }));
        run_until(
            loop, [] { return false; }, 50ms);
        CHECK(calls == 1);
    }
    SECTION("a new command from inside a callback") {
        redis.answer_after = 1;
        RedisConnection c(loop, loopback(redis.port), quick(), {});
        std::vector<std::string> seen;
        std::function<void(const RedisReply&)> next = [&](const RedisReply& r) {
            seen.emplace_back(r.text());
            if (seen.size() < 5) c.command({"ECHO", std::to_string(seen.size())}, next);
        };
        c.command({"ECHO", "0"}, next);
        REQUIRE(run_until(loop, [&] { return seen.size() == 5; }));
        CHECK(seen == std::vector<std::string>{"0", "1", "2", "3", "4"});
    }
    SECTION("destroyed with commands outstanding: no callback afterwards") {
        redis.behaviour = FakeRedis::Behaviour::silent;
        int calls = 0;
        {
            RedisConnection c(loop, loopback(redis.port), quick(), {});
            c.command({"PING"}, [&](const RedisReply&) { ++calls; });
            REQUIRE(run_until(loop, [&] { return !redis.commands.empty(); }));
        }
        run_until(
            loop, [] { return false; }, 400ms);  // past the reply timeout
        CHECK(calls == 0);
    }
}

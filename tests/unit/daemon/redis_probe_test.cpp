// The Redis health check (daemon/redis_probe.hpp) against a tiny fake Redis
// served from the same event loop: PING/PONG, AUTH, error replies, a server that
// goes away, and the hysteresis.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>

#include "daemon/log.hpp"
#include "daemon/redis_probe.hpp"
#include "shm/unique_fd.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace std::chrono_literals;

namespace {

// Answers each complete RESP command in its input with the next reply of a
// script (the last one repeats): "+PONG", "+OK", "-NOAUTH ...".
class FakeRedis {
public:
    explicit FakeRedis(EventLoop& loop) : loop_(loop) {
        listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port = ntohs(address.sin_port);
        REQUIRE(::listen(listener_.get(), 8) == 0);
        loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept(); });
    }
    ~FakeRedis() { stop(); }

    void stop() {
        for (auto& [fd, c] : connections_) {
            loop_.remove(fd);
            ::close(fd);
        }
        connections_.clear();
        if (listener_) {
            loop_.remove(listener_.get());
            listener_.reset();
        }
    }

    std::uint16_t port = 0;
    std::vector<std::string> replies = {"+PONG"};
    std::vector<std::string> commands;  // first word of each command seen

private:
    void accept() {
        const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        connections_[fd] = {};
        loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { read(fd); });
    }
    void read(int fd) {
        char buffer[512];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
            loop_.remove(fd);
            ::close(fd);
            connections_.erase(fd);
            return;
        }
        std::string& in = connections_[fd];
        in.append(buffer, static_cast<std::size_t>(n));
        // Commands are "*N\r\n" then N bulk strings "$len\r\nword\r\n".
        for (;;) {
            std::size_t pos = 0;
            if (in.empty() || in[0] != '*') return;
            auto line_end = in.find("\r\n", pos);
            if (line_end == std::string::npos) return;
            const int words = std::stoi(in.substr(1, line_end - 1));
            pos = line_end + 2;
            std::string first;
            for (int w = 0; w < words; ++w) {
                line_end = in.find("\r\n", pos);
                if (line_end == std::string::npos) return;
                const std::size_t len = std::stoul(in.substr(pos + 1, line_end - pos - 1));
                pos = line_end + 2;
                if (in.size() < pos + len + 2) return;
                if (w == 0) first = in.substr(pos, len);
                pos += len + 2;
            }
            in.erase(0, pos);
            commands.push_back(first);
            const std::string reply = replies.at(std::min(replied_, replies.size() - 1)) + "\r\n";
            ++replied_;
            [[maybe_unused]] const ssize_t sent = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
        }
    }

    EventLoop& loop_;
    shm::UniqueFd listener_;
    std::map<int, std::string> connections_;
    std::size_t replied_ = 0;
};

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

bool run_until(EventLoop& loop, const std::function<bool()>& done, std::chrono::milliseconds timeout = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
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
    CHECK(std::all_of(redis.commands.begin(), redis.commands.end(), [](const auto& c) { return c == "PING"; }));

    redis.stop();
    REQUIRE(run_until(loop, [&] { return !probe.healthy(); }));
    CHECK(changes == 2);
    CHECK_FALSE(probe.last_error().empty());
}

TEST_CASE("redis probe: AUTH and SELECT come first on a new connection", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.replies = {"+OK", "+OK", "+PONG"};
    RedisProbeSettings s = settings_for(redis.port);
    s.address.password = "s3cret";
    s.address.db = 2;
    RedisProbe probe(loop, s, {});
    probe.start();
    REQUIRE(run_until(loop, [&] { return probe.healthy(); }));
    REQUIRE(redis.commands.size() >= 3);
    CHECK(redis.commands[0] == "AUTH");
    CHECK(redis.commands[1] == "SELECT");
    CHECK(redis.commands[2] == "PING");
}

TEST_CASE("redis probe: an error reply is a failure that names the server's answer", "[redis]") {
    QuietLog quiet;
    EventLoop loop;
    FakeRedis redis(loop);
    redis.replies = {"-NOAUTH Authentication required."};
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

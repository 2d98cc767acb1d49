#include <catch2/catch.hpp>

#include "config/redis_url.hpp"

using regiond::config::parse_redis_url;
using regiond::config::RedisEndpoint;

namespace {

RedisEndpoint parsed_redis_url(std::string_view url) {
    auto result = parse_redis_url(url);
    INFO(result.error());
    REQUIRE(result.has_value());
    return result.value();
}

std::string redis_url_error(std::string_view url) {
    auto result = parse_redis_url(url);
    REQUIRE_FALSE(result.has_value());
    return result.error();
}

}  // namespace

TEST_CASE("redis:// URLs", "[config][redis]") {
    const auto plain = parsed_redis_url("redis://10.0.0.2:6379");
    CHECK(plain.transport == RedisEndpoint::Transport::tcp);
    CHECK(plain.host == "10.0.0.2");
    CHECK(plain.port == 6379);
    CHECK_FALSE(plain.password.has_value());
    CHECK(plain.db == 0);

    const auto full = parsed_redis_url("redis://:s3cret@cache.example:6380/3");
    CHECK(full.host == "cache.example");
    CHECK(full.port == 6380);
    CHECK(full.password == "s3cret");
    CHECK(full.db == 3);

    CHECK(parsed_redis_url("redis://[::1]:6379").host == "::1");
    CHECK(parsed_redis_url("redis://:p%40ss@h:1").password == "p@ss");
    CHECK(parsed_redis_url("redis://:p@ss@h:1").password == "p@ss");  // the last '@' ends the password
    CHECK(parsed_redis_url("redis://h:1/").db == 0);
    CHECK(parsed_redis_url("REDIS://h:1").port == 1);
}

TEST_CASE("unix:// URLs", "[config][redis]") {
    const auto endpoint = parsed_redis_url("unix:///run/redis/redis.sock");
    CHECK(endpoint.transport == RedisEndpoint::Transport::unix_socket);
    CHECK(endpoint.socket_path == "/run/redis/redis.sock");
}

TEST_CASE("bad Redis URLs are refused without repeating them", "[config][redis]") {
    const std::pair<std::string_view, std::string_view> cases[] = {
        {"", "empty"},
        {"http://h:1", "unknown scheme"},
        {"rediss://h:1", "TLS"},
        {"redis://h", "missing :port"},
        {"redis://:1", "missing host"},
        {"redis://h:0", "port"},
        {"redis://h:65536", "port"},
        {"redis://h:port", "port"},
        {"redis://h:1/x", "database"},
        {"redis://h:1?db=2", "query"},
        {"redis://user:pw@h:1", "only a password"},
        {"redis://:@h:1", "password"},
        {"redis://:pw%zz@h:1", "percent-encoding"},
        {"redis://[::1:1", "\"]\""},
        {"redis://ho st:1", "host"},
        {"unix://run/redis.sock", "absolute path"},
        {"unix:///run/", "directory"},
    };
    for (const auto& [url, reason] : cases) {
        INFO(url);
        const std::string message = redis_url_error(url);
        CHECK_THAT(message, Catch::Contains(std::string(reason)));
        CHECK_THAT(message, Catch::Contains("redis://[:password@]host:port[/db]"));
        if (url.size() > 8) CHECK_THAT(message, !Catch::Contains(std::string(url)));
    }
    CHECK_THAT(redis_url_error("redis://:hunter2@h"), !Catch::Contains("hunter2"));
}

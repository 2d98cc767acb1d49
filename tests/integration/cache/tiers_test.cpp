// cached_read's tiers end to end (issue 9): the local replica, this host's hot
// cache (read by the client in the segment, without a message to the
// daemon), the region's Redis seen from a second daemon of the same region,
// an admin flush, and the query that is part of every hit. Real daemons on
// copies of the cluster's eu-west-1 config; values checked by value.
#include <catch2/catch.hpp>

#include <regiond/client.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "cache_fixture.hpp"
#include "md5.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
using namespace regiond::testing::cache;
using Catch::Contains;
using Catch::StartsWith;
using Rows = std::vector<std::vector<std::string>>;

// Test names keep any ": " near their start (see consistency_test.cpp: Catch2
// 2.13 aborts when a wrapped name's first ": " is past the line width).
TEST_CASE(
    "tiers: eu-west-1/replica, then cache:local from the segment; a second daemon of the region gets "
    "cache:redis, then cache:local; after a flush cache:redis again",
    "[cache][tiers]") {
    ensure_schema();
    const Host eu(kEu);
    const Host eu2(kEu);  // a second host of the region: its own sockets and segment, the same Redis
    wait_vouched(eu);
    wait_vouched(eu2);
    const std::string key = unique_key("tiers");
    put_row(key, "alpha");
    const Rows want{{"alpha", md5_hex("alpha")}};
    const std::string sql = select_sql();

    // 1. A miss everywhere: the local replica answers, and the value is stored.
    const std::uint64_t misses = eu.counter("cache_misses");
    const std::uint64_t fills = eu.counter("cache_fills");
    const Answer first = cached(eu, key, sql, {key});
    INFO("first read: " << first.describe() << "\n" << log_tail(eu));
    REQUIRE(first.status == 0);
    CHECK(first.served_by == kEu + "/replica");
    CHECK_THAT(first.route_reason, StartsWith("cache miss") && Contains("not in Redis"));
    CHECK(first.rows == want);
    CHECK(eu.counter("cache_misses") == misses + 1);
    CHECK(eu.counter("cache_fills") == fills + 1);
    // Filled before the answer went out (docs/cache.md): in the segment now.
    CHECK(segment_has(segment_name(eu), key));

    // 2. A hit in this process's view of the segment: no request reaches the
    // daemon (its cached_read requests stay put), the answer carries the
    // stored token, and the client's hit is summed into the daemon's counter.
    {
        const std::uint64_t requests = eu.counter("requests_cached_read");
        const std::uint64_t hits = eu.counter("cache_hits_local");
        const regiond::Client client = regiond::Client::connect(eu.socket());
        REQUIRE(client);
        const regiond::Result r = client.cached_read(key, 60s, sql, {key});
        INFO("in-process read: " << r.error() << " " << r.served_by() << ": " << r.route_reason());
        REQUIRE(r.ok());
        CHECK(std::string(r.served_by()) == "cache:local");
        CHECK_THAT(std::string(r.route_reason()), StartsWith("cache:local"));
        REQUIRE(r.nrows() == 1);
        REQUIRE(r.ncols() == 2);
        CHECK(std::string(*r.value(0, 0)) == "alpha");
        CHECK(std::string(*r.value(0, 1)) == md5_hex("alpha"));
        CHECK(std::string(r.token()) == first.token);
        CHECK(eu.counter("requests_cached_read") == requests);
        // Summed from the client's segment now and then: poll while connected.
        wait_counter_above(eu, "cache_hits_local", hits);
    }
    // And through regionctl, a client process of its own.
    const Answer local = cached(eu, key, sql, {key});
    INFO("second read: " << local.describe());
    CHECK(local.served_by == "cache:local");
    CHECK(local.rows == want);
    CHECK(local.token == first.token);

    // 3. The second daemon of eu-west-1: not in its segment, in the region's
    // Redis (where the first daemon's SET went, fire and forget: wait for it).
    REQUIRE(wait_redis(kEu, key, is_set).has_value());
    const std::string segment2 = segment_name(eu2);
    CHECK_FALSE(segment_has(segment2, key));
    const std::uint64_t redis_hits = eu2.counter("cache_hits_redis");
    const Answer from_redis = cached(eu2, key, sql, {key});
    INFO("second daemon, first read: " << from_redis.describe() << "\n" << log_tail(eu2));
    CHECK(from_redis.served_by == "cache:redis");
    CHECK(from_redis.rows == want);
    CHECK(from_redis.token == first.token);
    CHECK(eu2.counter("cache_hits_redis") == redis_hits + 1);
    CHECK(segment_has(segment2, key));
    const Answer local2 = cached(eu2, key, sql, {key});
    INFO("second daemon, second read: " << local2.describe());
    CHECK(local2.served_by == "cache:local");
    CHECK(local2.rows == want);

    // 4. regionctl cache flush (admin socket; the test is the daemon's user):
    // this host's hot cache only, the region's Redis keeps the value.
    const isolation::Command flushed = flush(eu2);
    INFO("cache flush: exit " << flushed.status << ": " << flushed.out << flushed.err);
    REQUIRE(flushed.status == 0);
    CHECK_THAT(flushed.out, Contains("flushed"));
    CHECK_FALSE(segment_has(segment2, key));
    CHECK(hot_cache(eu2)["entries"].num() == 0);
    const Answer after_flush = cached(eu2, key, sql, {key});
    INFO("after the flush: " << after_flush.describe() << "\n" << log_tail(eu2));
    CHECK(after_flush.served_by == "cache:redis");
    CHECK(after_flush.rows == want);
    // The first daemon's segment was not touched.
    CHECK(cached(eu, key, sql, {key}).served_by == "cache:local");
}

TEST_CASE("tiers: the same key with another query is never served the first query's rows, in any tier",
          "[cache][tiers][query]") {
    ensure_schema();
    const Host eu(kEu);
    const Host eu2(kEu);
    wait_vouched(eu);
    wait_vouched(eu2);
    const std::string key = unique_key("query-a");
    const std::string other = unique_key("query-b");
    put_row(key, "alpha");
    put_row(other, "beta");
    const std::string sql = select_sql();
    const std::string sql_b = std::string("select 'B:' || v, md5(v) from ") + kTable + " where k = $1";

    const Answer a = cached(eu, key, sql, {key});
    REQUIRE(a.status == 0);
    REQUIRE(a.rows == Rows{{"alpha", md5_hex("alpha")}});
    REQUIRE(cached(eu, key, sql, {key}).served_by == "cache:local");

    // Other SQL text under the same key: the segment holds the key, but for
    // another query; the database answers.
    const Answer b = cached(eu, key, sql_b, {key});
    INFO("other SQL, same key: " << b.describe() << "\n" << log_tail(eu));
    REQUIRE(b.status == 0);
    CHECK(b.served_by == kEu + "/replica");
    CHECK(b.rows == Rows{{"B:alpha", md5_hex("alpha")}});

    // The same SQL with another parameter under the same key.
    const Answer c = cached(eu, key, sql, {other});
    INFO("same SQL, other parameter, same key: " << c.describe());
    REQUIRE(c.status == 0);
    CHECK(c.served_by == kEu + "/replica");
    CHECK(c.rows == Rows{{"beta", md5_hex("beta")}});

    // And the first query again: the key now holds the last one's value.
    const Answer a2 = cached(eu, key, sql, {key});
    INFO("first query again: " << a2.describe());
    CHECK(a2.served_by == kEu + "/replica");
    CHECK(a2.rows == Rows{{"alpha", md5_hex("alpha")}});

    // Redis: the fills' SETs leave one connection in order; once a2's value
    // is there, the next fill (sql_b) is the last SET, and the region's Redis
    // holds the key for sql_b when it shows. The second daemon then asks for
    // (sql, [key]).
    REQUIRE(wait_redis(kEu, key, [&](const RedisValue& v) {
                return v && v->find("B:' || v") == std::string::npos && v->find(key) != std::string::npos;
            }).has_value());
    const Answer b2 = cached(eu, key, sql_b, {key});
    REQUIRE(b2.rows == Rows{{"B:alpha", md5_hex("alpha")}});
    REQUIRE(wait_redis(kEu, key, [](const RedisValue& v) {
                return v && v->find("B:' || v") != std::string::npos;
            }).has_value());
    const Answer from_redis = cached(eu2, key, sql, {key});
    INFO("second daemon, other query in Redis: " << from_redis.describe() << "\n" << log_tail(eu2));
    REQUIRE(from_redis.status == 0);
    CHECK(from_redis.served_by == kEu + "/replica");
    CHECK_THAT(from_redis.route_reason, Contains("another query"));
    CHECK(from_redis.rows == Rows{{"alpha", md5_hex("alpha")}});
}

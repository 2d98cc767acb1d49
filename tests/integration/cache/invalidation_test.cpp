// Invalidation end to end (issue 9): a write with keys in eu-west-1 evicts
// the keys in ap-northeast-1's segment and Redis; with ap-northeast-1's
// replica paused the invalidated value never comes back (fences), also not
// through a read that was in flight when the invalidation arrived. Real
// daemons for eu-west-1 and ap-northeast-1, forked libregiond clients.
#include <catch2/catch.hpp>

#include <regiond/client.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "../isolation/clients.hpp"
#include "cache_clients.hpp"
#include "cache_fixture.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
using namespace regiond::testing::cache;
using Catch::Contains;
using Catch::StartsWith;
using consistency::format_lsn;
using consistency::ReplayPause;
using consistency::replica_replay_lsn;
using consistency::token_lsn;

namespace {

ReadTally collect(isolation::Children& children, std::chrono::milliseconds timeout) {
    ReadTally all;
    for (const std::string& line : children.collect(timeout)) {
        INFO("a child's report: " << line);
        REQUIRE_NOTHROW(all += ReadTally::parse(line));
    }
    return all;
}

}  // namespace

TEST_CASE(
    "invalidation: a write with key K in eu-west-1 evicts K from ap-northeast-1's segment and Redis; "
    "the next read there is the new value",
    "[cache][invalidation]") {
    ensure_schema();
    const Host eu(kEu);
    const Host ap(kAp);
    wait_vouched(eu);
    wait_vouched(ap);
    const std::string key = unique_key("cross-region");
    put_row(key, "before-write");

    // K is cached in both regions' segments and in ap-northeast-1's Redis.
    read_until_local(ap, key, "before-write");
    read_until_local(eu, key, "before-write");
    const std::string ap_segment = segment_name(ap);
    REQUIRE(segment_has(ap_segment, key));
    REQUIRE(wait_redis(kAp, key, is_set).has_value());

    // ap-northeast-1's replica does not replay the write until the end: the
    // durable row cannot reach ap-northeast-1 meanwhile, so what evicts K
    // there is the fast path (pub/sub) alone.
    ReplayPause pause(kAp);
    const std::uint64_t pubsub = ap.counter("invalidations_received_pubsub");
    const std::uint64_t applied = ap.counter("invalidations_applied");
    const SegmentView eu_view(eu);
    REQUIRE(eu_view.has(key));
    std::string token;
    bool held_after_answer = true;
    {
        const regiond::Client client = regiond::Client::connect(eu.socket());
        REQUIRE(client);
        const regiond::Result w =
            client.write(std::string("update ") + kTable + " set v = $2 where k = $1", {key, "after-write"}, {key});
        // Looked at right after the answer, before the writer's own pub/sub
        // message (a round trip to its region's Redis) or its durable row (a
        // replica poll) can have come back to it: the write's own eviction,
        // before it answered, is what makes this hold every time.
        held_after_answer = eu_view.has(key);
        INFO("write: " << w.error() << " " << w.served_by() << "\n" << log_tail(eu));
        REQUIRE(w.ok());
        CHECK(w.affected() == 1);
        token = std::string(w.token());
    }
    CHECK_FALSE(held_after_answer);

    // ap-northeast-1: out of the segment, out of its Redis, by the message.
    const bool evicted = eventually([&] { return !segment_has(ap_segment, key); }, 10s);
    {
        INFO("ap-northeast-1 still holds K in its segment\n" << log_tail(ap));
        CHECK(evicted);
    }
    const RedisValue in_redis = wait_redis(kAp, key, is_nil);
    CHECK_FALSE(in_redis.has_value());
    CHECK(ap.counter("invalidations_received_pubsub") > pubsub);
    CHECK(ap.counter("invalidations_applied") > applied);
    REQUIRE(replica_replay_lsn(kAp) < token_lsn(token));

    // And the next reads are the new value, in both regions (in
    // ap-northeast-1, whose replica is still behind the write, from the
    // primary after waiting for the replica up to consistency.max_wait).
    const Answer ap_read = cached(ap, key, select_sql(), {key});
    INFO("ap-northeast-1 after the write: " << ap_read.describe() << "\n" << log_tail(ap));
    REQUIRE(ap_read.status == 0);
    CHECK(ap_read.first() == "after-write");
    CHECK(ap_read.served_by != "cache:local");
    const Answer eu_read = cached(eu, key, select_sql(), {key});
    INFO("eu-west-1 after the write: " << eu_read.describe());
    CHECK(eu_read.first() == "after-write");
    // Every cache answer's token is comparable with the write's, and not older
    // than it when the answer shows the write.
    CHECK(token_lsn(ap_read.token) >= token_lsn(token));
    CHECK(token_lsn(eu_read.token) >= token_lsn(token));
    pause.resume();
}

TEST_CASE(
    "refill race: ap-northeast-1's replica paused, a write with K in eu-west-1; once the invalidation "
    "arrived, no read of K in ap-northeast-1 returns the old value; after resume the new one, cached again",
    "[cache][race]") {
    ensure_schema();
    const Host eu(kEu);
    const Host ap(kAp);
    wait_vouched(eu);
    wait_vouched(ap);
    const std::string key = unique_key("refill");
    put_row(key, "old-value");
    read_until_local(ap, key, "old-value");
    REQUIRE(wait_redis(kAp, key, is_set).has_value());

    ReplayPause pause(kAp);
    const std::uint64_t received = ap.counter("invalidations_received");
    const Answer w = update_invalidating(eu, key, "new-value");
    INFO("write: " << w.describe() << "\n" << log_tail(eu));
    REQUIRE(w.status == 0);
    wait_counter_above(ap, "invalidations_received", received);
    // The paused replica still has the old row: every miss that reads it could
    // refill the old value.
    REQUIRE(replica_replay_lsn(kAp) < token_lsn(w.token));

    // Many reads from several processes at once: misses, coalesced misses,
    // reads of the paused replica refused by the fence, hits of whatever was
    // filled. None may be the old value.
    const auto started = std::chrono::steady_clock::now();
    isolation::Children readers(
        6, [&](int) { return expect_reads(ap.socket(), key, select_sql(), "new-value", 30).line(); });
    const ReadTally paused = collect(readers, 120s);
    std::printf("[cache] refill race, replica paused (%.1f s): %s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                paused.summary().c_str());
    std::fflush(stdout);
    {
        INFO(paused.summary() << "\n" << log_tail(ap));
        CHECK(paused.answers == 180);
        CHECK(paused.errors == 0);
        CHECK(paused.bad == 0);
    }
    // The reads ran while the replica was still behind the write.
    CHECK(replica_replay_lsn(kAp) < token_lsn(w.token));
    const Answer shown = cached(ap, key, select_sql(), {key});
    INFO("a read while paused: " << shown.describe());
    CHECK(shown.first() == "new-value");

    pause.resume();
    consistency::wait_replayed(kAp, token_lsn(w.token));
    // Caught up: the new value is cached again and served from the segment.
    read_until_local(ap, key, "new-value");
}

TEST_CASE(
    "refill race: a read of K in flight on ap-northeast-1's paused replica when K's invalidation arrives; "
    "a read of K that starts after the arrival does not get the in-flight read's old value",
    "[cache][race][flight]") {
    ensure_schema();
    const Host eu(kEu);
    const Host ap(kAp);
    wait_vouched(eu);
    wait_vouched(ap);
    const std::string key = unique_key("flight");
    put_row(key, "old-value");
    // A slow query: its read holds the flight open long enough for the write,
    // the invalidation and a second read to happen meanwhile, also on a busy
    // machine. The replica is paused so that the slow read sees the old row
    // whenever it runs.
    const std::string slow_sql = std::string("select v, md5(v) from ") + kTable + ", pg_sleep(2) where k = $1";
    ReplayPause pause(kAp);

    const std::uint64_t misses = ap.counter("cache_misses");
    isolation::Children leader(1, [&](int) { return one_cached_read(ap.socket(), key, slow_sql, {key}); });
    // Counted as it goes to the database: its read is in flight from here on.
    wait_counter_above(ap, "cache_misses", misses);

    const std::uint64_t received = ap.counter("invalidations_received");
    const Answer w = update_invalidating(eu, key, "new-value");
    INFO("write: " << w.describe() << "\n" << log_tail(eu));
    REQUIRE(w.status == 0);
    wait_counter_above(ap, "invalidations_received", received);
    const std::uint64_t arrived_ns = monotonic_ns();

    const std::uint64_t coalesced = ap.counter("cache_misses_coalesced");
    const std::vector<std::string> late_lines = isolation::run_children(
        1, [&](int) { return one_cached_read(ap.socket(), key, slow_sql, {key}); }, 60s);
    const std::vector<std::string> leader_lines = leader.collect(60s);
    const OneCached first = OneCached::parse(leader_lines.at(0));
    const OneCached late = OneCached::parse(late_lines.at(0));
    const bool joined = ap.counter("cache_misses_coalesced") > coalesced;
    std::printf("[cache] in-flight read: %s; the read after the invalidation (%s): %s\n", first.describe().c_str(),
                joined ? "coalesced with it" : "on its own", late.describe().c_str());
    std::fflush(stdout);
    INFO("the read in flight: " << first.describe() << "\nthe read after the invalidation: " << late.describe()
                                << (joined ? " (coalesced with the read in flight)" : "") << "\n"
                                << log_tail(ap));
    // The scenario happened: the second read started after the invalidation
    // arrived and while the first read was still in flight.
    REQUIRE(first.ok);
    REQUIRE(late.started_ns > arrived_ns);
    REQUIRE(late.started_ns < first.ended_ns);
    // The first read began before the write: either value is right for it.
    CHECK((first.value == "old-value" || first.value == "new-value"));
    REQUIRE(late.ok);
    CHECK(late.value == "new-value");
}

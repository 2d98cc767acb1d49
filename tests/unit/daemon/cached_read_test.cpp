// cached_read in the daemon core (CachedReadHandler) on fake endpoints: the
// single flight of concurrent misses, and what happens to its waiters when the
// read's own request goes away or fails. (Without Redis and a durable path the
// hot cache is never vouched for here: every answer comes from the fake
// replica; the tiers themselves are tested against real servers in
// tests/integration/cache.)
#include <catch2/catch.hpp>

#include "embedded_daemon.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace regiond::daemon::test;

namespace {

shm::RequestView cached(const char* key, const char* sql) {
    shm::RequestView r;
    r.op = shm::Op::cached_read;
    r.key = key;
    r.sql = sql;
    return r;
}

std::uint64_t counter(Daemon& d, shm::Counter c) {
    return d.snapshot().counters[static_cast<std::size_t>(c)].second;
}

std::string first_value(const std::optional<shm::Response>& r) {
    if (!r || r->status != shm::Status::ok || r->nrows() == 0) return "<" + error_of(r) + ">";
    return std::string(r->value(0, 0).value_or("NULL"));
}

}  // namespace

TEST_CASE("cached_read: concurrent misses of one key and query are one database read, all get its answer",
          "[daemon][cache]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto a = TestClient::connect(*d, d->config().daemon.socket);
    auto b = TestClient::connect(*d, d->config().daemon.socket);
    a->send(1, cached("k", "select v from t"));
    a->send(2, cached("k", "select v from t"));
    b->send(1, cached("k", "select v from t"));
    REQUIRE(run_until(*d, [&] { return counter(*d, shm::Counter::cache_misses_coalesced) == 2; }));
    CHECK(f.local_replica().jobs.size() == 1);
    const pg::Job& job = f.local_replica().jobs.front().job;
    CHECK(job.want_floor);
    CHECK(job.kind == pg::Job::Kind::read);
    CHECK_THAT(job.route_reason, Catch::StartsWith("cache miss"));

    f.local_replica().complete_next(ok_outcome("eu-west-1/replica", {"v"}, {{"x1"}}, kMaxChunk));
    auto from_a = wait_responses(*d, *a, 2);
    CHECK(first_value(from_a[1]) == "x1");
    CHECK(first_value(from_a[2]) == "x1");
    CHECK(first_value(b->wait_response(*d, 1)) == "x1");
    CHECK(counter(*d, shm::Counter::cache_misses) == 1);

    // The flight is over: the next miss reads again.
    a->send(3, cached("k", "select v from t"));
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
    f.local_replica().complete_next(ok_outcome("eu-west-1/replica", {"v"}, {{"x2"}}, kMaxChunk));
    CHECK(first_value(a->wait_response(*d, 3)) == "x2");
}

TEST_CASE("cached_read: the same key for another query is another read", "[daemon][cache]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, cached("k", "select 'mine'"));
    c->send(2, cached("k", "select 'theirs'"));
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 2; }));
    CHECK(counter(*d, shm::Counter::cache_misses_coalesced) == 0);
    CHECK(f.local_replica().jobs[0].job.sql == "select 'mine'");
    CHECK(f.local_replica().jobs[1].job.sql == "select 'theirs'");
    f.local_replica().complete_next(ok_outcome("eu-west-1/replica", {"v"}, {{"mine"}}, kMaxChunk));
    f.local_replica().complete_next(ok_outcome("eu-west-1/replica", {"v"}, {{"theirs"}}, kMaxChunk));
    CHECK(first_value(c->wait_response(*d, 1)) == "mine");
    CHECK(first_value(c->wait_response(*d, 2)) == "theirs");
}

TEST_CASE("cached_read: when the reading request is cancelled, a waiter takes the read over", "[daemon][cache]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto leader = TestClient::connect(*d, d->config().daemon.socket);
    auto waiter = TestClient::connect(*d, d->config().daemon.socket);
    leader->send(1, cached("k", "select v from t"));
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
    waiter->send(7, cached("k", "select v from t"));
    REQUIRE(run_until(*d, [&] { return counter(*d, shm::Counter::cache_misses_coalesced) == 1; }));

    leader->push(shm::RecordKind::cancel, 1, {});
    REQUIRE(run_until(*d, [&] { return f.local_replica().cancelled.size() == 1; }));
    f.local_replica().complete(f.local_replica().cancelled.front(), cancelled_outcome(kMaxChunk));
    // The waiter's own read goes out, and answers it.
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
    f.local_replica().complete_next(ok_outcome("eu-west-1/replica", {"v"}, {{"y"}}, kMaxChunk));
    CHECK(first_value(waiter->wait_response(*d, 7)) == "y");
}

TEST_CASE("cached_read: when the reading client goes away, a waiter takes the read over", "[daemon][cache]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto waiter = TestClient::connect(*d, d->config().daemon.socket);
    {
        auto leader = TestClient::connect(*d, d->config().daemon.socket);
        leader->send(1, cached("k", "select v from t"));
        REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
        waiter->send(7, cached("k", "select v from t"));
        REQUIRE(run_until(*d, [&] { return counter(*d, shm::Counter::cache_misses_coalesced) == 1; }));
    }  // the leader's process is gone
    REQUIRE(run_until(*d, [&] { return f.local_replica().cancelled.size() == 1; }));
    f.local_replica().complete(f.local_replica().cancelled.front(), cancelled_outcome(kMaxChunk));
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
    f.local_replica().complete_next(ok_outcome("eu-west-1/replica", {"v"}, {{"z"}}, kMaxChunk));
    CHECK(first_value(waiter->wait_response(*d, 7)) == "z");
}

TEST_CASE("cached_read: a SQL error of the shared read is every waiter's answer", "[daemon][cache]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, cached("k", "select nope"));
    c->send(2, cached("k", "select nope"));
    REQUIRE(run_until(*d, [&] { return counter(*d, shm::Counter::cache_misses_coalesced) == 1; }));
    REQUIRE(f.local_replica().jobs.size() == 1);
    f.local_replica().complete_next(error_outcome("column \"nope\" does not exist", false, kMaxChunk));
    auto got = wait_responses(*d, *c, 2);
    CHECK(error_of(got[1]) == "column \"nope\" does not exist");
    CHECK(error_of(got[2]) == "column \"nope\" does not exist");
}

TEST_CASE("cached_read: without a route every waiter gets the route's error, not a timeout", "[daemon][cache]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, cached("k", "select 1"));
    c->send(2, cached("k", "select 1"));
    REQUIRE(run_until(*d, [&] { return counter(*d, shm::Counter::cache_misses_coalesced) == 1; }));
    // The replica fails under the read, and nothing else can take it.
    f.primary().set_health(false);
    f.tokyo_replica().set_health(false);
    f.local_replica().set_health(false);
    f.local_replica().complete_next(error_outcome("connection lost", true, kMaxChunk));
    auto got = wait_responses(*d, *c, 2);
    CHECK_THAT(error_of(got[1]), Catch::StartsWith("no healthy endpoint for reads"));
    CHECK_THAT(error_of(got[2]), Catch::StartsWith("no healthy endpoint for reads"));
}

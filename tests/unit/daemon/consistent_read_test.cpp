// read_consistent through the embedded daemon on fake endpoints: the token
// checks, reading locally at once, waiting for the replica's replay LSN (and
// the fast LSN watch while anyone waits), giving up to the primary, and a
// replica found behind the token at query time.
#include "embedded_daemon.hpp"
#include "shm/base/lsn.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace regiond::daemon::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kCluster = 7713697811223072330ULL;

std::string token(std::uint64_t lsn, std::uint64_t cluster = kCluster) {
    return std::to_string(cluster) + "/" + base::format_lsn(lsn);
}

void send_consistent(TestClient& c, std::uint64_t id, const std::string& tok, std::string_view sql = "select 1") {
    shm::RequestView r;
    r.op = shm::Op::read_consistent;
    r.token = tok;
    r.sql = sql;
    c.send(id, r);
}

std::uint64_t consistent_counter(Daemon& d, shm::Counter c) {
    return d.snapshot().counters[static_cast<std::size_t>(c)].second;
}

struct Cluster {
    Fixture f;
    std::unique_ptr<Daemon> d;
    std::unique_ptr<TestClient> c;

    explicit Cluster(std::chrono::milliseconds max_wait = 50ms) {
        auto config = f.make_config();
        config.consistency.max_wait = max_wait;
        d = f.start(std::move(config));
        for (FakeEndpoint* e : f.backend.endpoints) e->set_system_identifier(kCluster);
        f.primary().set_health(true, 0, 200'000);
        f.local_replica().set_health(true, 0, 500);
        f.tokyo_replica().set_health(true, 0, 220'000);
        c = TestClient::connect(*d, d->config().daemon.socket);
        REQUIRE(c->ok());
    }
};

}  // namespace

TEST_CASE("read_consistent: malformed tokens and another cluster's are errors, never a read", "[daemon][consistent]") {
    Cluster k;
    send_consistent(*k.c, 1, "not-a-token");
    CHECK_THAT(error_of(k.c->wait_response(*k.d, 1)),
               Catch::StartsWith("malformed token \"not-a-token\": a token is SYSTEMID/LSN"));
    send_consistent(*k.c, 2, token(0x100, 12345));
    CHECK(error_of(k.c->wait_response(*k.d, 2)) ==
          "token \"12345/0/100\" is from another cluster (system identifier 12345; this cluster's is " +
              std::to_string(kCluster) + ")");
    CHECK(k.f.local_replica().jobs.empty());
    CHECK(k.f.primary().jobs.empty());
    CHECK(consistent_counter(*k.d, shm::Counter::consistent_reads_failed) == 2);
}

TEST_CASE("read_consistent: an empty token is read_local", "[daemon][consistent]") {
    Cluster k;
    send_consistent(*k.c, 1, "");
    REQUIRE(run_until(*k.d, [&] { return !k.f.local_replica().jobs.empty(); }));
    CHECK(k.f.local_replica().jobs.front().job.min_lsn == 0);
    CHECK(k.f.local_replica().jobs.front().job.route_reason == "local replica");
}

TEST_CASE("read_consistent: the local replica at the token reads at once, with the token as its guard",
          "[daemon][consistent]") {
    Cluster k;
    k.f.local_replica().set_replay_lsn(0x5A3F10);
    send_consistent(*k.c, 1, token(0x59F000));
    REQUIRE(run_until(*k.d, [&] { return !k.f.local_replica().jobs.empty(); }));
    const pg::Job& job = k.f.local_replica().jobs.front().job;
    CHECK(job.min_lsn == 0x59F000);
    CHECK(job.route_reason == "local replica at 0/5A3F10 >= token 0/59F000");
    k.f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
    REQUIRE(k.c->wait_response(*k.d, 1));
    CHECK(consistent_counter(*k.d, shm::Counter::consistent_reads_local) == 1);
}

TEST_CASE("read_consistent: behind but expected soon, it waits and is released by the replay LSN",
          "[daemon][consistent]") {
    Cluster k(5000ms);  // a wait that cannot run out during the test
    k.f.local_replica().set_replay_lsn(0x1000);
    send_consistent(*k.c, 1, token(0x2000));
    send_consistent(*k.c, 2, token(0x3000));
    REQUIRE(run_until(*k.d, [&] { return k.f.local_replica().lsn_watch_fast; }));  // watched closely now
    for (int i = 0; i < 20; ++i) k.d->run_once(1ms);
    CHECK(k.f.local_replica().jobs.empty());
    CHECK(k.f.primary().jobs.empty());

    // Past the first token only: the first is released, the second still waits.
    k.f.local_replica().set_replay_lsn(0x2800);
    REQUIRE(run_until(*k.d, [&] { return k.f.local_replica().jobs.size() == 1; }));
    const pg::Job& first = k.f.local_replica().jobs.front().job;
    CHECK(first.min_lsn == 0x2000);
    CHECK_THAT(first.route_reason,
               Catch::StartsWith("waited ") && Catch::EndsWith(" for the local replica (at 0/2800 >= token 0/2000)"));
    CHECK(k.f.local_replica().lsn_watch_fast);
    k.f.local_replica().set_replay_lsn(0x3000);
    REQUIRE(run_until(*k.d, [&] { return k.f.local_replica().jobs.size() == 2; }));
    CHECK_FALSE(k.f.local_replica().lsn_watch_fast);  // nobody waits any more
    k.f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
    k.f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"2"}}, kMaxChunk));
    REQUIRE(k.c->wait_response(*k.d, 1));
    REQUIRE(k.c->wait_response(*k.d, 2));
    CHECK(consistent_counter(*k.d, shm::Counter::consistent_reads_waited) == 2);
    CHECK(k.d->snapshot().consistent_wait.count == 2);
}

TEST_CASE("read_consistent: a wait that runs out goes to the primary and says so", "[daemon][consistent]") {
    Cluster k(30ms);
    k.f.local_replica().set_replay_lsn(0x1000);
    send_consistent(*k.c, 1, token(0x2000));
    REQUIRE(run_until(*k.d, [&] { return !k.f.primary().jobs.empty(); }));
    const pg::Job& job = k.f.primary().jobs.front().job;
    CHECK(job.min_lsn == 0);
    CHECK_THAT(job.route_reason, Catch::StartsWith("local replica at 0/1000 < token 0/2000 after waiting ") &&
                                     Catch::EndsWith("; primary"));
    CHECK_FALSE(k.f.local_replica().lsn_watch_fast);
    k.f.primary().complete_next(test::ok_outcome("us-east-1/primary", {"v"}, {{"1"}}, kMaxChunk));
    REQUIRE(k.c->wait_response(*k.d, 1));
    CHECK(consistent_counter(*k.d, shm::Counter::consistent_reads_to_primary) == 1);
}

TEST_CASE("read_consistent: a replica behind the token at query time sends the read to the primary",
          "[daemon][consistent]") {
    Cluster k;
    k.f.local_replica().set_replay_lsn(0x5000);  // polled before it restarted from older WAL
    send_consistent(*k.c, 1, token(0x4000));
    REQUIRE(run_until(*k.d, [&] { return !k.f.local_replica().jobs.empty(); }));
    pg::Outcome behind = test::error_outcome("replica at 0/3000 is behind token 0/4000", false, kMaxChunk);
    behind.behind = true;
    k.f.local_replica().complete_next(std::move(behind));
    REQUIRE(run_until(*k.d, [&] { return !k.f.primary().jobs.empty(); }));
    CHECK(k.f.primary().jobs.front().job.route_reason ==
          "local replica was behind the token when the read ran; primary");
    k.f.primary().complete_next(test::ok_outcome("us-east-1/primary", {"v"}, {{"1"}}, kMaxChunk));
    const auto r = k.c->wait_response(*k.d, 1);
    REQUIRE(r);
    CHECK(r->status == shm::Status::ok);
    CHECK(r->served_by == "us-east-1/primary");
}

TEST_CASE("read_consistent: a request cancelled while it waits ends there and stops the fast watch",
          "[daemon][consistent]") {
    Cluster k(5000ms);
    k.f.local_replica().set_replay_lsn(0x1000);
    send_consistent(*k.c, 1, token(0x2000));
    REQUIRE(run_until(*k.d, [&] { return k.f.local_replica().lsn_watch_fast; }));
    k.c->cancel(1);
    REQUIRE(run_until(*k.d, [&] { return !k.f.local_replica().lsn_watch_fast; }));
    k.f.local_replica().set_replay_lsn(0x3000);
    CHECK_FALSE(run_until(
        *k.d, [&] { return !k.f.local_replica().jobs.empty(); }, 200ms));
    // The id is free again.
    send_consistent(*k.c, 1, token(0x2000));
    REQUIRE(run_until(*k.d, [&] { return !k.f.local_replica().jobs.empty(); }));
}

TEST_CASE("read_consistent: a replay LSN polled before the request is looked at again before the primary",
          "[daemon][consistent]") {
    Cluster k(5000ms);
    // The last poll says far behind, and at 1 byte/s that predicts forever.
    k.f.local_replica().set_replay_rate(1.0);
    k.f.local_replica().set_replay_lsn(0x1000);
    SECTION("the next polls show the write: served locally") {
        send_consistent(*k.c, 1, token(0x2000));
        REQUIRE(run_until(*k.d, [&] { return k.f.local_replica().lsn_watch_fast; }));
        CHECK(k.f.primary().jobs.empty());
        k.f.local_replica().set_replay_lsn(0x1000);  // the poll in flight when it came: not proof
        for (int i = 0; i < 10; ++i) k.d->run_once(1ms);
        CHECK(k.f.primary().jobs.empty());
        k.f.local_replica().set_replay_lsn(0x2400);
        REQUIRE(run_until(*k.d, [&] { return !k.f.local_replica().jobs.empty(); }));
        CHECK_THAT(k.f.local_replica().jobs.front().job.route_reason, Catch::StartsWith("waited "));
        CHECK(k.f.primary().jobs.empty());
    }
    SECTION("a poll sent after it still says behind: judged by that one, the primary") {
        send_consistent(*k.c, 1, token(0x2000));
        REQUIRE(run_until(*k.d, [&] { return k.f.local_replica().lsn_watch_fast; }));
        k.f.local_replica().set_replay_lsn(0x1000);
        k.f.local_replica().set_replay_lsn(0x1001);
        REQUIRE(run_until(*k.d, [&] { return !k.f.primary().jobs.empty(); }));
        CHECK_THAT(
            k.f.primary().jobs.front().job.route_reason,
            Catch::StartsWith("local replica at 0/1001 < token 0/2000 after waiting ") && Catch::EndsWith("; primary"));
        CHECK(k.f.local_replica().jobs.empty());
        CHECK_FALSE(k.f.local_replica().lsn_watch_fast);
    }
}

// The daemon core embedded in the test process on fake PostgreSQL endpoints: the
// real sockets, handshake, rings, routing, backpressure, shutdown and admin
// socket, without servers. The test plays the client with the shm/ building
// blocks and turns the daemon's loop itself (Daemon::run_once).
#include "embedded_daemon.hpp"

#include <sys/mman.h>

#include <fstream>

#include "shm/state_segment.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace regiond::daemon::test;
using namespace std::chrono_literals;

TEST_CASE("handshake, then a read goes to the local replica and the answer comes back", "[daemon]") {
    Fixture f;
    auto d = f.start();
    REQUIRE(f.backend.endpoints.size() == 3);
    CHECK(f.local_replica().started);
    CHECK(f.local_replica().options().display_name == "10.1.0.1:5432");
    f.primary().set_health(true, 0, 200'000);
    f.local_replica().set_health(true, 0, 500);
    f.tokyo_replica().set_health(true, 0, 220'000);

    auto c = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(c->ok());
    CHECK(c->welcome.client_id == 1);
    CHECK(std::string(c->welcome.state_segment) == d->config().daemon.state_segment);
    CHECK(c->welcome.daemon_generation == c->segment->daemon_generation());
    CHECK(d->client_count() == 1);

    c->send(7, shm::Op::read_local, "select $1", {std::string_view("x"), std::nullopt});
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    const pg::Job& job = f.local_replica().jobs.front().job;
    CHECK(job.kind == pg::Job::Kind::read);
    CHECK(job.sql == "select $1");
    REQUIRE(job.params.size() == 2);
    CHECK(job.params[0] == std::optional<std::string>("x"));
    CHECK_FALSE(job.params[1].has_value());
    CHECK(job.deadline > Clock::now() + 20s);  // daemon.request_timeout (30 s) by default

    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"x"}}, kMaxChunk));
    const auto response = c->wait_response(*d, 7);
    REQUIRE(response);
    CHECK(response->status == shm::Status::ok);
    CHECK(response->served_by == "eu-west-1/replica");
    REQUIRE(response->nrows() == 1);
    CHECK(response->value(0, 0) == std::optional<std::string_view>("x"));

    // A write goes to the primary, with the client's own timeout.
    shm::RequestView w;
    w.op = shm::Op::write;
    w.sql = "insert into t values (1)";
    w.timeout_ms = 1500;
    std::vector<std::byte> bytes;
    REQUIRE(shm::encode_request_append(w, bytes));
    c->push(shm::RecordKind::request, 8, bytes);
    REQUIRE(run_until(*d, [&] { return !f.primary().jobs.empty(); }));
    CHECK(f.primary().jobs.front().job.kind == pg::Job::Kind::write);
    CHECK(f.primary().jobs.front().job.deadline < Clock::now() + 2s);
    f.primary().complete_next(test::ok_outcome("us-east-1/primary", {}, {}, kMaxChunk));
    REQUIRE(c->wait_response(*d, 8));

    const StatusSnapshot s = d->snapshot();
    CHECK(s.counters[static_cast<std::size_t>(shm::Counter::requests_read_local)].second == 1);
    CHECK(s.counters[static_cast<std::size_t>(shm::Counter::requests_write)].second == 1);
    CHECK(s.counters[static_cast<std::size_t>(shm::Counter::clients_connected)].second == 1);
}

TEST_CASE("answers that need no database: a malformed token, no route, too large", "[daemon]") {
    Fixture f;
    auto d = f.start();
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(c->ok());

    c->send(1, test::malformed_token_request());
    CHECK_THAT(error_of(c->wait_response(*d, 1)), Catch::StartsWith("malformed token"));
    c->send(2, test::malformed_token_request());
    CHECK_THAT(error_of(c->wait_response(*d, 2)), Catch::StartsWith("malformed token"));

    // Nothing is healthy: the reasons are named.
    f.primary().set_health(false);
    f.local_replica().set_health(true, 7200);
    f.tokyo_replica().set_health(false);
    c->send(3, shm::Op::read_local, "select 1");
    CHECK(error_of(c->wait_response(*d, 3)) ==
          "no healthy endpoint for reads in eu-west-1 (replica lag 7.2s > max_lag 5s; ap-northeast-1 replica "
          "unreachable; primary unreachable)");
    c->send(4, shm::Op::write, "insert into t values (1)");
    CHECK_THAT(error_of(c->wait_response(*d, 4)), Catch::StartsWith("no healthy primary for writes"));

    // Larger than max_request (4 KiB here).
    c->send(5, shm::Op::read_local, std::string(6000, 'x'));
    CHECK_THAT(error_of(c->wait_response(*d, 5)), Catch::Contains("exceeds max_request (4 KiB)"));
    CHECK(d->snapshot().counters[static_cast<std::size_t>(shm::Counter::errors)].second == 5);
}

TEST_CASE("a request that comes before any endpoint's first verdict waits for it instead of failing",
          "[daemon][startup]") {
    Fixture f;
    auto d = f.start();  // no endpoint has been probed yet
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(c->ok());

    c->send(1, shm::Op::read_local, "select 1");
    c->send(2, shm::Op::write, "insert into t values (1)");
    for (int i = 0; i < 50; ++i) d->run_once(1ms);  // nowhere to go yet, nothing answered
    CHECK(c->pop_all().empty());
    CHECK(f.local_replica().jobs.empty());

    // The first verdicts release them to where they belong.
    f.tokyo_replica().set_health(false);  // releases nothing: the others are still unknown
    for (int i = 0; i < 20; ++i) d->run_once(1ms);
    CHECK(c->pop_all().empty());
    f.local_replica().set_health(true, 0, 500);
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    CHECK(f.primary().jobs.empty());  // the write still waits for the primary's verdict
    f.primary().set_health(true, 0, 200'000);
    REQUIRE(run_until(*d, [&] { return !f.primary().jobs.empty(); }));
    CHECK(f.primary().jobs.front().job.kind == pg::Job::Kind::write);
    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
    f.primary().complete_next(test::ok_outcome("us-east-1/primary", {}, {}, kMaxChunk));
    const auto read = c->wait_response(*d, 1);
    REQUIRE(read);
    CHECK(read->status == shm::Status::ok);
    CHECK(read->served_by == "eu-west-1/replica");
    const auto written = c->wait_response(*d, 2);
    REQUIRE(written);
    CHECK(written->status == shm::Status::ok);
}

TEST_CASE("a request waiting for a first verdict is answered at its deadline with the reason", "[daemon][startup]") {
    Fixture f;
    auto d = f.start();
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(c->ok());
    shm::RequestView r;
    r.op = shm::Op::read_local;
    r.sql = "select 1";
    r.timeout_ms = 100;
    std::vector<std::byte> bytes;
    REQUIRE(shm::encode_request_append(r, bytes));
    c->push(shm::RecordKind::request, 9, bytes);
    CHECK_THAT(error_of(c->wait_response(*d, 9)), Catch::Contains("replica not checked yet"));
    CHECK(d->snapshot().counters[static_cast<std::size_t>(shm::Counter::timeouts)].second == 1);
    // Nothing is left behind: the client may send its whole window again.
    CHECK(d->snapshot().counters[static_cast<std::size_t>(shm::Counter::errors)].second == 1);
}

TEST_CASE("a long text is classified off the loop: requests behind it are not held", "[daemon][classify]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_request = 30000;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true, 0, 500);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(c->ok());
    // Deeply nested: the parser's most expensive kind of text per byte.
    const std::string nested = "select " + std::string(9000, '(') + "1" + std::string(9000, ')');
    REQUIRE(nested.size() > Dispatcher::kClassifyOnLoopBytes);

    c->send(1, shm::Op::read_local, nested);
    c->send(2, shm::Op::read_local, "select 2");
    // The short one is on its endpoint first, whatever the long one costs.
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    CHECK(f.local_replica().jobs.front().job.sql == "select 2");
    CHECK(f.local_replica().jobs.front().job.classification == nullptr);  // classified by the endpoint itself
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 2; }));
    const pg::Job& long_job = f.local_replica().jobs.back().job;
    CHECK(long_job.sql == nested);
    REQUIRE(long_job.classification != nullptr);  // the endpoint uses it as it is
    CHECK(long_job.classification->parsed);
    const auto first_classification = long_job.classification;

    SECTION("the same text again is found in the classifier's cache") {
        f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"2"}}, kMaxChunk));
        f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
        REQUIRE(c->wait_response(*d, 2));
        REQUIRE(c->wait_response(*d, 1));
        c->send(3, shm::Op::read_local, nested);
        REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
        // The very same classification: the worker would have made a new one.
        CHECK(f.local_replica().jobs.front().job.classification == first_classification);
    }
}

TEST_CASE("a request cancelled while its text is classified ends there; nothing reaches an endpoint",
          "[daemon][classify]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_request = 30000;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true, 0, 500);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(c->ok());
    const std::string nested = "select " + std::string(9000, '(') + "1" + std::string(9000, ')');
    c->send(1, shm::Op::read_local, nested);
    c->cancel(1);
    // The id is free again at once, and the late classification is dropped.
    c->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
    const auto r = c->wait_response(*d, 1);
    REQUIRE(r);
    CHECK(r->status == shm::Status::ok);
    // The cancelled one never shows up on the endpoint (its classification,
    // when it comes, finds no request).
    CHECK_FALSE(run_until(
        *d, [&] { return !f.local_replica().jobs.empty(); }, 500ms));
    CHECK(d->client_count() == 1);  // not dropped for reusing an id
}

TEST_CASE("a read failing on its endpoint is retried once elsewhere; a write is not", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.primary().set_health(true, 0, 200'000);
    f.local_replica().set_health(true, 0, 500);
    f.tokyo_replica().set_health(true, 0, 220'000);
    auto c = TestClient::connect(*d, d->config().daemon.socket);

    c->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    f.local_replica().complete_next(test::error_outcome("connection lost", true, kMaxChunk));
    REQUIRE(run_until(*d, [&] { return !f.tokyo_replica().jobs.empty(); }));
    // The second failure is final.
    f.tokyo_replica().complete_next(test::error_outcome("connection lost again", true, kMaxChunk));
    CHECK(error_of(c->wait_response(*d, 1)) == "connection lost again");
    CHECK(f.primary().jobs.empty());

    // An SQL error is not retried.
    c->send(2, shm::Op::read_local, "select nonsense");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    f.local_replica().complete_next(test::error_outcome("column \"nonsense\" does not exist", false, kMaxChunk));
    CHECK(error_of(c->wait_response(*d, 2)) == "column \"nonsense\" does not exist");

    c->send(3, shm::Op::write, "insert into t values (1)");
    REQUIRE(run_until(*d, [&] { return !f.primary().jobs.empty(); }));
    f.primary().complete_next(test::error_outcome("connection lost", true, kMaxChunk));
    CHECK(error_of(c->wait_response(*d, 3)) == "connection lost");
    CHECK(f.local_replica().jobs.empty());
    CHECK(f.tokyo_replica().jobs.empty());
}

TEST_CASE("a client that corrupts its ring is dropped alone", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto good = TestClient::connect(*d, d->config().daemon.socket);
    auto bad = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(d->client_count() == 2);

    // The bad client writes a head that is not 8-byte aligned into its request ring.
    const std::uint64_t size = bad->segment->size();
    void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, bad->memfd.get(), 0);
    REQUIRE(map != MAP_FAILED);
    auto* header = static_cast<shm::ClientHeader*>(map);
    auto* control = reinterpret_cast<shm::RingControl*>(static_cast<std::byte*>(map) + header->request_ring_offset);
    control->head.store(3, std::memory_order_release);
    const std::uint64_t one = 1;
    REQUIRE(::write(bad->eventfd.get(), &one, sizeof one) == sizeof one);
    REQUIRE(run_until(*d, [&] { return d->client_count() == 1; }));
    ::munmap(map, size);
    CHECK(f.logged("client 2 (pid " + std::to_string(::getpid()) + " uid " + std::to_string(::getuid()) +
                   " unit-test) dropped: its request ring is corrupt"));
    CHECK(d->snapshot().counters[static_cast<std::size_t>(shm::Counter::clients_dropped)].second == 1);
    // The socket of the dropped client is closed.
    REQUIRE(run_until(*d, [&] { return readable(bad->socket.get()); }));
    char byte;
    CHECK(::recv(bad->socket.get(), &byte, 1, MSG_DONTWAIT) == 0);

    // The other client goes on.
    good->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"one"}, {{"1"}}, kMaxChunk));
    REQUIRE(good->wait_response(*d, 1));
}

TEST_CASE("an undecodable request or a foreign record kind drops the client", "[daemon]") {
    Fixture f;
    auto d = f.start();
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    const std::byte garbage[5] = {std::byte{0x42}};
    c->push(shm::RecordKind::request, 1, garbage);
    REQUIRE(run_until(*d, [&] { return d->client_count() == 0; }));
    CHECK(f.logged("dropped: it sent an undecodable request"));

    auto c2 = TestClient::connect(*d, d->config().daemon.socket);
    c2->push(shm::RecordKind::response, 1, {});
    REQUIRE(run_until(*d, [&] { return d->client_count() == 0; }));
    CHECK(f.logged("dropped: it sent a record of kind 2"));
}

TEST_CASE("a client that goes away with work in flight: its job is cancelled and the late answer is dropped",
          "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    // While connected, an answer reaches the ring (what the late one must not do).
    c->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
    REQUIRE(c->wait_response(*d, 1));

    c->send(2, shm::Op::read_local, "select pg_sleep(10)");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    const pg::JobId id = f.local_replica().jobs.front().id;
    // The process "exits": its socket closes. The test keeps its own mapping of
    // the rings, so whatever the daemon would still push there is seen.
    c->socket.reset();
    REQUIRE(run_until(*d, [&] { return d->client_count() == 0; }));
    CHECK(f.logged("client 1 (pid"));
    CHECK(f.logged("disconnected"));
    // The server is asked to stop the job; until it has, it counts as an orphan.
    CHECK(run_until(
        *d, [&] { return f.local_replica().cancelled == std::vector<pg::JobId>{id}; }, 500ms));
    CHECK(d->orphaned_requests() == 1);

    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"late"}}, kMaxChunk));
    REQUIRE(run_until(*d, [&] { return d->orphaned_requests() == 0; }));
    for (int i = 0; i < 5; ++i) d->run_once(1ms);
    CHECK(c->pop_all().empty());  // no record for request 2, ever
    CHECK(d->snapshot().counters[static_cast<std::size_t>(shm::Counter::clients_dropped)].second == 0);
}

TEST_CASE("cancel: the answer to a cancelled request is not sent", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    c->push(shm::RecordKind::cancel, 1, {});
    for (int i = 0; i < 5; ++i) d->run_once(1ms);
    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"x"}}, kMaxChunk));
    // The id may be used again; only the new answer arrives.
    c->send(1, test::malformed_token_request());
    CHECK_THAT(error_of(c->wait_response(*d, 1)), Catch::StartsWith("malformed token"));
}

TEST_CASE("a response larger than the ring waits in the output queue until the client reads", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select big");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < 400; ++i)
        rows.push_back({std::to_string(i), std::string(1000, static_cast<char>('a' + i % 26))});
    pg::Outcome big = test::ok_outcome("eu-west-1/replica", {"i", "s"}, rows, kMaxChunk);
    REQUIRE(big.chunks.size() > 8);  // ~400 KB through a 64 KiB ring
    f.local_replica().complete_next(std::move(big));
    const auto response = c->wait_response(*d, 1);
    REQUIRE(response);
    REQUIRE(response->nrows() == 400);
    CHECK(response->value(399, 0) == std::optional<std::string_view>("399"));
    CHECK(response->value(399, 1)->size() == 1000);
}

TEST_CASE("max_clients and protocol versions are enforced at the handshake", "[daemon]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_clients = 1;
    auto d = f.start(std::move(config));
    auto first = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(first->ok());
    auto second = TestClient::connect(*d, d->config().daemon.socket);
    CHECK(second->welcome.status == static_cast<std::uint32_t>(shm::WelcomeStatus::too_many_clients));
    CHECK_THAT(std::string(second->welcome.message), Catch::Contains("daemon.max_clients"));
    first.reset();
    REQUIRE(run_until(*d, [&] { return d->client_count() == 0; }));
    auto old = TestClient::connect(*d, d->config().daemon.socket, 99);
    CHECK(old->welcome.status == static_cast<std::uint32_t>(shm::WelcomeStatus::version_mismatch));
    CHECK_THAT(std::string(old->welcome.message), Catch::Contains("client protocol version 99"));
}

TEST_CASE("a connection that sends no hello, or a bad one, is closed", "[daemon]") {
    Fixture f;
    f.handshake_timeout = 100ms;
    auto d = f.start();
    auto silent = connect_unix(d->config().daemon.socket);
    const shm::HelloMessage partial = hello();
    REQUIRE(::send(silent.get(), &partial, 10, MSG_NOSIGNAL) == 10);  // a hello that never completes
    const auto t0 = Clock::now();
    REQUIRE(run_until(*d, [&] { return readable(silent.get()); }));
    CHECK(Clock::now() - t0 >= 90ms);
    char byte;
    CHECK(::recv(silent.get(), &byte, 1, MSG_DONTWAIT) == 0);
    CHECK(f.logged("closed a connection that sent no hello within 100ms"));

    auto stranger = connect_unix(d->config().daemon.socket);
    const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(64, ' ');
    REQUIRE(::send(stranger.get(), http.data(), http.size(), MSG_NOSIGNAL) > 0);
    REQUIRE(run_until(*d, [&] { return readable(stranger.get()); }));
    CHECK(f.logged("not a regiond client"));
    CHECK(d->client_count() == 0);
}

TEST_CASE("shutdown: in-flight work finishes, new requests are refused, then the daemon stops", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select slow");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));

    d->shutdown("SIGTERM received");
    CHECK(f.local_replica().draining);
    CHECK_FALSE(std::filesystem::exists(d->config().daemon.socket));  // no new clients
    c->send(2, shm::Op::read_local, "select 2");
    CHECK(error_of(c->wait_response(*d, 2)) == "regiond is shutting down");
    CHECK_FALSE(d->finished());

    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"done"}}, kMaxChunk));
    const auto answer = c->wait_response(*d, 1);
    REQUIRE(answer);
    CHECK(answer->status == shm::Status::ok);
    REQUIRE(run_until(*d, [&] { return d->finished(); }));
    CHECK(d->exit_code() == 0);
}

TEST_CASE("shutdown: what does not finish within drain_timeout is answered with an error", "[daemon]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.drain_timeout = 100ms;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select forever");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    d->shutdown("SIGTERM received");
    CHECK_THAT(error_of(c->wait_response(*d, 1)),
               Catch::Contains("did not finish within daemon.drain_timeout (100ms)"));
    REQUIRE(run_until(*d, [&] { return d->finished(); }));
}

TEST_CASE("shutdown twice exits at once", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select forever");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    d->shutdown("SIGTERM received");
    d->shutdown("SIGTERM received");
    CHECK(d->finished());
    CHECK_THAT(error_of(c->wait_response(*d, 1)), Catch::Contains("abandoned"));
}

TEST_CASE("a second daemon on the same names refuses to start; stale names are taken over", "[daemon]") {
    Fixture f;
    const auto config = f.make_config();
    auto first = f.start(config);
    StartError error;
    auto second = f.start(config, &error);
    CHECK(second == nullptr);
    CHECK(error.exit_code == 1);
    CHECK_THAT(error.message, Catch::StartsWith("another regiond is running at " + config.daemon.socket + " (pid " +
                                                std::to_string(::getpid()) + ")"));
    first.reset();

    // A socket file nobody listens on, and a state segment whose heartbeat stopped.
    {
        shm::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strcpy(address.sun_path, config.daemon.socket.c_str());
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    }
    shm::StateSegmentOptions options;
    options.name = config.daemon.state_segment;
    auto stale = shm::StateSegment::create(options);
    REQUIRE(stale);
    stale->heartbeat(1);  // long ago
    stale->release_name();

    auto third = f.start(config);
    CHECK(f.logged("removed the stale client socket " + config.daemon.socket));
    CHECK(f.logged("replacing the stale state segment"));
}

TEST_CASE("the state segment shows every endpoint and a fresh heartbeat", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true, 42, 700);
    auto view = shm::StateView::open(d->config().daemon.state_segment);
    REQUIRE(view);
    CHECK(view->daemon_pid() == static_cast<std::uint32_t>(::getpid()));
    CHECK(view->heartbeat_age() < 1s);
    shm::EndpointStatus s{};
    REQUIRE(view->read_endpoint(1, 0, s));  // region 1 = eu-west-1, its replica
    CHECK(s.in_use == 1);
    CHECK(std::string(s.region) == "eu-west-1");
    CHECK(std::string(s.endpoint) == "10.1.0.1:5432");
    CHECK(s.role == static_cast<std::uint8_t>(shm::EndpointRole::replica));
    CHECK(s.healthy == 1);
    CHECK(s.lag_ms == 42);
    CHECK(s.rtt_us == 700);
    REQUIRE(view->read_endpoint(0, 0, s));
    CHECK(std::string(s.endpoint) == "10.0.0.1:5432");  // never the conninfo
    CHECK(s.role == static_cast<std::uint8_t>(shm::EndpointRole::primary));
    CHECK(s.healthy == 0);
}

TEST_CASE("lag past alert_after raises an alert once and clears it once", "[daemon]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true, 6000);
    f.local_replica().set_health(true, 6500);
    CHECK(d->snapshot().endpoints[1].alert);
    f.local_replica().set_health(true, 100);
    CHECK_FALSE(d->snapshot().endpoints[1].alert);
    const auto count = [&](const std::string& part) {
        return std::count_if(f.logs.begin(), f.logs.end(),
                             [&](const auto& l) { return l.find(part) != std::string::npos; });
    };
    CHECK(count("replication lag alert: postgres eu-west-1 replica 10.1.0.1:5432 lags 6s") == 1);
    CHECK(count("replication lag alert cleared") == 1);
}

TEST_CASE("the admin socket answers one command per connection", "[daemon]") {
    Fixture f;
    auto d = f.start();
    const auto ask = [&](const std::string& line) {
        auto fd = connect_unix(d->config().daemon.admin_socket);
        REQUIRE(::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size()));
        std::string reply;
        REQUIRE(run_until(*d, [&] {
            char buffer[4096];
            while (readable(fd.get())) {
                const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
                if (n <= 0) return true;  // closed: the whole reply is in
                reply.append(buffer, static_cast<std::size_t>(n));
            }
            return false;
        }));
        return reply;
    };
    CHECK_THAT(ask("status json\n"), Catch::StartsWith("ok\n{\"region\":\"eu-west-1\""));
    const std::string status = ask("status\n");
    CHECK_THAT(status, Catch::Contains("REGION"));
    CHECK_THAT(status, Catch::Contains("ap-northeast-1"));
    CHECK(status.find("hunter2") == std::string::npos);
    CHECK_THAT(ask("metrics\n"), Catch::Contains("# TYPE regiond_endpoint_healthy gauge"));
    CHECK_THAT(ask("cache flush k\n"), Catch::StartsWith("ok\nevicted 1 key from this host's hot cache"));
    CHECK_THAT(ask("bogus\n"), Catch::StartsWith("error: unknown command \"bogus\"; commands: status"));
}

TEST_CASE("reload applies thresholds live and logs what needs a restart", "[daemon]") {
    Fixture f;
    auto d = f.start();
    auto next = d->config();
    next.lag.max_lag = 10s;
    next.daemon.socket = (f.dir / "elsewhere.sock").string();
    d->apply_config(next);
    CHECK(d->config().lag.max_lag == 10s);
    CHECK(d->config().daemon.socket == (f.dir / "client.sock").string());
    CHECK(f.logged("reload: applied lag.max_lag"));
    CHECK(f.logged("daemon.socket"));

    // A broken file keeps the running configuration.
    {
        std::FILE* file = std::fopen(d->config().source_path.c_str(), "w");
        std::fputs("[daemon\n", file);
        std::fclose(file);
    }
    d->reload();
    CHECK(d->config().lag.max_lag == 10s);
    CHECK(f.logged("keeping the running configuration"));
}

namespace {

// A stand-in for /proc/loadavg with `running` tasks, rewritten in place (the
// daemon keeps the file open and re-reads it).
void write_loadavg(const std::filesystem::path& path, int running) {
    std::ofstream out(path, std::ios::trunc);
    out << "0.50 0.40 0.30 " << running << "/321 4242\n";
}

}  // namespace

TEST_CASE("host-wide waiting: facts in the state segment, a spin permit only while a core is spare",
          "[daemon][waiting]") {
    Fixture f;
    const auto loadavg = f.dir / "loadavg";
    write_loadavg(loadavg, 1);  // only the daemon runs
    f.loadavg_path = loadavg.string();
    f.usable_cores = 2;
    auto d = f.start();
    f.local_replica().set_health(true, 0, 500);
    auto view = shm::StateView::open(d->config().daemon.state_segment);
    REQUIRE(view);

    auto c = TestClient::connect(*d, d->config().daemon.socket);
    REQUIRE(c->ok());
    CHECK(c->segment->spin_permit() == 0);  // nothing decided for it yet

    // Its request at the (fake) database: one backend works, one core is
    // spare, and this client, the one that is active, may spin for its answer.
    c->segment->set_wait_state(shm::ClientWaitState::spinning);
    c->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
    REQUIRE(run_until(*d, [&] { return c->segment->spin_permit() > 0; }));
    REQUIRE(run_until(*d, [&] { return view->wait_facts().clients_spinning == 1; }));
    shm::WaitFacts facts = view->wait_facts();
    CHECK(facts.usable_cores == 2);
    CHECK(facts.client_permits == 1);
    CHECK_FALSE(facts.daemon_may_spin);  // a request is in flight

    // The host gets busy (other work takes both cores): the permit goes,
    // everyone sleeps.
    write_loadavg(loadavg, 9);
    REQUIRE(run_until(*d, [&] { return c->segment->spin_permit() == 0; }));
    REQUIRE(run_until(*d, [&] { return view->wait_facts().spare_cores == 0; }));
    CHECK(view->wait_facts().client_permits == 0);

    // The client sleeps; its answer wakes it once.
    c->segment->set_wait_state(shm::ClientWaitState::sleeping);
    REQUIRE(run_until(*d, [&] { return view->wait_facts().clients_sleeping == 1; }));
    REQUIRE(c->segment->responses().prepare_sleep().may_sleep);
    const std::uint64_t woken_before =
        d->snapshot().counters[static_cast<std::size_t>(shm::Counter::client_wakeups)].second;
    f.local_replica().complete_next(test::ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
    REQUIRE(c->wait_response(*d, 1));
    // The fake completes outside a loop pass; the wake it owes is done at the
    // end of the next one.
    d->run_once(0ms);
    const StatusSnapshot s = d->snapshot();
    CHECK(s.counters[static_cast<std::size_t>(shm::Counter::client_wakeups)].second == woken_before + 1);
    CHECK(s.waiting.usable_cores == 2);
    CHECK(format_status_json(s).find("\"waiting\":{\"usable_cores\":2,") != std::string::npos);
    CHECK(format_metrics(s).find("regiond_wakeups_total{to=\"client\"} ") != std::string::npos);

    // Back to quiet, nothing in flight: the daemon may spin on its rings.
    write_loadavg(loadavg, 1);
    c->segment->set_wait_state(shm::ClientWaitState::idle);
    REQUIRE(run_until(*d, [&] { return view->wait_facts().daemon_may_spin; }));
}

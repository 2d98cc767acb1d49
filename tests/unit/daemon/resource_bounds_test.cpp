// What a client can make the daemon hold is bounded (issue 7): requests in
// flight until the server finished them (cancel and disconnect included),
// streaming with a window, the total response backlog, request size, the
// client's timeout; a reload that narrows the access policy; the dispatcher's
// retry budget. The embedded daemon on fake endpoints, a client of shm/ parts.
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "embedded_daemon.hpp"

using namespace regiond;
using namespace regiond::daemon;
using namespace regiond::daemon::test;
using namespace std::chrono_literals;

namespace {

bool has_job(FakeEndpoint& e, const std::string& sql) {
    return std::any_of(e.jobs.begin(), e.jobs.end(), [&](const auto& s) { return s.job.sql == sql; });
}

FakeEndpoint::Submitted& job_of(FakeEndpoint& e, const std::string& sql) {
    for (auto& s : e.jobs)
        if (s.job.sql == sql) return s;
    FAIL("no job runs " << sql);
    throw std::logic_error("unreachable");
}

// Turns the loop `n` times without waiting for anything in particular: only to
// show that something does NOT happen, after a condition proved the daemon has
// already looked at what came before it.
void turn(Daemon& d, int n = 20) {
    for (int i = 0; i < n; ++i) d.run_once(1ms);
}

// Rows of `width` bytes, streamed through `partial` in chunks of the ring's
// size until it returns false or `max_chunks` were sent; returns the chunks sent.
struct Streamer {
    shm::ResponseEncoder encoder{kMaxChunk};
    std::size_t rows = 0;
    std::size_t width = 1000;

    void begin() {
        shm::ResponseHeadView head;
        head.served_by = "eu-west-1/replica";
        const std::string_view columns[] = {"s"};
        head.columns = columns;
        REQUIRE(encoder.begin(head) == shm::CodecError::ok);
    }
    // Adds rows until a chunk is full; returns it.
    std::vector<std::byte> next_chunk() {
        const std::string value(width, 'x');
        for (;;) {
            const std::optional<std::string_view> row[] = {std::string_view(value)};
            const shm::CodecError e = encoder.add_row(row);
            if (e == shm::CodecError::chunk_full) {
                const auto chunk = encoder.take_chunk(false);
                std::vector<std::byte> bytes(chunk.begin(), chunk.end());
                REQUIRE(encoder.add_row(row) == shm::CodecError::ok);
                ++rows;
                return bytes;
            }
            REQUIRE(e == shm::CodecError::ok);
            ++rows;
        }
    }
    pg::Outcome finish() {
        pg::Outcome outcome;
        shm::ResponseTrailerView trailer;
        REQUIRE(encoder.finish(trailer, outcome.chunks) == shm::CodecError::ok);
        outcome.ok = true;
        return outcome;
    }
};

// Feeds every record for `id` into `decoder`; true once the response is complete.
bool feed(TestClient& c, std::uint64_t id, shm::ResponseDecoder& decoder) {
    for (const auto& r : c.pop_all()) {
        REQUIRE(r.request_id == id);
        REQUIRE(decoder.feed(r.payload) == shm::CodecError::ok);
    }
    return decoder.complete();
}

}  // namespace

TEST_CASE("in flight: a request counts until its job ended on the server; cancel does not free it",
          "[daemon][bounds]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_in_flight_per_client = 2;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select 1");
    c->send(2, shm::Op::read_local, "select 2");
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 2; }));
    const pg::JobId first = f.local_replica().jobs[0].id;

    // The client forgets both, then asks for a third.
    c->cancel(1);
    c->cancel(2);
    c->send(3, shm::Op::read_local, "select 3");
    // The cancels reach the endpoint: the server is asked to stop both jobs...
    CHECK(run_until(
        *d, [&] { return f.local_replica().cancelled.size() == 2; }, 500ms));
    turn(*d);
    // ...but until it has, they hold the client's two slots: the third waits.
    CHECK(f.local_replica().jobs.size() == 2);
    CHECK_FALSE(has_job(f.local_replica(), "select 3"));

    // One ends on the server: the third goes out; nothing is answered for 1.
    REQUIRE(f.local_replica().complete(first, cancelled_outcome(kMaxChunk)));
    REQUIRE(run_until(*d, [&] { return has_job(f.local_replica(), "select 3"); }));
    CHECK(c->pop_all().empty());
    f.local_replica().complete(job_of(f.local_replica(), "select 3").id,
                               ok_outcome("eu-west-1/replica", {"v"}, {{"3"}}, kMaxChunk));
    const auto three = c->wait_response(*d, 3);
    REQUIRE(three);
    CHECK(three->status == shm::Status::ok);
}

TEST_CASE("in flight: a cancel behind a full client is still read", "[daemon][bounds]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_in_flight_per_client = 1;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
    c->cancel(1);
    REQUIRE(run_until(*d, [&] { return f.local_replica().cancelled.size() == 1; }));
    // The job is gone at once (a queued job): the slot is free again.
    f.local_replica().cancel_answers_at_once = true;
    c->send(2, shm::Op::read_local, "select 2");
    c->cancel(2);
    c->send(3, shm::Op::read_local, "select 3");
    REQUIRE(f.local_replica().complete(f.local_replica().jobs.front().id, cancelled_outcome(kMaxChunk)));
    REQUIRE(run_until(*d, [&] { return has_job(f.local_replica(), "select 3"); }));
    CHECK(f.local_replica().cancelled.size() == 2);
    CHECK(c->pop_all().empty());
}

TEST_CASE("orphans: the jobs of a client that went away count against its uid", "[daemon][bounds]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_in_flight_per_client = 2;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true);
    auto gone = TestClient::connect(*d, d->config().daemon.socket);
    gone->send(1, shm::Op::read_local, "select slow 1");
    gone->send(2, shm::Op::read_local, "select slow 2");
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 2; }));
    gone.reset();  // the process exits
    REQUIRE(run_until(*d, [&] { return d->client_count() == 0; }));
    // Both jobs are cancelled on the server...
    CHECK(run_until(
        *d, [&] { return f.local_replica().cancelled.size() == 2; }, 500ms));

    // ...and until they end, a new client of the same uid is not served.
    auto next = TestClient::connect(*d, d->config().daemon.socket);
    next->send(1, shm::Op::read_local, "select next");
    turn(*d);
    CHECK_FALSE(has_job(f.local_replica(), "select next"));
    CHECK(f.logged("uid " + std::to_string(::getuid()) + " has 2 requests of disconnected clients"));

    f.local_replica().complete_next(cancelled_outcome(kMaxChunk));
    REQUIRE(run_until(*d, [&] { return has_job(f.local_replica(), "select next"); }));
    f.local_replica().complete(job_of(f.local_replica(), "select next").id,
                               ok_outcome("eu-west-1/replica", {"v"}, {{"x"}}, kMaxChunk));
    REQUIRE(next->wait_response(*d, 1));
    const auto warnings = [&] {
        return std::count_if(f.logs.begin(), f.logs.end(), [](const std::string& l) {
            return l.find("disconnected clients still running") != l.npos;
        });
    };
    CHECK(warnings() == 1);  // logged once, not per attempt
    CHECK(f.logged("its clients are served again"));

    // A flood makes the uid wait again and again: not a log line each time.
    auto again = TestClient::connect(*d, d->config().daemon.socket);
    again->send(1, shm::Op::read_local, "select again 1");
    again->send(2, shm::Op::read_local, "select again 2");
    REQUIRE(run_until(*d, [&] { return has_job(f.local_replica(), "select again 2"); }));
    again.reset();
    REQUIRE(run_until(*d, [&] { return d->orphaned_requests() == 3; }));  // one of the first two still runs
    next->send(2, shm::Op::read_local, "select next 2");
    turn(*d);
    CHECK_FALSE(has_job(f.local_replica(), "select next 2"));
    CHECK(warnings() == 1);
}

TEST_CASE("streaming: chunks reach the client as they come; a full window pauses the job until it drains",
          "[daemon][bounds]") {
    Fixture f;
    auto d = f.start();
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    c->send(1, shm::Op::read_local, "select big");
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
    auto& job = f.local_replica().jobs.front();
    const pg::JobId id = job.id;
    REQUIRE(job.callbacks.partial);

    // The client reads nothing: the ring fills, then the queue up to the window
    // (max(ring_size, 1 MiB)), and the daemon asks the endpoint to pause.
    Streamer stream;
    stream.begin();
    std::size_t sent = 0;
    bool open = true;
    for (int i = 0; i < 200 && open; ++i) {
        auto chunk = stream.next_chunk();
        sent += chunk.size();
        open = job.callbacks.partial(std::move(chunk));
    }
    REQUIRE_FALSE(open);
    CHECK(sent > (1u << 20));
    CHECK(sent < (1u << 20) + 2 * kRing + kMaxChunk);
    turn(*d);
    CHECK(f.local_replica().resumed.empty());

    // The client reads: once less than half the window is queued, the job resumes.
    shm::ResponseDecoder decoder;
    REQUIRE(run_until(*d, [&] {
        feed(*c, 1, decoder);
        return !f.local_replica().resumed.empty();
    }));
    CHECK(f.local_replica().resumed == std::vector<pg::JobId>{id});
    CHECK_FALSE(decoder.complete());

    // The end: the rest, then the last chunk.
    REQUIRE(f.local_replica().complete(id, stream.finish()));
    REQUIRE(run_until(*d, [&] { return feed(*c, 1, decoder); }));
    const shm::Response response = decoder.take();
    CHECK(response.status == shm::Status::ok);
    CHECK(response.nrows() == stream.rows);
}

TEST_CASE("backlog: past daemon.max_backlog the client with the largest backlog is dropped and its jobs cancelled",
          "[daemon][bounds]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_backlog = 512 * 1024;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true);
    auto hog = TestClient::connect(*d, d->config().daemon.socket);
    auto good = TestClient::connect(*d, d->config().daemon.socket);
    hog->send(1, shm::Op::read_local, "select big");
    hog->send(2, shm::Op::read_local, "select slow");
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 2; }));
    const pg::JobId slow = job_of(f.local_replica(), "select slow").id;

    // ~1.2 MB for a client that reads nothing.
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < 1200; ++i) rows.push_back({std::string(1000, 'x')});
    f.local_replica().complete(job_of(f.local_replica(), "select big").id,
                               ok_outcome("eu-west-1/replica", {"s"}, rows, kMaxChunk));
    REQUIRE(run_until(*d, [&] { return d->client_count() == 1; }));
    CHECK(f.logged("client 1 (pid"));
    CHECK(f.logged("daemon.max_backlog (512 KiB)"));
    // Its other job is stopped on the server.
    CHECK(run_until(
        *d,
        [&] {
            const auto& c = f.local_replica().cancelled;
            return std::find(c.begin(), c.end(), slow) != c.end();
        },
        500ms));

    good->send(1, shm::Op::read_local, "select 1");
    REQUIRE(run_until(*d, [&] { return has_job(f.local_replica(), "select 1"); }));
    f.local_replica().complete(job_of(f.local_replica(), "select 1").id,
                               ok_outcome("eu-west-1/replica", {"v"}, {{"1"}}, kMaxChunk));
    REQUIRE(good->wait_response(*d, 1));
}

TEST_CASE("a request larger than max_request is answered and the client stays", "[daemon][bounds]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.max_in_flight_per_client = 1;
    auto d = f.start(std::move(config));  // max_request 4 KiB, ring 64 KiB
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    // Up to the ring's record limit, a raw client can push it.
    c->send(1, shm::Op::read_local, std::string(kMaxChunk - 64, 'x'));
    CHECK_THAT(error_of(c->wait_response(*d, 1)),
               Catch::Matches("request of 31.9\\d KiB exceeds max_request \\(4 KiB\\)"));
    CHECK(d->client_count() == 1);
    // It held no slot: the next request (the only one allowed) goes out.
    c->send(2, shm::Op::read_local, "select 2");
    REQUIRE(run_until(*d, [&] { return has_job(f.local_replica(), "select 2"); }));
}

TEST_CASE("a client's timeout_ms is capped by daemon.max_request_timeout", "[daemon][bounds]") {
    Fixture f;
    auto config = f.make_config();
    config.daemon.request_timeout = 1s;
    config.daemon.max_request_timeout = 2s;
    auto d = f.start(std::move(config));
    f.local_replica().set_health(true);
    auto c = TestClient::connect(*d, d->config().daemon.socket);
    shm::RequestView r;
    r.op = shm::Op::read_local;
    r.sql = "select long";
    r.timeout_ms = 3'600'000;
    const auto before = Clock::now();
    c->send(1, r);
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 1; }));
    const auto after = Clock::now();
    const auto deadline = f.local_replica().jobs.front().job.deadline;
    CHECK(deadline >= before + 2s);
    CHECK(deadline <= after + 2s);

    // The cap follows a reload.
    auto next = d->config();
    next.daemon.max_request_timeout = 1500ms;
    d->apply_config(next);
    c->send(2, r);
    REQUIRE(run_until(*d, [&] { return f.local_replica().jobs.size() == 2; }));
    CHECK(f.local_replica().jobs.back().job.deadline <= Clock::now() + 1500ms);
}

TEST_CASE("a reload that narrows the access policy drops the clients it no longer admits", "[daemon][bounds]") {
    if (::geteuid() != 0) FAIL("needs root (a client of another uid)");
    Fixture f;
    auto config = f.make_config();
    config.daemon.allowed_uids = {65534};
    auto d = f.start(std::move(config));
    // Let uid 65534 reach the socket (the daemon's own check decides).
    REQUIRE(::chmod(f.dir.c_str(), 0755) == 0);
    REQUIRE(::chmod(d->config().daemon.socket.c_str(), 0666) == 0);
    auto insider = TestClient::connect(*d, d->config().daemon.socket);

    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // No Catch2 here: exit codes only. 0 = the daemon closed our socket.
        if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(90);
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strcpy(address.sun_path, d->config().daemon.socket.c_str());
        if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) ::_exit(91);
        const shm::HelloMessage h = hello();
        if (::send(fd, &h, sizeof h, MSG_NOSIGNAL) != sizeof h) ::_exit(92);
        shm::WelcomeMessage w{};
        auto fds = shm::recv_fds(fd, shm::kWelcomeFds, std::as_writable_bytes(std::span(&w, 1)));
        if (!fds || w.status != 0) ::_exit(93);
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20'000) != 1) ::_exit(94);
        char byte;
        ::_exit(::recv(fd, &byte, 1, MSG_DONTWAIT) == 0 ? 0 : 95);
    }
    REQUIRE(run_until(
        *d, [&] { return d->client_count() == 2; }, 10'000ms));

    auto narrower = d->config();
    narrower.daemon.allowed_uids.clear();
    d->apply_config(narrower);
    REQUIRE(run_until(*d, [&] { return d->client_count() == 1; }));
    CHECK(f.logged("uid 65534"));
    CHECK(f.logged("no longer admitted after the reload"));
    int status = 0;
    REQUIRE(run_until(
        *d, [&] { return ::waitpid(child, &status, WNOHANG) == child; }, 10'000ms));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // The one still admitted (root) stays.
    CHECK(d->client_count() == 1);
    insider->send(1, test::malformed_token_request());
    CHECK_THAT(error_of(insider->wait_response(*d, 1)), Catch::StartsWith("malformed token"));
}

TEST_CASE("dispatcher: a read is re-sent elsewhere at most once; never a write or a read that streamed",
          "[daemon][bounds][retry]") {
    Fixture f;
    auto d = f.start();
    f.primary().set_health(true, 0, 200'000);
    f.local_replica().set_health(true, 0, 500);
    f.tokyo_replica().set_health(true, 0, 220'000);
    auto c = TestClient::connect(*d, d->config().daemon.socket);

    SECTION("one re-send, which has no budget of its own") {
        c->send(1, shm::Op::read_local, "select 1");
        REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
        CHECK(f.local_replica().jobs.front().job.may_retry);
        f.local_replica().complete_next(error_outcome("endpoint down", true, kMaxChunk));
        REQUIRE(run_until(*d, [&] { return !f.tokyo_replica().jobs.empty(); }));
        CHECK_FALSE(f.tokyo_replica().jobs.front().job.may_retry);
        // Even if the endpoint said so again, there is no third try.
        f.tokyo_replica().complete_next(error_outcome("endpoint down too", true, kMaxChunk));
        CHECK(error_of(c->wait_response(*d, 1)) == "endpoint down too");
        CHECK(f.primary().jobs.empty());
    }
    SECTION("a write is never re-sent") {
        c->send(1, shm::Op::write, "insert into t values (1)");
        REQUIRE(run_until(*d, [&] { return !f.primary().jobs.empty(); }));
        CHECK_FALSE(f.primary().jobs.front().job.may_retry);
        f.primary().complete_next(error_outcome("connection lost", true, kMaxChunk));
        CHECK(error_of(c->wait_response(*d, 1)) == "connection lost");
        CHECK(f.local_replica().jobs.empty());
        CHECK(f.tokyo_replica().jobs.empty());
    }
    SECTION("a read that streamed a chunk is never re-sent") {
        c->send(1, shm::Op::read_local, "select big");
        REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
        auto& job = f.local_replica().jobs.front();
        REQUIRE(job.callbacks.partial);
        Streamer stream;
        stream.begin();
        CHECK(job.callbacks.partial(stream.next_chunk()));
        f.local_replica().complete_next(error_outcome("connection lost", true, kMaxChunk));
        turn(*d);
        CHECK(f.tokyo_replica().jobs.empty());
        CHECK(f.primary().jobs.empty());
    }
    SECTION("not after the deadline") {
        shm::RequestView r;
        r.op = shm::Op::read_local;
        r.sql = "select 1";
        r.timeout_ms = 20;
        c->send(1, r);
        REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
        const auto deadline = f.local_replica().jobs.front().job.deadline;
        REQUIRE(run_until(*d, [&] { return Clock::now() > deadline; }));
        f.local_replica().complete_next(error_outcome("endpoint down", true, kMaxChunk));
        CHECK(error_of(c->wait_response(*d, 1)) == "endpoint down");
        CHECK(f.tokyo_replica().jobs.empty());
    }
    SECTION("not a cancelled read") {
        c->send(1, shm::Op::read_local, "select 1");
        REQUIRE(run_until(*d, [&] { return !f.local_replica().jobs.empty(); }));
        c->cancel(1);
        turn(*d);
        f.local_replica().complete_next(error_outcome("endpoint down", true, kMaxChunk));
        turn(*d);
        CHECK(f.tokyo_replica().jobs.empty());
        CHECK(c->pop_all().empty());
    }
}

// Hostile local processes against the real regiond on the real cluster (issue 7,
// "every resource a client can consume is bounded"): a cancel flood and a
// disconnect flood stay within daemon.max_in_flight_per_client on the server
// (pg_stat_activity), a client that stops reading is dropped, a request over
// the ring's size and a timeout_ms over daemon.max_request_timeout are answered
// with errors; meanwhile another client's reads keep succeeding.
//
// The flooders are forked processes (their own pid, and for the disconnect
// flood their own uid); they use no Catch2 (exit codes only).
#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>

#include "../pg_session.hpp"
#include "daemon_harness.hpp"
#include "regiond/client.h"

using namespace std::chrono_literals;
using namespace regiond::testing;
namespace shm = regiond::shm;

namespace {

constexpr int kCap = 2;  // daemon.max_in_flight_per_client in these tests
constexpr auto kServedWithin = 60s;

std::vector<std::byte> encoded(shm::Op op, const std::string& sql, std::uint32_t timeout_ms = 0) {
    shm::RequestView r;
    r.op = op;
    r.sql = sql;
    r.timeout_ms = timeout_ms;
    std::vector<std::byte> bytes;
    if (!shm::encode_request_append(r, bytes)) std::abort();
    return bytes;
}

// Pushes until the ring takes it (the daemon may be holding back); false when
// the ring is corrupt or the deadline passed.
bool push_patiently(shm::ClientSegment& segment, int eventfd, shm::RecordKind kind, std::uint64_t id,
                    std::span<const std::byte> payload, std::chrono::steady_clock::time_point deadline) {
    std::vector<std::byte> sink(segment.responses().max_payload());
    for (;;) {
        const shm::RingError e = push_record(segment, eventfd, kind, id, payload);
        if (e == shm::RingError::ok) return true;
        if (e != shm::RingError::full || std::chrono::steady_clock::now() > deadline) return false;
        while (segment.responses().try_pop(sink)) {}  // whatever comes back is not wanted
        std::this_thread::sleep_for(100us);
    }
}

// Child: requests and cancels for them, as fast as the ring takes them, for
// `duration`. Exit 0 when it could keep going the whole time.
int cancel_flooder(const std::string& path, const std::string& sql, std::chrono::milliseconds duration) {
    std::optional<Handshake> h = handshake(path);
    if (!h || h->welcome.status != 0) return 3;
    auto segment = shm::ClientSegment::attach(h->memfd.get());
    if (!segment) return 4;
    const std::vector<std::byte> request = encoded(shm::Op::read_local, sql);
    const auto end = std::chrono::steady_clock::now() + duration;
    for (std::uint64_t id = 1; std::chrono::steady_clock::now() < end; ++id) {
        const auto deadline = end + 5s;
        if (!push_patiently(*segment, h->eventfd.get(), shm::RecordKind::request, id, request, deadline)) return 5;
        if (!push_patiently(*segment, h->eventfd.get(), shm::RecordKind::cancel, id, {}, deadline)) return 6;
    }
    return 0;
}

// Child, as uid 65534: connect, send `per_session` slow requests, go away;
// again and again for `duration`. Exit 0 when every connection was welcomed.
int disconnect_flooder(const std::string& path, const std::string& sql, int per_session,
                       std::chrono::milliseconds duration) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) return 90;
    const std::vector<std::byte> request = encoded(shm::Op::read_local, sql);
    const auto end = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < end) {
        std::optional<Handshake> h = handshake(path);
        if (!h || h->welcome.status != 0) return 3;
        auto segment = shm::ClientSegment::attach(h->memfd.get());
        if (!segment) return 4;
        for (int i = 0; i < per_session; ++i)
            if (push_record(*segment, h->eventfd.get(), shm::RecordKind::request, static_cast<std::uint64_t>(i + 1),
                            request) != shm::RingError::ok)
                return 5;
        // Give the daemon a moment to take them (or not, at its cap), then hang
        // up: the handshake's socket, the segment and the eventfd close here.
        pollfd p{h->socket.get(), POLLIN, 0};
        ::poll(&p, 1, 20);
    }
    return 0;
}

struct Child {
    pid_t pid = -1;
    int status = 0;
    bool reaped = false;
    ~Child() {
        if (pid > 0 && !reaped) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
        }
    }
    bool running() {
        if (reaped) return false;
        if (::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
        return !reaped;
    }
    int exit_code() {
        if (!reaped && ::waitpid(pid, &status, 0) == pid) reaped = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
};

template <class Fn>
Child fork_child(Fn&& fn) {
    Child c;
    c.pid = ::fork();
    REQUIRE(c.pid >= 0);
    if (c.pid == 0) ::_exit(fn());
    return c;
}

// Backends of the app user running a statement that contains `marker`. The
// marker is split in the query text so this query never counts itself.
int active_with(PgSession& s, const std::string& marker) {
    const std::string half = marker.substr(0, marker.size() / 2);
    const std::string rest = marker.substr(marker.size() / 2);
    return std::stoi(s.scalar("select count(*) from pg_stat_activity where state = 'active' and query like '%' || '" +
                              half + "' || '" + rest + "%'"));
}

}  // namespace

TEST_CASE("cancel flood: the client's jobs on the server never exceed its cap; others are served",
          "[daemon][hostile]") {
    Running d(RunningOptions{0, "max_in_flight_per_client = " + std::to_string(kCap), {}});
    d.require_ready();
    d.require_all_healthy();
    PgSession replica(ClusterEnv::get().superuser_conninfo("eu-west-1"));
    RawClient good(d.setup.socket);

    const std::string marker = "rgd-cancel-flood";
    Child flooder =
        fork_child([&] { return cancel_flooder(d.setup.socket, "select pg_sleep(5) /* " + marker + " */", 4000ms); });
    int most = 0;
    int served = 0;
    while (flooder.running()) {
        most = std::max(most, active_with(replica, marker));
        // Success is asserted, not latency: a read may wait behind the flood's
        // queries on a pooled connection (60 s only catches a read that is lost).
        const shm::Response r = good.query(shm::Op::read_local, "select " + std::to_string(served), kServedWithin);
        INFO(r.error);
        REQUIRE(r.status == shm::Status::ok);
        ++served;
    }
    CHECK(flooder.exit_code() == 0);
    INFO(d.process.log());
    CHECK(most <= kCap);
    CHECK(served > 0);
    CHECK(d.process.running());
    // Once it is gone, its jobs are stopped: nothing of it keeps running.
    CHECK(eventually([&] { return active_with(replica, marker) == 0; }, 10s));
}

TEST_CASE("disconnect flood: orphaned jobs stay bounded per uid; others are served", "[daemon][hostile]") {
    Running d(
        RunningOptions{0, "max_in_flight_per_client = " + std::to_string(kCap), {{"allowed_uids", "[0, 65534]"}}});
    d.require_ready();
    d.require_all_healthy();
    REQUIRE(::chmod(d.setup.socket.c_str(), 0666) == 0);  // uid 65534 is admitted by allowed_uids
    PgSession replica(ClusterEnv::get().superuser_conninfo("eu-west-1"));
    RawClient good(d.setup.socket);

    const std::string marker = "rgd-disconnect-flood";
    Child flooder = fork_child(
        [&] { return disconnect_flooder(d.setup.socket, "select pg_sleep(5) /* " + marker + " */", kCap, 4000ms); });
    int most = 0;
    int served = 0;
    while (flooder.running()) {
        most = std::max(most, active_with(replica, marker));
        // Success is asserted, not latency: a read may wait behind the flood's
        // queries on a pooled connection (60 s only catches a read that is lost).
        const shm::Response r = good.query(shm::Op::read_local, "select " + std::to_string(served), kServedWithin);
        INFO(r.error);
        REQUIRE(r.status == shm::Status::ok);
        ++served;
    }
    CHECK(flooder.exit_code() == 0);
    INFO(d.process.log());
    // At most kCap orphans before a new session of the uid waits, plus the kCap
    // that session took before it went away too.
    CHECK(most <= 2 * kCap);
    CHECK(served > 0);
    CHECK(eventually([&] { return active_with(replica, marker) == 0; }, 10s));
}

TEST_CASE("a client that stops reading while its results keep coming is dropped; others are served",
          "[daemon][hostile]") {
    Running d(RunningOptions{0, "max_backlog = \"1MiB\"", {}});
    d.require_ready();
    d.require_all_healthy();
    RawClient good(d.setup.socket);
    RawClient hog(d.setup.socket);
    // ~1.2 MB each, never read.
    for (int i = 0; i < 20; ++i) {
        shm::RequestView r;
        r.op = shm::Op::read_local;
        const std::string sql =
            "select repeat('x', 1000) from generate_series(1, 1200) /* " + std::to_string(i) + " */";
        r.sql = sql;
        (void)hog.send(r);
    }
    const auto dropped = [&] {
        pollfd p{hog.socket.get(), POLLIN, 0};
        char byte;
        return ::poll(&p, 1, 0) == 1 && ::recv(hog.socket.get(), &byte, 1, MSG_DONTWAIT) == 0;
    };
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    int served = 0;
    while (!dropped()) {
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        const shm::Response r = good.query(shm::Op::read_local, "select " + std::to_string(served));
        INFO(r.error);
        REQUIRE(r.status == shm::Status::ok);
        ++served;
    }
    const std::string log = d.process.log();
    INFO(log);
    CHECK_THAT(log, Catch::Contains("dropped: it does not read its responses"));
    CHECK_THAT(log, Catch::Contains("daemon.max_backlog (1 MiB)"));
    CHECK(d.status()["clients"].num() == 1);
    CHECK(good.query(shm::Op::read_primary, "select 1").status == shm::Status::ok);
}

TEST_CASE("a request over max_request or the ring is an error and the client goes on", "[daemon][hostile]") {
    Running d;  // ring_size 1 MiB (a record: 524272 bytes), max_request 256 KiB
    d.require_ready();
    d.require_all_healthy();

    // Through libregiond: over the ring, refused before it is sent; over
    // max_request but within the ring, refused by the daemon.
    char error[256] = {};
    rgd_client* c = rgd_connect(d.setup.socket.c_str(), error, sizeof error);
    INFO(error);
    REQUIRE(c != nullptr);
    const std::string over_ring = "select '" + std::string(600 * 1024, 'x') + "'";
    rgd_result* r = rgd_read_local(c, over_ring.c_str(), 0, nullptr);
    CHECK(rgd_ok(r) == 0);
    CHECK_THAT(rgd_error(r), Catch::StartsWith("request of 600.") && Catch::Contains("exceeds max_request"));
    rgd_free(r);
    const std::string over_max = "select '" + std::string(300 * 1024, 'x') + "'";
    r = rgd_read_local(c, over_max.c_str(), 0, nullptr);
    CHECK(rgd_ok(r) == 0);
    CHECK_THAT(rgd_error(r), Catch::Matches("request of 300\\.\\d+ KiB exceeds max_request \\(256 KiB\\)"));
    rgd_free(r);
    r = rgd_read_local(c, "select 'next'", 0, nullptr);
    CHECK(rgd_ok(r) == 1);
    rgd_free(r);
    rgd_disconnect(c);

    // A raw client pushes a record up to the ring's limit: answered, not dropped.
    RawClient raw(d.setup.socket);
    const std::string almost_ring = "select '" + std::string(raw.segment->requests().max_payload() - 200, 'x') + "'";
    const shm::Response big = raw.query(shm::Op::read_local, almost_ring);
    CHECK(big.status == shm::Status::error);
    CHECK_THAT(big.error, Catch::Contains("exceeds max_request (256 KiB)"));
    CHECK(raw.query(shm::Op::read_local, "select 1").status == shm::Status::ok);
    CHECK(d.status()["counters"]["clients_dropped"].num() == 0);
}

TEST_CASE("timeout_ms above daemon.max_request_timeout is capped", "[daemon][hostile]") {
    Running d(RunningOptions{0, "request_timeout = \"1s\"\nmax_request_timeout = \"2s\"", {}});
    d.require_ready();
    d.require_all_healthy();
    RawClient c(d.setup.socket);
    // Ten minutes asked for; the daemon gives it two seconds.
    const shm::Response r = c.query(shm::Op::read_local, "select pg_sleep(6)", 10s, 600'000);
    CHECK(r.status == shm::Status::error);
    CHECK_THAT(r.error, Catch::Matches(".*timed out after (199\\d|2000) ms.*"));
    CHECK(c.query(shm::Op::read_local, "select 1").status == shm::Status::ok);
}

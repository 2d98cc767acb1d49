// The event-loop interface (rgd_start_*, rgd_event_fd, rgd_collect,
// rgd_calls_pending, rgd_cancel) of libregiond.so against the in-process fake
// daemon: thousands of calls in flight from one thread, timeouts and
// cancellation, a daemon restart under calls in flight, errors found at
// start, a descriptor that is quiet when nothing is left, and blocking calls
// beside event-loop calls.
#include <catch2/catch.hpp>

#include <poll.h>
#include <regiond/client.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fake_daemon.hpp"

using regiond::test::eventually;
using regiond::test::FakeDaemon;
using regiond::test::TempDir;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

struct Finished {
    bool ok = false;
    std::string error;
    std::vector<std::string> row;  ///< the first row's values ("<NULL>" for NULL)
    std::vector<std::string> columns;
};

Finished finished_of(rgd_result* r) {
    Finished f;
    f.ok = rgd_ok(r) == 1;
    f.error = rgd_error(r);
    for (int c = 0; c < rgd_ncols(r); ++c) {
        f.columns.emplace_back(rgd_colname(r, c));
        const char* v = rgd_value(r, 0, c);
        f.row.emplace_back(v != nullptr ? v : "<NULL>");
    }
    rgd_free(r);
    return f;
}

std::string column(const Finished& f, const std::string& name) {
    for (std::size_t i = 0; i < f.columns.size(); ++i)
        if (f.columns[i] == name) return f.row[i];
    return "<no column " + name + ">";
}

// Waits on the descriptor (poll, as an event loop would) and collects until
// `want` calls finished or `limit` passed. Counts wake-ups that found nothing.
std::map<rgd_call_id, Finished> drive(rgd_client* c, std::size_t want, std::chrono::milliseconds limit,
                                      int* empty_wakeups = nullptr) {
    std::map<rgd_call_id, Finished> done;
    const int fd = rgd_event_fd(c);
    REQUIRE(fd >= 0);
    const auto deadline = Clock::now() + limit;
    while (done.size() < want && Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        const int n = ::poll(&p, 1, 200);
        if (n <= 0) continue;
        int got = 0;
        rgd_call_id id = 0;
        while (rgd_result* r = rgd_collect(c, &id)) {
            REQUIRE(id != 0);
            REQUIRE(done.count(id) == 0);  // each call finishes exactly once
            done.emplace(id, finished_of(r));
            ++got;
        }
        CHECK(id == 0);
        if (got == 0 && empty_wakeups != nullptr) ++*empty_wakeups;
    }
    return done;
}

rgd_client* connect(const FakeDaemon& d) {
    char error[256];
    rgd_client* c = rgd_connect(d.socket_path().c_str(), error, sizeof error);
    INFO(error);
    REQUIRE(c != nullptr);
    return c;
}

bool readable_now(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

}  // namespace

TEST_CASE("event loop: 5000 calls in flight from one thread, each with its own answer", "[event-loop]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    rgd_client* c = connect(d);

    constexpr int kCalls = 5000;
    std::map<rgd_call_id, std::string> expected;
    for (int i = 0; i < kCalls; ++i) {
        const std::string n = std::to_string(i);
        const char* params[] = {n.c_str()};
        const rgd_call_id id = (i % 2 == 0) ? rgd_start_read_local(c, "select $1", 1, params)
                                            : rgd_start_read_primary(c, "select $1", 1, params);
        REQUIRE(id != 0);
        REQUIRE(expected.count(id) == 0);
        expected.emplace(id, n);
    }
    CHECK(rgd_calls_pending(c) > 0);
    auto done = drive(c, kCalls, 60s);
    REQUIRE(done.size() == static_cast<std::size_t>(kCalls));
    int wrong = 0;
    for (const auto& [id, f] : done) {
        if (!f.ok || column(f, "p1") != expected.at(id)) ++wrong;
    }
    CHECK(wrong == 0);
    CHECK(rgd_calls_pending(c) == 0);
    // Nothing left: the descriptor is quiet (an event loop does not spin on it).
    rgd_call_id id = 7;
    CHECK(rgd_collect(c, &id) == nullptr);
    CHECK(id == 0);
    CHECK_FALSE(readable_now(rgd_event_fd(c)));
    rgd_disconnect(c);
}

TEST_CASE("event loop: the daemon's answer alone makes the descriptor readable", "[event-loop]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    rgd_client* c = connect(d);
    rgd_set_timeout_ms(c, 0);  // no deadline: no timer of the library's could wake the loop
    for (int i = 0; i < 20; ++i) {
        const rgd_call_id id = rgd_start_read_local(c, "sleep 30", 0, nullptr);
        REQUIRE(id != 0);
        CHECK_FALSE(readable_now(rgd_event_fd(c)));  // nothing finished yet
        // Only the daemon's write to the client eventfd (ClientHeader::client_wake) wakes this poll.
        auto done = drive(c, 1, 10s);
        REQUIRE(done.count(id) == 1);
        CHECK(done.at(id).ok);
    }
    rgd_disconnect(c);
}

TEST_CASE("event loop: every verb, and errors found at start finish like any call", "[event-loop]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    rgd_client* c = connect(d);

    const char* keys[] = {"k1", "k2"};
    const char* p[] = {"x"};
    const rgd_call_id w = rgd_start_write(c, "insert $1", 1, p, 2, keys);
    const rgd_call_id rc = rgd_start_read_consistent(c, "1234/0/ABC", "select $1", 1, p);
    const rgd_call_id cr = rgd_start_cached_read(c, "key-1", 30, "select $1", 1, p);
    const rgd_call_id bad_token = rgd_start_read_consistent(c, "not a token", "select 1", 0, nullptr);
    const rgd_call_id no_sql = rgd_start_read_local(c, nullptr, 0, nullptr);
    const rgd_call_id no_key = rgd_start_cached_read(c, "", 0, "select 1", 0, nullptr);
    CHECK(rgd_start_read_local(nullptr, "select 1", 0, nullptr) == 0);
    CHECK(rgd_event_fd(nullptr) == -1);
    CHECK(rgd_collect(nullptr, nullptr) == nullptr);
    CHECK(rgd_cancel(nullptr, w) == 0);
    CHECK(rgd_calls_pending(nullptr) == 0);

    auto done = drive(c, 6, 10s);
    REQUIRE(done.size() == 6);
    CHECK(done.at(w).ok);
    CHECK(column(done.at(w), "op") == "write");
    CHECK(column(done.at(w), "keys") == "k1,k2");
    CHECK(column(done.at(rc), "op") == "read_consistent");
    CHECK(column(done.at(rc), "token") == "1234/0/ABC");
    CHECK(column(done.at(cr), "op") == "cached_read");
    CHECK(column(done.at(cr), "key") == "key-1");
    CHECK(column(done.at(cr), "ttl") == "30");
    CHECK_FALSE(done.at(bad_token).ok);
    CHECK(done.at(bad_token).error.find("token") != std::string::npos);
    CHECK(done.at(no_sql).error == "sql is NULL");
    CHECK(done.at(no_key).error == "cache key is empty: rgd_cached_read needs a key");
    rgd_disconnect(c);
}

TEST_CASE("event loop: a call past its deadline finishes as timed out and the daemon is told", "[event-loop]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    rgd_client* c = connect(d);
    rgd_set_timeout_ms(c, 100);
    const rgd_call_id slow = rgd_start_read_local(c, "sleep 20000", 0, nullptr);
    rgd_set_timeout_ms(c, 30000);
    const rgd_call_id quick = rgd_start_read_local(c, "select 1", 0, nullptr);
    auto done = drive(c, 2, 10s);
    REQUIRE(done.size() == 2);
    CHECK(done.at(quick).ok);
    CHECK_FALSE(done.at(slow).ok);
    CHECK(done.at(slow).error == "timed out after 100 ms");
    CHECK(eventually([&] { return d.cancels_seen() == 1; }));
    CHECK(rgd_calls_pending(c) == 0);
    rgd_disconnect(c);
}

TEST_CASE("event loop: rgd_cancel finishes a call at once, exactly once", "[event-loop]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    rgd_client* c = connect(d);
    const rgd_call_id slow = rgd_start_read_local(c, "sleep 20000", 0, nullptr);
    REQUIRE(eventually([&] { return d.requests_seen() == 1; }));
    CHECK(rgd_cancel(c, slow) == 1);
    CHECK(rgd_cancel(c, slow) == 0);     // already finished
    CHECK(rgd_cancel(c, 987654) == 0);   // unknown
    CHECK(readable_now(rgd_event_fd(c)));  // the cancelled call waits to be collected
    rgd_call_id id = 0;
    rgd_result* r = rgd_collect(c, &id);
    REQUIRE(r != nullptr);
    CHECK(id == slow);
    CHECK(std::string(rgd_error(r)) == "cancelled");
    rgd_free(r);
    CHECK(eventually([&] { return d.cancels_seen() == 1; }));
    CHECK(rgd_calls_pending(c) == 0);
    rgd_disconnect(c);
}

TEST_CASE("event loop: the daemon restarts under 400 calls in flight: reads are re-sent, none hangs", "[event-loop]") {
    TempDir dir;
    auto d = std::make_unique<FakeDaemon>(dir.file("regiond.sock"));
    rgd_client* c = connect(*d);
    std::map<rgd_call_id, std::string> reads, writes;
    for (int i = 0; i < 200; ++i) {
        const std::string n = std::to_string(i);
        const char* p[] = {n.c_str()};
        reads.emplace(rgd_start_read_local(c, "sleep 300", 1, p), n);
        writes.emplace(rgd_start_write(c, "sleep 300", 1, p, 0, nullptr), n);
    }
    REQUIRE(eventually([&] { return d->requests_seen() == 400; }));
    d->stop();  // a crash: the 400 requests were taken, none answered
    d.reset();
    d = std::make_unique<FakeDaemon>(dir.file("regiond.sock"));

    auto done = drive(c, 400, 30s);
    REQUIRE(done.size() == 400);
    int reads_ok = 0, writes_lost = 0;
    for (const auto& [id, n] : reads) {
        const Finished& f = done.at(id);
        INFO(f.error);
        if (f.ok && column(f, "p1") == n) ++reads_ok;
    }
    for (const auto& [id, n] : writes) {
        const Finished& f = done.at(id);
        if (!f.ok && f.error == "connection to regiond lost (daemon restarted?): retry") ++writes_lost;
    }
    CHECK(reads_ok == 200);     // a read is always safe to send again
    CHECK(writes_lost == 200);  // a write the daemon took is never sent twice
    CHECK(d->requests_seen() == 200);

    // And the client goes on on the new daemon.
    const rgd_call_id after = rgd_start_read_local(c, "select 1", 0, nullptr);
    auto more = drive(c, 1, 10s);
    REQUIRE(more.count(after) == 1);
    CHECK(more.at(after).ok);
    rgd_disconnect(c);
}

TEST_CASE("event loop: no daemon: a fresh call finishes with the daemon's error", "[event-loop]") {
    TempDir dir;
    auto d = std::make_unique<FakeDaemon>(dir.file("regiond.sock"));
    rgd_client* c = connect(*d);
    d->stop();
    d.reset();
    // Sent before the hang-up was seen: lost, looked for the daemon again for
    // the restart grace, then failed (not held until its 30 s deadline).
    const rgd_call_id first = rgd_start_read_local(c, "select 1", 0, nullptr);
    auto done = drive(c, 1, 10s);
    REQUIRE(done.count(first) == 1);
    CHECK_FALSE(done.at(first).ok);
    CHECK(done.at(first).error.find("daemon not running at " + dir.file("regiond.sock")) != std::string::npos);
    // Known dead now: a fresh call fails at once with the daemon's error.
    const rgd_call_id second = rgd_start_read_local(c, "select 1", 0, nullptr);
    CHECK(readable_now(rgd_event_fd(c)));
    rgd_call_id id = 0;
    rgd_result* r = rgd_collect(c, &id);
    REQUIRE(r != nullptr);
    CHECK(id == second);
    CHECK(std::string(rgd_error(r)) == "daemon not running at " + dir.file("regiond.sock"));
    rgd_free(r);
    rgd_disconnect(c);
}

TEST_CASE("event loop: blocking calls on other threads beside event-loop calls", "[event-loop]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    rgd_client* c = connect(d);
    std::atomic<int> blocking_wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 300; ++i) {
                const std::string n = std::to_string(t * 100000 + i);
                const char* p[] = {n.c_str()};
                rgd_result* r = rgd_read_local(c, "select $1", 1, p);
                const char* v = rgd_value(r, 0, 6);  // p1 of the echo
                if (!rgd_ok(r) || v == nullptr || n != v) ++blocking_wrong;
                rgd_free(r);
            }
        });
    std::map<rgd_call_id, std::string> expected;
    std::map<rgd_call_id, Finished> done;
    for (int round = 0; round < 20; ++round) {
        for (int i = 0; i < 50; ++i) {
            const std::string n = std::to_string(round * 1000 + i);
            const char* p[] = {n.c_str()};
            expected.emplace(rgd_start_read_local(c, "select $1", 1, p), n);
        }
        auto part = drive(c, 50, 30s);
        done.insert(part.begin(), part.end());
    }
    for (auto& t : threads) t.join();
    CHECK(blocking_wrong == 0);
    REQUIRE(done.size() == expected.size());
    int wrong = 0;
    for (const auto& [id, n] : expected)
        if (!done.at(id).ok || column(done.at(id), "p1") != n) ++wrong;
    CHECK(wrong == 0);
    rgd_disconnect(c);
}

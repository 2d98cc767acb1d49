// libregiond.so through its public API against the in-process fake daemon
// (fake_daemon.hpp): every operation, NULLs, large results, timeouts, request
// size limits, a full request ring, many threads on one client, reconnect after a
// daemon restart, re-send rules for calls in flight, health.
#include <catch2/catch.hpp>

#include <regiond/client.h>
#include <regiond/client.hpp>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "fake_daemon.hpp"

using regiond::test::eventually;
using regiond::test::FakeDaemon;
using regiond::test::FakeDaemonOptions;
using regiond::test::TempDir;
using namespace std::chrono_literals;

namespace {

// Column index by name in the fake daemon's echo row.
int col(const regiond::Result& r, std::string_view name) {
    for (int c = 0; c < r.ncols(); ++c)
        if (r.column(c) == name) return c;
    FAIL("no column " << name);
    return -1;
}

std::string text(const regiond::Result& r, std::string_view name, int row = 0) {
    const auto v = r.value(row, col(r, name));
    return v ? std::string(*v) : std::string("<NULL>");
}

regiond::Client connect(const FakeDaemon& d) {
    regiond::Client c = regiond::Client::connect(d.socket_path());
    INFO(c.connect_error());
    REQUIRE(c);
    return c;
}

}  // namespace

TEST_CASE("connect: missing daemon, $REGIOND_SOCKET, refusals, version mismatch", "[connect]") {
    TempDir dir;
    char error[512];
    CHECK(rgd_connect(dir.file("none.sock").c_str(), error, sizeof error) == nullptr);
    CHECK(std::string(error) == "daemon not running at " + dir.file("none.sock"));

    FakeDaemon d(dir.file("regiond.sock"));
    ::setenv("REGIOND_SOCKET", d.socket_path().c_str(), 1);
    rgd_client* c = rgd_connect(nullptr, error, sizeof error);
    ::unsetenv("REGIOND_SOCKET");
    REQUIRE(c != nullptr);
    CHECK(std::string(error) == "");
    CHECK(eventually([&] { return d.clients_connected() == 1; }));
    rgd_disconnect(c);
    CHECK(eventually([&] { return d.clients_connected() == 0; }));

    FakeDaemonOptions refuse;
    refuse.refuse = regiond::shm::WelcomeStatus::permission_denied;
    refuse.refuse_message = "permission denied: uid 1000 is not in group regiond";
    FakeDaemon refusing(dir.file("refusing.sock"), refuse);
    CHECK(rgd_connect(refusing.socket_path().c_str(), error, sizeof error) == nullptr);
    CHECK(std::string(error) == "permission denied: uid 1000 is not in group regiond");

    FakeDaemonOptions full;
    full.refuse = regiond::shm::WelcomeStatus::too_many_clients;
    FakeDaemon silent(dir.file("silent.sock"), full);
    CHECK(rgd_connect(silent.socket_path().c_str(), error, sizeof error) == nullptr);
    CHECK(std::string(error).find("too many clients") != std::string::npos);

    FakeDaemonOptions newer_options;
    newer_options.protocol_version = 7;
    FakeDaemon newer(dir.file("newer.sock"), newer_options);
    CHECK(rgd_connect(newer.socket_path().c_str(), error, sizeof error) == nullptr);
    const std::string mismatch = error;
    CHECK(mismatch.find("protocol version mismatch") == 0);
    CHECK(mismatch.find("version " + std::to_string(regiond::shm::kProtocolVersion)) != std::string::npos);
    CHECK(mismatch.find("version 7") != std::string::npos);
}

TEST_CASE("operations: served_by, params with NULL, write token, timeout_ms", "[ops]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    regiond::Client db = connect(d);

    auto local = db.read_local("select $1, $2, $3", {"a", std::nullopt, ""});
    REQUIRE(local.ok());
    CHECK(local.served_by() == "fake/replica");
    CHECK(local.route_reason() == "fake: read_local echoed");
    CHECK(text(local, "op") == "read_local");
    CHECK(text(local, "sql") == "select $1, $2, $3");
    CHECK(text(local, "p1") == "a");
    CHECK(text(local, "p2") == "<NULL>");
    CHECK(text(local, "p3") == "");
    CHECK(local.affected() == -1);
    CHECK(local.token() == "");
    // The client's deadline travels with the request.
    const long timeout = std::stol(text(local, "timeout_ms"));
    CHECK(timeout > 29000);
    CHECK(timeout <= 30000);

    auto primary = db.read_primary("select 1");
    REQUIRE(primary.ok());
    CHECK(primary.served_by() == "fake/primary");
    CHECK(primary.route_reason() == "fake: read_primary echoed");
    CHECK(text(primary, "op") == "read_primary");

    auto write = db.write("update t set v = $1", {"x"}, {"user:1", "user:2"});
    REQUIRE(write.ok());
    CHECK(write.token() == "1234/0/ABC");
    CHECK(write.affected() == 1);
    CHECK(text(write, "keys") == "user:1,user:2");

    auto consistent = db.read_consistent("1234/0/ABC", "select 2");
    REQUIRE(consistent.ok());
    CHECK(text(consistent, "op") == "read_consistent");
    CHECK(text(consistent, "token") == "1234/0/ABC");
    // "" is "no write to wait for": still a read_consistent, the daemon serves it
    // as read_local (and can say so in route_reason and its counters).
    auto no_token = db.read_consistent("", "select 3");
    REQUIRE(no_token.ok());
    CHECK(text(no_token, "op") == "read_consistent");
    CHECK(text(no_token, "token") == "");
    CHECK(text(no_token, "sql") == "select 3");

    const auto seen = d.requests_seen();
    auto malformed = db.read_consistent("1234-0-ABC", "select 4");
    CHECK_FALSE(malformed.ok());
    CHECK(malformed.route_reason() == "");  // routed nowhere
    CHECK(malformed.error().find("malformed consistency token") == 0);
    CHECK(d.requests_seen() == seen);  // no round trip

    auto cached = db.cached_read("user:1", 0s, "select 5");
    REQUIRE(cached.ok());
    CHECK(text(cached, "op") == "cached_read");
    CHECK(text(cached, "key") == "user:1");
    CHECK(text(cached, "ttl") == "0");
    auto cached_ttl = db.cached_read("user:1", 90s, "select 5");
    CHECK(text(cached_ttl, "ttl") == "90");
    auto no_key = db.cached_read("", 0s, "select 5");
    CHECK_FALSE(no_key.ok());

    auto error = db.read_local("error");
    CHECK_FALSE(error.ok());
    CHECK(error.sqlstate() == "42P01");
    CHECK(error.error() == "relation \"no_such_table\" does not exist");
    CHECK(error.route_reason() == "fake: the nearest replica");
    CHECK(error.nrows() == 0);

    // The C++ wrapper: iteration and the throwing helper.
    int n = 0;
    for (regiond::Row row : db.read_local("rows 3")) {
        CHECK(row[0] == std::to_string(n));
        CHECK(row.size() == 2);
        ++n;
    }
    CHECK(n == 3);
    CHECK_THROWS_AS(db.read_local("error").value_or_throw(), regiond::Error);
    CHECK_NOTHROW(db.read_local("select 1").value_or_throw());
}

TEST_CASE("C API: params arrays with NULL entries and argument errors", "[ops]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    char error[256];
    rgd_client* c = rgd_connect(d.socket_path().c_str(), error, sizeof error);
    REQUIRE(c != nullptr);
    const char* params[] = {"x", nullptr};
    rgd_result* r = rgd_read_local(c, "select $1, $2", 2, params);
    REQUIRE(rgd_ok(r) == 1);
    CHECK(std::string(rgd_value(r, 0, 6)) == "x");
    CHECK(rgd_value(r, 0, 7) == nullptr);
    CHECK(std::string(rgd_route_reason(r)) == "fake: read_local echoed");
    rgd_free(r);

    r = rgd_read_local(c, nullptr, 0, nullptr);
    CHECK(rgd_ok(r) == 0);
    CHECK(std::string(rgd_error(r)) == "sql is NULL");
    rgd_free(r);

    // read_consistent: the token and the params reach the request as given; a NULL
    // token is "".
    const char* consistent_params[] = {nullptr, "y"};
    r = rgd_read_consistent(c, "7713697811223072330/0/41F2E80", "select $1, $2", 2, consistent_params);
    REQUIRE(rgd_ok(r) == 1);
    CHECK(std::string(rgd_value(r, 0, 0)) == "read_consistent");
    CHECK(std::string(rgd_value(r, 0, 3)) == "7713697811223072330/0/41F2E80");
    CHECK(rgd_value(r, 0, 6) == nullptr);
    CHECK(std::string(rgd_value(r, 0, 7)) == "y");
    rgd_free(r);
    r = rgd_read_consistent(c, nullptr, "select 1", 0, nullptr);
    REQUIRE(rgd_ok(r) == 1);
    CHECK(std::string(rgd_value(r, 0, 0)) == "read_consistent");
    CHECK(std::string(rgd_value(r, 0, 3)) == "");
    rgd_free(r);
    r = rgd_read_consistent(c, "1/0/1", nullptr, 0, nullptr);
    CHECK(rgd_ok(r) == 0);
    CHECK(std::string(rgd_error(r)) == "sql is NULL");
    rgd_free(r);
    r = rgd_read_local(c, "x", 2, nullptr);
    CHECK(rgd_ok(r) == 0);
    rgd_free(r);
    r = rgd_read_local(c, "x", -1, nullptr);
    CHECK(rgd_ok(r) == 0);
    rgd_free(r);
    const char* keys[] = {"k", nullptr};
    r = rgd_write(c, "x", 0, nullptr, 2, keys);
    CHECK(rgd_ok(r) == 0);
    CHECK(std::string(rgd_error(r)) == "invalidate_keys[1] is NULL");
    rgd_free(r);
    rgd_disconnect(c);
}

TEST_CASE("a 200000-row result arrives whole", "[large]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    regiond::Client db = connect(d);
    auto r = db.read_local("rows 200000");
    REQUIRE(r.ok());
    REQUIRE(r.nrows() == 200000);
    bool all = true;
    for (int i = 0; i < r.nrows(); ++i)
        all = all && r.value(i, 0) == std::to_string(i) && r.value(i, 1) == "row-" + std::to_string(i);
    CHECK(all);
}

TEST_CASE("waiting follows the daemon's spin permit: without one the client never spins", "[waiting]") {
    TempDir dir;
    FakeDaemonOptions no_permit;
    no_permit.spin_permit_ns = 0;
    FakeDaemon d(dir.file("regiond.sock"), no_permit);
    regiond::Client db = connect(d);
    for (int i = 0; i < 200; ++i) REQUIRE(db.read_local("select 1").ok());
    // Two loop turns later the fake has summed every count made before now.
    const std::uint64_t turn = d.loop_turns();
    REQUIRE(eventually([&] { return d.loop_turns() >= turn + 2; }));
    CHECK(d.waits_slept() >= 1);
    CHECK(d.waits_spun() == 0);

    // With a permit (the fake's default) the client spins while its own
    // expectation allows, which it does at first.
    TempDir dir2;
    FakeDaemon permitted(dir2.file("regiond.sock"));
    regiond::Client db2 = connect(permitted);
    // Answered 30 ms later (not a wait of the test: the answer must come
    // after any spin, so this wait both spins and sleeps).
    REQUIRE(db2.read_local("sleep 30").ok());
    // Counted when the wait ended, summed by the fake at its next loop turn.
    CHECK(eventually([&] { return permitted.waits_spun() >= 1 && permitted.waits_slept() >= 1; }));
}

TEST_CASE("timeouts: error text, cancel, a late answer is dropped", "[timeout]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    regiond::Client db = connect(d);
    db.set_timeout(100ms);
    auto slow = db.read_local("sleep 400");
    CHECK_FALSE(slow.ok());
    CHECK(slow.error() == "timed out after 100 ms");
    CHECK(eventually([&] { return d.cancels_seen() == 1; }));

    // A late answer (sleep 150 > timeout 60) must never be taken for a later call's.
    db.set_timeout(60ms);
    CHECK(db.read_local("sleep 150").error() == "timed out after 60 ms");
    db.set_timeout(5000ms);
    for (int i = 0; i < 20; ++i) {
        auto r = db.read_local("select $1", {std::to_string(i)});
        REQUIRE(r.ok());
        CHECK(text(r, "p1") == std::to_string(i));
    }
    CHECK(std::stol(text(db.read_local("x"), "timeout_ms")) <= 5000);
}

TEST_CASE("request size: too large fails without sending; a full ring is waited out", "[size]") {
    TempDir dir;
    FakeDaemonOptions small;
    small.request_capacity = 4096;
    FakeDaemon d(dir.file("regiond.sock"), small);
    regiond::Client db = connect(d);
    auto big = db.read_local(std::string(5000, 'x'));
    CHECK_FALSE(big.ok());
    CHECK(big.error() ==
          "request of 4.91 KiB exceeds max_request (the request ring carries at most 1.98 KiB; "
          "daemon.ring_size / 2 - 16 bytes)");
    CHECK(d.requests_seen() == 0);

    // Each request ~1.5 KiB: two fill the 4 KiB ring, the rest wait for room.
    d.pause_requests(true);
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            auto r = db.read_local(std::string(1500, 'a' + t));
            if (r.ok() && text(r, "sql") == std::string(1500, 'a' + t)) ++ok;
        });
    // Nothing is consumed while paused; then everything goes through.
    CHECK(d.requests_seen() == 0);
    d.pause_requests(false);
    for (auto& t : threads) t.join();
    CHECK(ok == 4);

    // Paused for longer than the deadline: the sender times out waiting for room.
    db.set_timeout(150ms);
    d.pause_requests(true);
    std::vector<std::thread> blocked;
    std::atomic<int> timed_out{0};
    for (int t = 0; t < 3; ++t)
        blocked.emplace_back([&] {
            if (db.read_local(std::string(1500, 'z')).error() == "timed out after 150 ms") ++timed_out;
        });
    for (auto& t : blocked) t.join();
    CHECK(timed_out == 3);
    d.pause_requests(false);
}

TEST_CASE("16 threads x 500 mixed calls on one client: every answer matches its request", "[threads]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    regiond::Client db = connect(d);
    std::atomic<int> mismatches{0}, failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 500; ++i) {
                const std::string id = std::to_string(t) + ":" + std::to_string(i);
                switch (i % 4) {
                    case 0: {
                        auto r = db.read_local("select $1", {id});
                        if (!r.ok())
                            ++failures;
                        else if (text(r, "p1") != id || text(r, "op") != "read_local")
                            ++mismatches;
                        break;
                    }
                    case 1: {
                        auto r = db.write("insert $1", {id}, {id});
                        if (!r.ok())
                            ++failures;
                        else if (text(r, "keys") != id || r.affected() != 1)
                            ++mismatches;
                        break;
                    }
                    case 2: {
                        const int n = 1 + (i % 97) * 10;
                        auto r = db.read_local("rows " + std::to_string(n));
                        if (!r.ok())
                            ++failures;
                        else if (r.nrows() != n || r.value(n - 1, 0) != std::to_string(n - 1))
                            ++mismatches;
                        break;
                    }
                    default: {
                        auto r = db.read_primary("select $1", {id});
                        if (!r.ok())
                            ++failures;
                        else if (text(r, "p1") != id || r.served_by() != "fake/primary")
                            ++mismatches;
                    }
                }
            }
        });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    CHECK(mismatches == 0);
    CHECK(d.requests_seen() == 16 * 500);
}

TEST_CASE("reconnect: the daemon restarts, the next call succeeds", "[reconnect]") {
    TempDir dir;
    const std::string path = dir.file("regiond.sock");
    auto first = std::make_unique<FakeDaemon>(path);
    regiond::Client db = connect(*first);
    REQUIRE(db.read_local("select 1").ok());

    first->stop();  // "SIGKILL": sockets close, heartbeat stops
    auto down = db.read_local("select 2");
    CHECK_FALSE(down.ok());
    CHECK(down.error().find("daemon not running at " + path) != std::string::npos);

    FakeDaemon second(path);
    auto again = db.read_local("select 3");
    INFO(again.error());
    REQUIRE(again.ok());
    CHECK(text(again, "sql") == "select 3");
    CHECK(eventually([&] { return second.clients_connected() == 1; }));
    CHECK(db.health().ok());
}

TEST_CASE("re-send: a read in flight moves to the restarted daemon", "[reconnect]") {
    TempDir dir;
    const std::string path = dir.file("regiond.sock");
    auto old_daemon = std::make_unique<FakeDaemon>(path);
    regiond::Client db = connect(*old_daemon);
    regiond::Result result;
    std::thread caller([&] { result = db.read_local("sleep 300"); });
    REQUIRE(eventually([&] { return old_daemon->requests_seen() == 1; }));
    FakeDaemon new_daemon(path);  // takes over the path first...
    old_daemon->stop();           // ...then the old one dies with the read taken
    caller.join();
    INFO(result.error());
    REQUIRE(result.ok());
    CHECK(new_daemon.requests_seen() == 1);
}

TEST_CASE("re-send: a write the dead daemon never took is re-sent", "[reconnect]") {
    TempDir dir;
    const std::string path = dir.file("regiond.sock");
    auto old_daemon = std::make_unique<FakeDaemon>(path);
    regiond::Client db = connect(*old_daemon);
    old_daemon->pause_requests(true);
    regiond::Result result;
    std::thread caller([&] { result = db.write("insert 1"); });
    FakeDaemon new_daemon(path);
    // Whether the write reached the paused ring before the crash or after (into a
    // dead ring), the old daemon never took it, so it must be re-sent.
    old_daemon->stop();
    caller.join();
    INFO(result.error());
    REQUIRE(result.ok());
    CHECK(result.token() == "1234/0/ABC");
    CHECK(old_daemon->requests_seen() == 0);
    CHECK(new_daemon.requests_seen() == 1);
}

TEST_CASE("re-send: a write the dead daemon took is NOT re-sent", "[reconnect]") {
    TempDir dir;
    const std::string path = dir.file("regiond.sock");
    auto old_daemon = std::make_unique<FakeDaemon>(path);
    regiond::Client db = connect(*old_daemon);
    FakeDaemon new_daemon(path);  // would answer a (wrong) re-send
    auto r = db.write("die");     // the old daemon takes it, then crashes
    CHECK_FALSE(r.ok());
    CHECK(r.error() == "connection to regiond lost (daemon restarted?): retry");
    CHECK(new_daemon.requests_seen() == 0);
    // The next call reconnects by itself.
    auto next = db.read_local("select 1");
    INFO(next.error());
    CHECK(next.ok());
    CHECK(new_daemon.requests_seen() == 1);
}

TEST_CASE("health: one row per endpoint from the state segment", "[health]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    regiond::Client db = connect(d);
    const auto seen = d.requests_seen();
    auto h = db.health();
    REQUIRE(h.ok());
    CHECK(d.requests_seen() == seen);  // no round trip
    CHECK(h.served_by() == "");
    CHECK(h.route_reason() == "");
    // The contract's columns in their order, then replay_lsn last.
    REQUIRE(h.ncols() == 9);
    const char* names[] = {"region",    "endpoint", "role",          "healthy",   "lag_ms",
                           "lag_bytes", "rtt_ms",   "cache_healthy", "replay_lsn"};
    for (int c = 0; c < 9; ++c) CHECK(h.column(c) == names[c]);
    REQUIRE(h.nrows() == 3);
    // replay_lsn as PostgreSQL prints it (high half first), "" while unknown.
    const std::vector<std::vector<std::string>> rows = {
        {"us-east-1", "primary-1", "primary", "t", "0", "0", "20.513", "t", "16/B374D848"},
        {"eu-west-1", "replica-1", "replica", "t", "12", "345", "0.052", "f", "0/16B3748"},
        {"ap-northeast-1", "replica-2", "replica", "f", "0", "0", "0.000", "f", ""},
    };
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 9; ++c) {
            INFO("row " << r << " column " << names[c]);
            CHECK(h.value(r, c) == rows[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)]);
        }
}

TEST_CASE("clients come and go without disturbing each other", "[clients]") {
    TempDir dir;
    FakeDaemon d(dir.file("regiond.sock"));
    regiond::Client a = connect(d);
    {
        regiond::Client b = connect(d);
        CHECK(eventually([&] { return d.clients_connected() == 2; }));
        CHECK(b.read_local("x").ok());
    }
    CHECK(eventually([&] { return d.clients_connected() == 1; }));
    CHECK(a.read_local("still here").ok());
}

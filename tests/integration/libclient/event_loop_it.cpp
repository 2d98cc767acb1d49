// libregiond's event-loop interface (rgd_start_*, rgd_event_fd, rgd_collect,
// rgd_cancel), called through the C API against the real regiond on the local
// cluster (eu-west-1 host, fast WAN profile): thousands of calls in flight
// from one thread, cancellation by timeout (checked on the replica itself), and
// the daemon SIGKILLed and restarted under calls in flight.
#include <catch2/catch.hpp>

#include <poll.h>
#include <unistd.h>

#include <regiond/client.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../cluster_env.hpp"
#include "../pg_session.hpp"
#include "daemon_harness.hpp"

using namespace std::chrono_literals;
using regiond::testing::ClusterEnv;
using regiond::testing::DaemonHarness;
using regiond::testing::PgSession;

namespace {

using Clock = std::chrono::steady_clock;

DaemonHarness& daemon_under_test() {
    static std::unique_ptr<DaemonHarness> harness = std::make_unique<DaemonHarness>();
    return *harness;
}

struct Client {
    rgd_client* c = nullptr;
    Client() {
        char error[512];
        c = rgd_connect(daemon_under_test().socket().c_str(), error, sizeof error);
        INFO(error);
        REQUIRE(c != nullptr);
    }
    ~Client() { rgd_disconnect(c); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
};

struct Finished {
    bool ok = false;
    std::string error;
    std::string sqlstate;
    std::string served_by;
    std::string first;  ///< row 0, column 0 ("<NULL>" for NULL, "" without rows)
};

// Waits on the descriptor with poll(), as an event loop would, and collects
// until `want` calls finished or `limit` passed.
std::map<rgd_call_id, Finished> drive(rgd_client* c, std::size_t want, std::chrono::seconds limit) {
    std::map<rgd_call_id, Finished> done;
    const int fd = rgd_event_fd(c);
    REQUIRE(fd >= 0);
    const auto deadline = Clock::now() + limit;
    while (done.size() < want && Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 250) <= 0) continue;
        rgd_call_id id = 0;
        while (rgd_result* r = rgd_collect(c, &id)) {
            Finished f;
            f.ok = rgd_ok(r) == 1;
            f.error = rgd_error(r);
            f.sqlstate = rgd_sqlstate(r);
            f.served_by = rgd_served_by(r);
            if (rgd_nrows(r) > 0) {
                const char* v = rgd_value(r, 0, 0);
                f.first = v != nullptr ? v : "<NULL>";
            }
            rgd_free(r);
            REQUIRE(done.count(id) == 0);  // exactly once
            done.emplace(id, std::move(f));
        }
    }
    return done;
}

rgd_call_id start_double(rgd_client* c, int n, bool primary) {
    const std::string text = std::to_string(n);
    const char* params[] = {text.c_str()};
    const char* sql = "select ($1::int * 2)::text";
    return primary ? rgd_start_read_primary(c, sql, 1, params) : rgd_start_read_local(c, sql, 1, params);
}

template <class Condition>
bool eventually(Condition&& condition, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!condition()) {
        if (Clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(20ms);  // polling interval
    }
    return true;
}

}  // namespace

TEST_CASE("regiond's answer alone makes the descriptor readable", "[event-loop]") {
    Client db;
    rgd_set_timeout_ms(db.c, 0);  // no deadline: no timer of the library's could wake the loop
    for (int i = 0; i < 10; ++i) {
        const rgd_call_id id = rgd_start_read_local(db.c, "select '1'::text from pg_sleep(0.02)", 0, nullptr);
        // Only the daemon's write to the client eventfd wakes this poll.
        auto done = drive(db.c, 1, 20s);
        REQUIRE(done.count(id) == 1);
        CHECK(done.at(id).first == "1");
    }
}

TEST_CASE("4000 calls in flight from one thread: each answer is its own", "[event-loop]") {
    Client db;
    std::map<rgd_call_id, int> expected;
    for (int i = 0; i < 4000; ++i) {
        const rgd_call_id id = start_double(db.c, i, i % 10 == 0);
        REQUIRE(id != 0);
        expected.emplace(id, i);
    }
    CHECK(rgd_calls_pending(db.c) > 100);  // really in flight together, not one by one
    auto done = drive(db.c, expected.size(), 120s);
    REQUIRE(done.size() == expected.size());
    int wrong = 0, replica = 0, primary = 0;
    for (const auto& [id, n] : expected) {
        const Finished& f = done.at(id);
        if (!f.ok || f.first != std::to_string(n * 2)) {
            if (wrong++ == 0) INFO("first wrong: " << f.error << " / " << f.first);
        }
        if (f.served_by == "eu-west-1/replica") ++replica;
        if (f.served_by == "us-east-1/primary") ++primary;
    }
    CHECK(wrong == 0);
    CHECK(replica == 3600);
    CHECK(primary == 400);
    CHECK(rgd_calls_pending(db.c) == 0);
    pollfd p{rgd_event_fd(db.c), POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == 0);  // quiet once everything is collected
}

TEST_CASE("calls past their deadline time out, and the replica stops running them", "[event-loop][timeout]") {
    const ClusterEnv& env = ClusterEnv::get();
    PgSession replica(env.superuser_conninfo("eu-west-1"));
    auto sleeping = [&] {
        return replica.scalar(
            "select count(*) from pg_stat_activity where state = 'active' and query like '%pg_sleep(61)%' "
            "and pid <> pg_backend_pid()");
    };
    Client db;
    rgd_set_timeout_ms(db.c, 300);
    std::vector<rgd_call_id> slow;
    for (int i = 0; i < 8; ++i) slow.push_back(rgd_start_read_local(db.c, "select pg_sleep(61)", 0, nullptr));
    rgd_set_timeout_ms(db.c, 30000);
    const rgd_call_id quick = start_double(db.c, 21, false);
    auto done = drive(db.c, slow.size() + 1, 30s);
    REQUIRE(done.size() == slow.size() + 1);
    CHECK(done.at(quick).first == "42");
    for (rgd_call_id id : slow) CHECK(done.at(id).error == "timed out after 300 ms");
    // The daemon was told: the backends stop sleeping long before 61 s.
    CHECK(eventually([&] { return sleeping() == "0"; }, 20s));

    // rgd_cancel: finished at once as "cancelled", and cancelled on the replica.
    const rgd_call_id cancelled = rgd_start_read_local(db.c, "select pg_sleep(61)", 0, nullptr);
    REQUIRE(eventually([&] { return sleeping() == "1"; }, 20s));
    CHECK(rgd_cancel(db.c, cancelled) == 1);
    auto after = drive(db.c, 1, 10s);
    REQUIRE(after.count(cancelled) == 1);
    CHECK(after.at(cancelled).error == "cancelled");
    CHECK(eventually([&] { return sleeping() == "0"; }, 20s));
}

TEST_CASE("the daemon SIGKILLed and restarted under calls in flight: every call finishes, no write twice",
          "[event-loop][restart]") {
    DaemonHarness& d = daemon_under_test();
    Client db;
    {
        rgd_result* ddl = rgd_write(db.c,
                                    "create table if not exists rgd_event_loop_it (marker text primary key, "
                                    "at timestamptz default now())",
                                    0, nullptr, 0, nullptr);
        INFO(rgd_error(ddl));
        REQUIRE(rgd_ok(ddl));
        rgd_free(ddl);
    }
    const std::string run = std::to_string(::getpid()) + "-" + std::to_string(Clock::now().time_since_epoch().count());
    std::map<rgd_call_id, int> reads;
    std::vector<rgd_call_id> writes;
    for (int i = 0; i < 600; ++i) {
        const std::string n = std::to_string(i);
        const char* p[] = {n.c_str()};
        reads.emplace(rgd_start_read_local(db.c, "select ($1::int * 2)::text, pg_sleep(0.3)", 1, p), i);
        if (i % 6 == 0) {
            const std::string marker = run + "-" + n;
            const char* wp[] = {marker.c_str()};
            writes.push_back(rgd_start_write(db.c, "insert into rgd_event_loop_it (marker) select $1 from pg_sleep(0.3)",
                                             1, wp, 0, nullptr));
        }
    }
    d.kill9();
    d.start();
    auto done = drive(db.c, reads.size() + writes.size(), 120s);
    REQUIRE(done.size() == reads.size() + writes.size());  // none hangs
    int reads_ok = 0, reads_wrong = 0, reads_lost = 0;
    for (const auto& [id, n] : reads) {
        const Finished& f = done.at(id);
        if (f.ok) {
            if (f.first == std::to_string(n * 2)) {
                ++reads_ok;
            } else {
                ++reads_wrong;
            }
        } else if (f.error.find("connection to regiond lost") == 0) {
            ++reads_lost;
        } else {
            FAIL_CHECK("a read failed otherwise: " << f.error);
        }
    }
    INFO("reads ok " << reads_ok << ", lost " << reads_lost);
    CHECK(reads_wrong == 0);
    CHECK(reads_ok > 0);  // re-sent to the new daemon
    int duplicate = 0;
    for (rgd_call_id id : writes) {
        const Finished& f = done.at(id);
        if (f.sqlstate == "23505") ++duplicate;  // a write sent twice would collide with itself
        if (!f.ok) CHECK((f.error.find("connection to regiond lost") == 0 || f.error.find("terminat") != std::string::npos));
    }
    CHECK(duplicate == 0);

    // The client goes on with the new daemon.
    const rgd_call_id after = start_double(db.c, 50, false);
    auto more = drive(db.c, 1, 20s);
    REQUIRE(more.count(after) == 1);
    INFO(more.at(after).error);
    CHECK(more.at(after).first == "100");
}

// libregiond and regionctl against the real regiond on the local cluster
// (eu-west-1 host, fast WAN profile): every operation and its served_by, SQL
// errors, NULLs, a 200 000-row result, 16 threads on one client, 8 client
// processes, a client SIGKILLed mid-request, the daemon SIGKILLed and restarted,
// the daemon not running, and regionctl.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regiond/client.h>
#include <regiond/client.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../cluster_env.hpp"
#include "../daemon/mini_json.hpp"
#include "../pg_session.hpp"
#include "daemon_harness.hpp"

using namespace std::chrono_literals;
using regiond::testing::ClusterEnv;
using regiond::testing::Command;
using regiond::testing::DaemonHarness;
using regiond::testing::Json;
using regiond::testing::LinkCut;
using regiond::testing::regionctl_binary;
using regiond::testing::run_command;

namespace {

using Clock = std::chrono::steady_clock;

// One daemon for the whole file (start-up is the slow part); tests that crash it
// start it again.
DaemonHarness& daemon_under_test() {
    static std::unique_ptr<DaemonHarness> harness = std::make_unique<DaemonHarness>();
    return *harness;
}

regiond::Client connect() {
    regiond::Client c = regiond::Client::connect(daemon_under_test().socket());
    INFO(c.connect_error());
    REQUIRE(c);
    return c;
}

template <class Condition>
bool eventually(Condition&& condition, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!condition()) {
        if (Clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(5ms);  // polling interval
    }
    return true;
}

// "clients":N from `regionctl status --json`; -1 if unavailable. (No <regex>:
// GCC 12 warns falsely inside it under the sanitizers.)
int status_clients() {
    const Command c =
        run_command(regionctl_binary(), {"--socket", daemon_under_test().admin_socket(), "status", "--json"});
    const std::string key = "\"clients\":";
    const auto at = c.out.find(key);
    if (c.status != 0 || at == std::string::npos) return -1;
    std::size_t end = at + key.size();
    while (end < c.out.size() && c.out[end] >= '0' && c.out[end] <= '9') ++end;
    if (end == at + key.size()) return -1;
    return std::stoi(c.out.substr(at + key.size(), end - at - key.size()));
}

// SYSTEMID/LSN as PostgreSQL prints it: decimal / upper-case hex / upper-case hex.
bool token_format_ok(std::string_view token) {
    auto all = [](std::string_view s, std::string_view allowed, std::size_t max) {
        return !s.empty() && s.size() <= max && s.find_first_not_of(allowed) == std::string_view::npos;
    };
    const auto a = token.find('/');
    if (a == std::string_view::npos) return false;
    const auto b = token.find('/', a + 1);
    if (b == std::string_view::npos) return false;
    return all(token.substr(0, a), "0123456789", 20) && all(token.substr(a + 1, b - a - 1), "0123456789ABCDEF", 8) &&
           all(token.substr(b + 1), "0123456789ABCDEF", 8);
}

std::string value(const regiond::Result& r, int row, int col) {
    const auto v = r.value(row, col);
    return v ? std::string(*v) : std::string("<NULL>");
}

// The healthy column ("t"/"f") of REGION's ROLE in rgd_health; "" if absent.
std::string healthy_of(regiond::Client& db, std::string_view region, std::string_view role) {
    auto h = db.health();
    if (!h.ok()) return "";
    for (regiond::Row row : h)
        if (row[0] == region && row[2] == role) return std::string(row[3].value_or(""));
    return "";
}

// Pauses WAL replay on a replica for its lifetime (resumed even when a test fails).
class ReplayPause {
public:
    explicit ReplayPause(regiond::testing::PgSession& replica) : replica_(replica) {
        replica_.exec("select pg_wal_replay_pause()");
    }
    ~ReplayPause() {
        try {
            replica_.exec("select pg_wal_replay_resume()");
        } catch (...) {}
    }
    ReplayPause(const ReplayPause&) = delete;
    ReplayPause& operator=(const ReplayPause&) = delete;

private:
    regiond::testing::PgSession& replica_;
};

// SIGSTOPs a process for its lifetime (SIGCONT even when a test fails).
class DaemonStop {
public:
    explicit DaemonStop(pid_t pid) : pid_(pid) { REQUIRE(::kill(pid_, SIGSTOP) == 0); }
    ~DaemonStop() { ::kill(pid_, SIGCONT); }
    DaemonStop(const DaemonStop&) = delete;
    DaemonStop& operator=(const DaemonStop&) = delete;

private:
    pid_t pid_;
};

}  // namespace

TEST_CASE("the daemon not running: a clear error at connect", "[connect]") {
    const std::string path = "/tmp/rgd-libclient-it-none-" + std::to_string(::getpid()) + ".sock";
    char error[256];
    CHECK(rgd_connect(path.c_str(), error, sizeof error) == nullptr);
    CHECK(std::string(error) == "daemon not running at " + path);
    const Command ctl = run_command(regionctl_binary(), {"--socket", path, "status"});
    CHECK(ctl.status == 1);
    CHECK(ctl.err == "regionctl: regiond not running at " + path + "\n");
}

TEST_CASE("each operation says where it was served", "[ops]") {
    regiond::Client db = connect();

    auto local = db.read_local("select 1 as one");
    INFO(local.error());
    REQUIRE(local.ok());
    CHECK(local.served_by() == "eu-west-1/replica");
    CHECK(local.column(0) == "one");
    CHECK(value(local, 0, 0) == "1");
    CHECK(local.affected() == -1);
    // Every answer carries a token (the replica's replay LSN after the read).
    INFO("read_local token: " << local.token());
    CHECK(token_format_ok(local.token()));
    CHECK(local.route_reason() == "local replica");

    auto primary = db.read_primary("select pg_is_in_recovery()::text as standby");
    INFO(primary.error());
    REQUIRE(primary.ok());
    CHECK(primary.served_by() == "us-east-1/primary");
    CHECK(value(primary, 0, 0) == "false");
    CHECK(token_format_ok(primary.token()));
    CHECK(primary.route_reason() == "primary");

    auto ddl = db.write("create table if not exists rgd_client_it (id bigserial primary key, v text)");
    INFO(ddl.error());
    REQUIRE(ddl.ok());
    const std::string marker =
        "it-" + std::to_string(::getpid()) + "-" + std::to_string(Clock::now().time_since_epoch().count());
    auto write = db.write("insert into rgd_client_it (v) values ($1)", {marker}, {"rgd_client_it:" + marker});
    INFO(write.error());
    REQUIRE(write.ok());
    CHECK(write.served_by() == "us-east-1/primary");
    CHECK(write.affected() == 1);
    CHECK(token_format_ok(write.token()));

    // read_consistent: the write is visible (never a stale read), and the
    // answer's token is at or past the write's.
    auto consistent =
        db.read_consistent(write.token(), "select count(*)::text from rgd_client_it where v = $1", {marker});
    INFO(consistent.error());
    REQUIRE(consistent.ok());
    CHECK(value(consistent, 0, 0) == "1");
    CHECK(rgd_token_cmp(std::string(consistent.token()).c_str(), std::string(write.token()).c_str()) >= 0);
    CHECK_FALSE(consistent.route_reason().empty());
    auto malformed = db.read_consistent("not-a-token", "select 1");
    CHECK(malformed.error().find("malformed consistency token") == 0);

    auto cached = db.cached_read("rgd_client_it:" + marker, 0s, "select $1::text as v", {marker});
    INFO(cached.error());
    REQUIRE(cached.ok());
    CHECK(value(cached, 0, 0) == marker);
    CHECK_FALSE(cached.token().empty());
}

TEST_CASE("SQL errors carry their SQLSTATE", "[errors]") {
    regiond::Client db = connect();
    auto r = db.read_local("select * from rgd_no_such_table_xyz");
    CHECK_FALSE(r.ok());
    CHECK(r.sqlstate() == "42P01");
    CHECK(r.error().find("rgd_no_such_table_xyz") != std::string_view::npos);
    auto w = db.write("insert into rgd_no_such_table_xyz values (1)");
    CHECK_FALSE(w.ok());
    CHECK(w.sqlstate() == "42P01");
    CHECK(w.token() == "");
    // The client is still fine afterwards.
    CHECK(db.read_local("select 1").ok());
}

TEST_CASE("NULL parameters and values round-trip", "[null]") {
    regiond::Client db = connect();
    auto r = db.read_local("select $1::text as a, $2::text as b, null::int as c, ''::text as d", {"x", std::nullopt});
    INFO(r.error());
    REQUIRE(r.ok());
    REQUIRE(r.ncols() == 4);
    CHECK(r.value(0, 0) == "x");
    CHECK_FALSE(r.value(0, 1));
    CHECK_FALSE(r.value(0, 2));
    CHECK(r.value(0, 3) == "");  // empty string is not NULL
    const char* params[] = {nullptr};
    rgd_result* c = rgd_read_primary(db.get(), "select $1::text is null", 1, params);
    CHECK(rgd_ok(c) == 1);
    CHECK(std::string(rgd_value(c, 0, 0) ? rgd_value(c, 0, 0) : "<NULL>") == "t");
    rgd_free(c);
}

TEST_CASE("a 200000-row result arrives whole", "[large]") {
    regiond::Client db = connect();
    auto r = db.read_local("select g, 'row-' || g as s from generate_series(1, 200000) g");
    INFO(r.error());
    REQUIRE(r.ok());
    REQUIRE(r.nrows() == 200000);
    CHECK(r.value(0, 0) == "1");
    CHECK(r.value(199999, 0) == "200000");
    CHECK(r.value(199999, 1) == "row-200000");
    bool ordered = true;
    for (int i = 0; i < r.nrows() && ordered; i += 997) ordered = r.value(i, 0) == std::to_string(i + 1);
    CHECK(ordered);
}

TEST_CASE("a timed-out call does not disturb the next ones", "[timeout]") {
    regiond::Client db = connect();
    db.set_timeout(200ms);
    auto slow = db.read_local("select pg_sleep(2)");
    CHECK_FALSE(slow.ok());
    CHECK(slow.error() == "timed out after 200 ms");
    db.set_timeout(30s);
    for (int i = 0; i < 10; ++i) {
        auto r = db.read_local("select $1::int * 2", {std::to_string(i)});
        REQUIRE(r.ok());
        CHECK(r.value(0, 0) == std::to_string(i * 2));
    }
}

TEST_CASE("16 threads x 1000 mixed calls on one client: every answer matches its request", "[threads]") {
    regiond::Client db = connect();
    std::atomic<int> failures{0}, mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 1000; ++i) {
                const std::string n = std::to_string(t * 100000 + i);
                regiond::Result r;
                std::string expected_server = "eu-west-1/replica";
                if (i % 50 == 7) {
                    r = db.read_primary("select $1::bigint + 1", {n});
                    expected_server = "us-east-1/primary";
                } else if (i % 10 == 3) {
                    r = db.read_local("select g from generate_series(1, ($1::bigint % 50) + 1) g", {n});
                    const long rows = std::stol(n) % 50 + 1;
                    if (r.ok() && (r.nrows() != rows || r.value(r.nrows() - 1, 0) != std::to_string(rows)))
                        ++mismatches;
                    if (!r.ok()) ++failures;
                    continue;
                } else {
                    r = db.read_local("select $1::bigint + 1", {n});
                }
                if (!r.ok()) {
                    ++failures;
                } else if (r.value(0, 0) != std::to_string(std::stol(n) + 1) || r.served_by() != expected_server) {
                    ++mismatches;
                }
            }
        });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    CHECK(mismatches == 0);
}

TEST_CASE("8 client processes at once", "[processes]") {
    const std::string socket = daemon_under_test().socket();
    std::vector<pid_t> children;
    for (int p = 0; p < 8; ++p) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // Child: its own client (never one inherited from the parent).
            char error[256];
            rgd_client* c = rgd_connect(socket.c_str(), error, sizeof error);
            if (c == nullptr) ::_exit(10);
            int bad = 0;
            for (int i = 0; i < 200; ++i) {
                const std::string n = std::to_string(p * 1000 + i);
                const char* params[] = {n.c_str()};
                rgd_result* r = rgd_read_local(c, "select $1::int", 1, params);
                if (rgd_ok(r) != 1 || rgd_value(r, 0, 0) == nullptr || n != rgd_value(r, 0, 0)) ++bad;
                rgd_free(r);
            }
            rgd_disconnect(c);
            ::_exit(bad == 0 ? 0 : 11);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
}

TEST_CASE("a client SIGKILLed mid-request disturbs no one", "[kill]") {
    regiond::Client db = connect();
    const int before = status_clients();
    REQUIRE(before >= 1);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const std::string socket = daemon_under_test().socket();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(ready[0]);
        char error[256];
        rgd_client* c = rgd_connect(socket.c_str(), error, sizeof error);
        if (c == nullptr) ::_exit(10);
        (void)!::write(ready[1], "x", 1);
        rgd_free(rgd_read_local(c, "select pg_sleep(5)", 0, nullptr));  // killed in here
        ::_exit(0);
    }
    ::close(ready[1]);
    char byte;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    ::close(ready[0]);
    CHECK(eventually([&] { return status_clients() == before + 1; }, 5s));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));

    for (int i = 0; i < 20; ++i)
        CHECK(db.read_local("select $1::int", {std::to_string(i)}).value(0, 0) == std::to_string(i));
    CHECK(eventually([&] { return status_clients() == before; }, 10s));
}

// rgd_health reads the state segment: its rows are the daemon's own view (the
// same endpoints, roles and health as `regionctl status --json`), its lag is the
// cluster's (a replica whose replay is paused shows exactly the bytes the cluster
// says it is behind, and a lag in time that grows), and it needs no round trip
// (it answers while the daemon is stopped with SIGSTOP).
TEST_CASE("health comes from the state segment", "[health]") {
    const ClusterEnv& env = ClusterEnv::get();
    DaemonHarness& d = daemon_under_test();
    regiond::Client db = connect();
    {
        auto h = db.health();
        INFO(h.error());
        REQUIRE(h.ok());
        CHECK(h.served_by() == "");
        REQUIRE(h.ncols() == 9);
        const char* names[] = {"region",    "endpoint", "role",          "healthy",   "lag_ms",
                               "lag_bytes", "rtt_ms",   "cache_healthy", "replay_lsn"};
        for (int c = 0; c < 9; ++c) CHECK(h.column(c) == names[c]);
    }

    // The same rows as the daemon's status (polled: both move while probes run).
    std::string last_difference;
    const bool same_rows = eventually(
        [&] {
            const Command c = run_command(regionctl_binary(), {"--socket", d.admin_socket(), "status", "--json"});
            if (c.status != 0) return false;
            const Json status = Json::parse(c.out);
            auto h = db.health();
            if (!h.ok() || static_cast<std::size_t>(h.nrows()) != status["endpoints"].array().size()) {
                last_difference = "row count";
                return false;
            }
            for (const Json& e : status["endpoints"].array()) {
                bool found = false;
                for (regiond::Row row : h) {
                    if (row[0] != e["region"].str() || row[1] != e["endpoint"].str()) continue;
                    // status prints an unknown LSN as 0/0, rgd_health as "".
                    const std::string lsn = e["replay_lsn"].str() == "0/0" ? "" : e["replay_lsn"].str();
                    found = row[2] == e["role"].str() && row[3] == (e["healthy"].boolean() ? "t" : "f") &&
                            row[7] == (e["cache_healthy"].boolean() ? "t" : "f") && row[8] == lsn;
                }
                if (!found) {
                    last_difference = e["region"].str() + " " + e["endpoint"].str();
                    return false;
                }
            }
            return true;
        },
        10s);
    INFO(last_difference);
    CHECK(same_rows);

    // The local replica's lag, against the cluster's own numbers.
    const auto replica_lag = [&](const char* column) -> long long {
        auto h = db.health();
        if (!h.ok()) return -1;
        const int index = std::string_view(column) == "lag_ms" ? 4 : 5;
        for (regiond::Row row : h)
            if (row[0] == "eu-west-1" && row[2] == "replica" && row[index]) return std::stoll(std::string(*row[index]));
        return -1;
    };
    {
        regiond::testing::PgSession primary(env.superuser_conninfo("us-east-1"));
        regiond::testing::PgSession replica(env.superuser_conninfo("eu-west-1"));
        ReplayPause pause(replica);
        primary.exec("create table if not exists rgd_health_it (x int)");
        primary.exec("insert into rgd_health_it select generate_series(1, 1000)");
        // What the cluster says the replica is behind, in bytes.
        const auto cluster_bytes = [&] {
            const std::string replay = replica.scalar("select pg_last_wal_replay_lsn()");
            return std::stoll(primary.scalar("select pg_wal_lsn_diff(pg_current_wal_lsn(), '" + replay + "')"));
        };
        long long expected = -1;
        const bool bytes_match = eventually(
            [&] {
                expected = cluster_bytes();
                return expected > 0 && replica_lag("lag_bytes") == expected;
            },
            20s);
        INFO("cluster: " << expected << " bytes behind; rgd_health: " << replica_lag("lag_bytes"));
        CHECK(bytes_match);
        // replay_lsn is the replica's own, as PostgreSQL prints it (it stays put
        // while replay is paused).
        const std::string paused_at = replica.scalar("select pg_last_wal_replay_lsn()");
        std::string shown;
        const bool lsn_match = eventually(
            [&] {
                auto h = db.health();
                for (regiond::Row row : h)
                    if (h.ok() && row[0] == "eu-west-1" && row[2] == "replica") shown = row[8].value_or("<NULL>");
                return shown == paused_at;
            },
            10s);
        INFO("replica at " << paused_at << "; rgd_health: " << shown);
        CHECK(lsn_match);
        const long long first_ms = replica_lag("lag_ms");
        CHECK(first_ms > 0);
        CHECK(eventually([&] { return replica_lag("lag_ms") > first_ms; }, 10s));  // replay stays paused
    }
    CHECK(eventually([&] { return replica_lag("lag_bytes") == 0; }, 20s));  // resumed: caught up

    // No round trip: with the daemon stopped, a query times out but health answers,
    // with the same rows each time (nobody writes them).
    db.set_timeout(500ms);
    {
        DaemonStop stop(d.pid());
        const auto frozen = db.health();
        INFO(frozen.error());
        REQUIRE(frozen.ok());
        CHECK(frozen.nrows() == 3);
        const auto again = db.health();
        REQUIRE(again.ok());
        for (int r = 0; r < frozen.nrows(); ++r)
            for (int c = 0; c < frozen.ncols(); ++c) CHECK(value(frozen, r, c) == value(again, r, c));
        const auto query = db.read_local("select 1");
        CHECK_FALSE(query.ok());
        CHECK(query.error() == "timed out after 500 ms");
    }
    db.set_timeout(10s);
    CHECK(db.read_local("select 1").ok());  // the daemon goes on after SIGCONT
}

TEST_CASE("regionctl: status, status --json, metrics, query", "[regionctl]") {
    DaemonHarness& d = daemon_under_test();
    const Command status = run_command(regionctl_binary(), {"--socket", d.admin_socket(), "status"});
    CHECK(status.status == 0);
    CHECK(status.out.find("eu-west-1") != std::string::npos);
    const Command json = run_command(regionctl_binary(), {"--socket", d.admin_socket(), "status", "--json"});
    CHECK(json.status == 0);
    CHECK(json.out.rfind("{", 0) == 0);
    CHECK(json.out.find("\"clients\":") != std::string::npos);
    const Command metrics = run_command(regionctl_binary(), {"--socket", d.admin_socket(), "metrics"});
    CHECK(metrics.status == 0);
    CHECK(metrics.out.find("regiond_clients_connected") != std::string::npos);

    const Command table = run_command(
        regionctl_binary(), {"--socket", d.socket(), "query", "select $1::text as a, $2::text as b", "x", "\\N"});
    INFO(table.err);
    CHECK(table.status == 0);
    // The rows and served_by exactly; after them only the optional trailer lines
    // (route_reason when the daemon gives one, token when the read has one).
    const std::string head = " a | b\n---+---\n x | \n(1 row)\nserved_by: eu-west-1/replica\n";
    INFO(table.out);
    CHECK(table.out.rfind(head, 0) == 0);
    std::string_view trailer = std::string_view(table.out).substr(std::min(head.size(), table.out.size()));
    CHECK(trailer.starts_with("route_reason: local replica\n"));
    if (trailer.starts_with("route_reason: ")) trailer.remove_prefix(trailer.find('\n') + 1);
    REQUIRE(trailer.starts_with("token: "));
    const std::string_view line = trailer.substr(0, trailer.find('\n'));
    CHECK(token_format_ok(line.substr(7)));
    trailer.remove_prefix(line.size() + 1);
    CHECK(trailer.empty());

    const Command js = run_command(regionctl_binary(),
                                   {"--socket", d.socket(), "query", "--json", "--primary", "select 'q\"' as \"a b\""});
    INFO(js.out);
    CHECK(js.status == 0);
    // API.md's shape, in its order: served_by, route_reason, token, affected, columns, rows.
    CHECK(js.out.rfind("{\"served_by\":\"us-east-1/primary\",\"route_reason\":\"", 0) == 0);
    const auto order = [&](const char* a, const char* b) { return js.out.find(a) < js.out.find(b); };
    CHECK(order("\"route_reason\":", "\"token\":"));
    CHECK(order("\"token\":", "\"affected\":"));
    CHECK(order("\"affected\":", "\"columns\":"));
    CHECK(order("\"columns\":", "\"rows\":"));
    CHECK(js.out.find("\"affected\":-1,\"columns\":[\"a b\"],\"rows\":[[\"q\\\"\"]]}\n") != std::string::npos);
    const Json parsed = Json::parse(js.out);
    CHECK(token_format_ok(parsed["token"].str()));
    CHECK(parsed["route_reason"].str() == "primary");

    // --consistent: a malformed token fails at once, in the library.
    const Command bad_token = run_command(regionctl_binary(), {"--socket", d.socket(), "query", "--consistent",
                                                               "7713697811223072330-41F2E80", "select 1"});
    CHECK(bad_token.status == 1);
    CHECK(bad_token.err.find("SYSTEMID/LSN, e.g. 7713697811223072330/0/41F2E80") != std::string::npos);
    const Command fail =
        run_command(regionctl_binary(), {"--socket", d.socket(), "query", "select * from rgd_no_such_table_xyz"});
    const Command ddl = run_command(regionctl_binary(),
                                    {"--socket", d.socket(), "query", "--write",
                                     "create table if not exists rgd_client_it (id bigserial primary key, v text)"});
    CHECK(ddl.status == 0);
    CHECK(fail.status == 1);
    CHECK(fail.err.find("(SQLSTATE 42P01)") != std::string::npos);
    const Command write =
        run_command(regionctl_binary(), {"--socket", d.socket(), "query", "--write", "--invalidate", "k1",
                                         "insert into rgd_client_it (v) values ($1)", "from-regionctl"});
    INFO(write.err);
    CHECK(write.status == 0);
    CHECK(write.out.find("served_by: us-east-1/primary\nroute_reason: primary\ntoken: ") == 0);
    CHECK(write.out.find("affected: 1\n") != std::string::npos);
}

TEST_CASE("the daemon SIGKILLed and restarted: the next call succeeds", "[restart]") {
    DaemonHarness& d = daemon_under_test();
    regiond::Client db = connect();
    REQUIRE(db.read_local("select 1").ok());

    d.kill9();
    auto down = db.read_local("select 2");
    CHECK_FALSE(down.ok());
    CHECK((down.error().find("daemon not running at " + d.socket()) != std::string_view::npos ||
           down.error().find("connection to regiond lost") != std::string_view::npos));

    d.start();
    auto again = db.read_local("select 3");
    INFO(again.error());
    REQUIRE(again.ok());
    CHECK(again.value(0, 0) == "3");
    CHECK(db.health().ok());

    // Killed while calls are in flight: reads are re-sent to the new daemon or
    // fail with "connection lost"; none hangs or returns another call's answer.
    std::atomic<bool> stop{false};
    std::atomic<int> wrong{0}, calls{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t)
        readers.emplace_back([&, t] {
            for (int i = 0; !stop; ++i) {
                const std::string n = std::to_string(t * 1000000 + i);
                auto r = db.read_local("select $1::int", {n});
                ++calls;
                if (r.ok() && r.value(0, 0) != n) ++wrong;
            }
        });
    CHECK(eventually([&] { return calls > 100; }, 10s));
    d.kill9();
    d.start();
    const int after_restart = calls;
    CHECK(eventually([&] { return calls > after_restart + 100; }, 10s));
    stop = true;
    for (auto& t : readers) t.join();
    CHECK(wrong == 0);
    CHECK(db.read_local("select 4").value(0, 0) == "4");
}

TEST_CASE("the primary's link cut: a write fails with a clear error within its deadline while read_local keeps working",
          "[fault]") {
    const ClusterEnv& env = ClusterEnv::get();
    regiond::Client db = connect();
    REQUIRE(db.write("create table if not exists rgd_client_it (id bigserial primary key, v text)").ok());
    REQUIRE(eventually([&] { return healthy_of(db, "us-east-1", "primary") == "t"; }, 30s));
    {
        LinkCut cut(env, env.link("eu-west-1", "us-east-1", "pg").name, "stall");
        db.set_timeout(5s);
        // Sent into the stalled link: answered by the daemon (the primary marked
        // down, or the write's deadline), never left hanging; never a success.
        const auto t0 = Clock::now();
        auto w = db.write("insert into rgd_client_it (v) values ($1)", {"during-primary-cut"});
        const auto took = Clock::now() - t0;
        INFO(w.error());
        CHECK_FALSE(w.ok());
        CHECK(w.token() == "");
        CHECK(w.error().find("may or may not have committed") != std::string_view::npos);
        // A hang detector, not a performance bound: 5 s deadline, generous slack.
        CHECK(took < 5s + 5s);

        // Reads from the local replica do not need the primary.
        for (int i = 0; i < 20; ++i) {
            auto r = db.read_local("select $1::int * 3", {std::to_string(i)});
            INFO(r.error());
            REQUIRE(r.ok());
            CHECK(r.served_by() == "eu-west-1/replica");
            CHECK(r.value(0, 0) == std::to_string(i * 3));
        }
        // Once the primary is marked down, writes are refused at once, naming it.
        REQUIRE(eventually([&] { return healthy_of(db, "us-east-1", "primary") == "f"; }, 30s));
        auto refused = db.write("insert into rgd_client_it (v) values ($1)", {"refused"});
        CHECK_FALSE(refused.ok());
        CHECK(refused.error().find("no healthy primary for writes (primary us-east-1 ") == 0);
        auto primary_read = db.read_primary("select 1");
        CHECK_FALSE(primary_read.ok());
        CHECK(primary_read.error().find("no healthy primary") == 0);
        db.set_timeout(30s);
    }
    // Link restored: writes work again.
    REQUIRE(eventually([&] { return healthy_of(db, "us-east-1", "primary") == "t"; }, 30s));
    auto after = db.write("insert into rgd_client_it (v) values ($1)", {"after-primary-cut"});
    INFO(after.error());
    CHECK(after.ok());
    CHECK(after.affected() == 1);
}

TEST_CASE("the local replica down: read_local is served by the next nearest region and says so", "[fault]") {
    const ClusterEnv& env = ClusterEnv::get();
    regiond::Client db = connect();
    // ap-northeast-1's replica (11 ms away) is nearer for reads than a replica
    // that is down; the primary (us-east-1) comes last for read_local.
    REQUIRE(eventually([&] { return healthy_of(db, "ap-northeast-1", "replica") == "t"; }, 30s));
    REQUIRE(eventually([&] { return healthy_of(db, "eu-west-1", "replica") == "t"; }, 30s));
    const std::string local_link = env.link("eu-west-1", "eu-west-1", "pg").name;

    SECTION("stalled: a read already in flight moves to the next region") {
        // A stall (packets vanish) is what no TCP error ends: the read sent
        // before the cut must not wait for its 20 s deadline.
        db.set_timeout(20s);
        std::optional<regiond::Result> slow;
        std::thread reader([&] { slow = db.read_local("select 'in-flight'::text as marker, pg_sleep(1)"); });
        // The read is on the replica when pg_stat_activity shows it there.
        const std::string marker_sql =
            "select count(*) from pg_stat_activity where query like 'select ''in-flight''%' and pid <> "
            "pg_backend_pid()";
        regiond::testing::PgSession replica(env.superuser_conninfo("eu-west-1"));  // unix socket, no WAN link
        const bool running = eventually([&] { return replica.scalar(marker_sql) == "1"; }, 10s);
        std::optional<LinkCut> cut;
        if (running) cut.emplace(env, local_link, "stall");
        reader.join();
        REQUIRE(running);
        REQUIRE(slow.has_value());
        INFO(slow->error());
        REQUIRE(slow->ok());
        CHECK(slow->served_by() == "ap-northeast-1/replica");
        CHECK(slow->value(0, 0) == "in-flight");
        // While the link stays cut, every read goes to ap-northeast-1.
        REQUIRE(eventually([&] { return healthy_of(db, "eu-west-1", "replica") == "f"; }, 30s));
        for (int i = 0; i < 10; ++i) {
            auto r = db.read_local("select $1::int + 1", {std::to_string(i)});
            INFO(r.error());
            REQUIRE(r.ok());
            CHECK(r.served_by() == "ap-northeast-1/replica");
            CHECK(r.value(0, 0) == std::to_string(i + 1));
        }
    }
    SECTION("refused: every read is answered by the next region, none fails") {
        LinkCut cut(env, local_link, "reset");
        for (int i = 0; i < 20; ++i) {
            auto r = db.read_local("select $1::int + 1", {std::to_string(i)});
            INFO(r.error());
            REQUIRE(r.ok());
            CHECK((r.served_by() == "ap-northeast-1/replica" || r.served_by() == "eu-west-1/replica"));
            CHECK(r.value(0, 0) == std::to_string(i + 1));
        }
        REQUIRE(eventually([&] { return healthy_of(db, "eu-west-1", "replica") == "f"; }, 30s));
        auto r = db.read_local("select 1");
        REQUIRE(r.ok());
        CHECK(r.served_by() == "ap-northeast-1/replica");
    }
    // Restored: reads come home.
    db.set_timeout(30s);
    CHECK(eventually([&] { return db.read_local("select 1").served_by() == "eu-west-1/replica"; }, 30s));
}

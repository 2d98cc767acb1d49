// Session isolation, end to end (issue 7): the real regiond binary on a
// test-owned copy of a cluster config, real client processes (regionctl runs
// and forked libregiond clients), and every verdict checked from outside
// through a direct superuser connection, `regionctl status --json`, or /proc.
//
//   us-east-1 config: the primary is local (read_primary and writes), the
//                     replicas are across the WAN links.
//   eu-west-1 config: the replica is local (read_local).
#include <catch2/catch.hpp>

#include <regiond/client.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../cluster_env.hpp"
#include "../daemon/mini_json.hpp"
#include "../daemon/regiond_process.hpp"
#include "../pg_session.hpp"
#include "clients.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
using namespace regiond::testing::isolation;
using Clock = std::chrono::steady_clock;

namespace {

const char* const kTable = "rgd_isolation_test";

std::string regionctl_binary() {
    const char* v = std::getenv("REGIONCTL_BIN");
    if (v == nullptr || *v == '\0') throw std::runtime_error("$REGIONCTL_BIN is not set (run through meson test)");
    return v;
}

std::string unique_value() {
    static int counter = 0;
    return "iso-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" +
           std::to_string(Clock::now().time_since_epoch().count() % 1000000);
}

void ensure_table() {
    const auto& env = ClusterEnv::get();
    PgSession primary(env.superuser_conninfo("us-east-1"));
    primary.exec("set client_min_messages = warning");
    primary.exec(std::string("create table if not exists ") + kTable + " (id bigserial primary key, v text not null)");
    primary.exec(std::string("grant all on ") + kTable + " to " + env.value("APP_USER"));
    primary.exec(std::string("grant all on sequence ") + kTable + "_id_seq to " + env.value("APP_USER"));
}

std::string count_outside(const std::string& v) {
    PgSession primary(ClusterEnv::get().superuser_conninfo("us-east-1"));
    return primary.scalar(std::string("select count(*) from ") + kTable + " where v = '" + v + "'");
}

// regiond on a copy of a cluster config, with its own sockets and segment.
struct Daemon {
    DaemonSetup setup;
    std::unique_ptr<RegiondProcess> process;

    explicit Daemon(const std::string& region, const std::string& extra_daemon_keys = "")
        : setup(DaemonSetup::from(ClusterEnv::get().regiond_config(region), extra_daemon_keys)) {
        process = std::make_unique<RegiondProcess>(regiond_binary(), setup.config_path, setup.dir + "/regiond.log", "");
        wait_healthy();
    }

    Json status() const {
        const std::string reply = admin_command(setup.admin_socket, "status json");
        if (reply.rfind("ok\n", 0) != 0) throw std::runtime_error("status json: " + reply);
        return Json::parse(reply.substr(3));
    }

    // "" when every endpoint is healthy, else the first one that is not.
    std::string unhealthy() const {
        const Json s = status();
        for (const Json& e : s["endpoints"].array()) {
            if (!e["healthy"].boolean())
                return e["region"].str() + " " + e["role"].str() + " " + e["endpoint"].str() + ": " +
                       e["last_error"].str();
        }
        return "";
    }

    void wait_healthy() const {
        const auto deadline = Clock::now() + 30s;
        std::string last = "not started";
        while (Clock::now() < deadline) {
            try {
                last = unhealthy();
                if (last.empty()) return;
            } catch (const std::exception& e) {
                last = e.what();
            }
            std::this_thread::sleep_for(50ms);
        }
        INFO(process->log());
        FAIL("regiond not healthy within 30 s: " << last);
    }

    unsigned primary_pool_size() const {
        const Json s = status();  // kept: the loop views into it
        for (const Json& e : s["endpoints"].array())
            if (e["role"].str() == "primary") return static_cast<unsigned>(e["pool_size"].num());
        return 0;
    }

    std::vector<std::string> query_args(const std::vector<std::string>& args) const {
        std::vector<std::string> all{"--socket", setup.socket, "query"};
        all.insert(all.end(), args.begin(), args.end());
        return all;
    }
    Command query(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s) const {
        return run_command(regionctl_binary(), query_args(args), timeout);
    }
    Spawned spawn_query(const std::vector<std::string>& args) const {
        return Spawned(regionctl_binary(), query_args(args));
    }
};

// In a forked child: one libregiond client, one request; "ok <v0>|<v1>..." of
// the first row, or "error <sqlstate> <message>".
enum class Op { read_local, read_primary, write };
std::string child_query(const std::string& socket, Op op, const std::string& sql) {
    char err[512] = "";
    rgd_client* c = rgd_connect(socket.c_str(), err, sizeof err);
    if (c == nullptr) return std::string("error connect ") + err;
    rgd_result* r = nullptr;
    switch (op) {
        case Op::read_local: r = rgd_read_local(c, sql.c_str(), 0, nullptr); break;
        case Op::read_primary: r = rgd_read_primary(c, sql.c_str(), 0, nullptr); break;
        case Op::write: r = rgd_write(c, sql.c_str(), 0, nullptr, 0, nullptr); break;
    }
    std::string out;
    if (rgd_ok(r) != 1) {
        out = std::string("error ") + rgd_sqlstate(r) + " " + rgd_error(r);
    } else {
        out = "ok ";
        if (rgd_nrows(r) > 0) {
            for (int col = 0; col < rgd_ncols(r); ++col) {
                if (col != 0) out += "|";
                const char* v = rgd_value(r, 0, col);
                out += v != nullptr ? v : "NULL";
            }
        }
    }
    rgd_free(r);
    rgd_disconnect(c);
    return out;
}

// What a pooled connection's session looks like, one line.
const char* const kSessionProbe =
    "select pg_backend_pid()::text, "
    "'tz=' || current_setting('TimeZone') || ' path=' || current_setting('search_path') || "
    "' app=' || current_setting('application_name') || ' datestyle=' || current_setting('DateStyle') || "
    "' prepared=' || (select count(*) from pg_prepared_statements where from_sql) || "
    "' listening=' || (select count(*) from pg_listening_channels()) || "
    "' temp=' || coalesce(to_regclass('pg_temp.rgd_iso_tmp')::text, '-') || "
    "' cursors=' || (select count(*) from pg_cursors) || "
    "' advisory=' || (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) || "
    "' user=' || current_user, "
    "(select 'slept' from pg_sleep(0.3))";

/// Application connections of a daemon that take no requests: the health
/// probe's, and the durable invalidation tailer's (docs/cache-durable.md).
constexpr std::size_t kNotPooled = 2;

struct Probed {
    std::set<std::string> seen;       ///< backends that answered a probe
    std::set<std::string> unprobed;   ///< the application's backends on the server never probed
    std::set<std::string> different;  ///< session states other than the expected one
};

// Probes pooled connections until every backend of the application role on
// the server (`region`) has answered (all but two: the endpoint's health
// probe connection and, on the daemon's own region's database, the durable
// invalidation tailer's connection take no requests). Each probe holds its connection for
// 0.3 s, so concurrent probes spread over the pool.
Probed probe_every_connection(const Daemon& d, Op op, const std::string& region, unsigned pool,
                              const std::string& expected) {
    const auto& env = ClusterEnv::get();
    PgSession server(env.superuser_conninfo(region));
    Probed p;
    const auto deadline = Clock::now() + 60s;
    for (int round = 0; Clock::now() < deadline; ++round) {
        const std::string pids = server.scalar(
            "select string_agg(pid::text, ',') from pg_stat_activity where backend_type = 'client backend' and "
            "usename = '" +
            env.value("APP_USER") + "'");
        p.unprobed.clear();
        std::string pid;
        for (char ch : pids + ",") {
            if (ch != ',') {
                pid += ch;
            } else if (!pid.empty()) {
                if (p.seen.count(pid) == 0) p.unprobed.insert(pid);
                pid.clear();
            }
        }
        if (round > 0 && p.unprobed.size() <= kNotPooled) break;
        const auto lines = run_children(static_cast<int>(pool) * 3,
                                        [&](int) { return child_query(d.setup.socket, op, kSessionProbe); });
        for (const auto& line : lines) {
            if (line.rfind("ok ", 0) != 0) {
                p.different.insert(line);
                continue;
            }
            const auto bar = line.find('|');
            p.seen.insert(line.substr(3, bar - 3));
            const std::string state = line.substr(bar + 1, line.rfind('|') - bar - 1);
            if (state != expected) p.different.insert(state);
        }
    }
    return p;
}

void check_probed(const Probed& p) {
    std::string differs;
    for (const auto& state : p.different) differs += "\n  " + state;
    INFO("sessions that differ from the defaults:" << differs);
    CHECK(p.different.empty());
    INFO("backends probed: " << p.seen.size() << ", never probed: " << p.unprobed.size());
    CHECK(p.unprobed.size() <= kNotPooled);
}

std::string session_state(const std::string& probe_line) {
    const auto bar = probe_line.find('|');
    return probe_line.substr(bar + 1, probe_line.rfind('|') - bar - 1);
}

}  // namespace

TEST_CASE("transaction control sent as a read leaves nothing open: acknowledged writes are visible outside",
          "[isolation][transaction]") {
    ensure_table();
    Daemon d("us-east-1");
    for (const std::string poison : {"begin", "savepoint s1", "select 1; begin", "start transaction"}) {
        for (const std::string mode : {"--primary", "--write"}) {
            INFO(mode << " " << poison);
            const Command c = d.query({mode, poison});
            CHECK(c.status == 1);  // refused (or failed), never acknowledged as a transaction
            // 20 writes from other processes, all at once.
            std::vector<std::string> values;
            std::vector<Spawned> writers;
            for (int i = 0; i < 20; ++i) {
                values.push_back(unique_value());
                writers.push_back(d.spawn_query(
                    {"--write", std::string("insert into ") + kTable + " (v) values ('" + values.back() + "')"}));
            }
            const auto deadline = Clock::now() + 30s;
            for (int i = 0; i < 20; ++i) {
                const Command w = writers[static_cast<std::size_t>(i)].wait(deadline);
                INFO(w.err);
                REQUIRE(w.status == 0);                                            // acknowledged...
                CHECK(count_outside(values[static_cast<std::size_t>(i)]) == "1");  // ...and there for everyone
            }
        }
    }
}

TEST_CASE("a write sent as read_primary fails with 25006 and inserts nothing", "[isolation][readonly]") {
    ensure_table();
    Daemon d("us-east-1");
    const std::string v = unique_value();
    const Command c = d.query({"--primary", std::string("insert into ") + kTable + " (v) values ('" + v + "')"});
    INFO(c.err);
    CHECK(c.status == 1);
    CHECK(c.err.find("25006") != std::string::npos);
    CHECK(count_outside(v) == "0");
    // Nor a call that lifts read-only first: refused before it is sent...
    const Command lift = d.query({"--primary", "select set_config('transaction_read_only', 'off', true)"});
    INFO(lift.err);
    CHECK(lift.status == 1);
    CHECK(lift.err.find("transaction_read_only") != std::string::npos);
    // ...nor one hidden in a function, which the server refuses (25001).
    PgSession primary(ClusterEnv::get().superuser_conninfo("us-east-1"));
    primary.exec("create or replace function rgd_lift_read_only() returns text language sql as "
                 "$$ select set_config('transaction_read_only', 'off', true) $$");
    const Command hidden = d.query({"--primary", "select rgd_lift_read_only()"});
    INFO(hidden.err);
    CHECK(hidden.status == 1);
    CHECK(hidden.err.find("25001") != std::string::npos);
    CHECK(count_outside(v) == "0");
}

TEST_CASE("session state sent through a read or a write: every pooled connection sees the defaults afterwards",
          "[isolation][session]") {
    // All statements through one daemon, then every pooled connection is
    // probed: a state any of them left behind shows up on the connection it
    // ran on (the INFO lists what each statement was answered).
    const auto& env = ClusterEnv::get();
    const std::vector<std::string> statements = {
        "set timezone = 'America/New_York'",
        "set search_path = pg_catalog",
        "select set_config('search_path', 'pg_catalog', false)",
        "set application_name = 'rgd_changed'",
        "set datestyle = 'German'",
        "set role " + env.value("APP_USER"),
        "prepare rgd_p as select 1",
        "listen rgd_channel",
        "select pg_advisory_lock(4242)",
        "select pg_advisory_lock_shared(4243)",
        "create temp table rgd_iso_tmp (a int)",
        "declare rgd_cur cursor with hold for select 1",
    };
    PgSession outside(env.superuser_conninfo("us-east-1"));
    Daemon d("us-east-1");
    const unsigned pool = d.primary_pool_size();
    REQUIRE(pool > 0);
    const std::string first = child_query(d.setup.socket, Op::read_primary, kSessionProbe);
    REQUIRE(first.rfind("ok ", 0) == 0);
    const std::string defaults = session_state(first);
    std::string answers;
    for (const auto& sql : statements) {
        for (const bool write : {false, true}) {
            const Command c = d.query({write ? "--write" : "--primary", sql});
            answers += std::string("\n  ") + (write ? "write " : "read_primary ") + sql + ": exit " +
                       std::to_string(c.status) + " " + c.err;
        }
    }
    INFO("answers:" << answers);
    check_probed(probe_every_connection(d, Op::read_primary, "us-east-1", pool, defaults));
    // A session advisory lock left on any connection blocks everyone else.
    CHECK(outside.scalar("select pg_try_advisory_lock(4242)") == "t");
    CHECK(outside.scalar("select pg_try_advisory_lock(4243)") == "t");
    outside.exec("select pg_advisory_unlock_all()");
}

TEST_CASE("session state sent through a read on a replica: every pooled connection sees the defaults afterwards",
          "[isolation][session]") {
    Daemon d("eu-west-1");
    unsigned pool = 0;
    const Json status = d.status();  // kept: the loop views into it
    for (const Json& e : status["endpoints"].array())
        if (e["region"].str() == "eu-west-1" && e["role"].str() == "replica")
            pool = static_cast<unsigned>(e["pool_size"].num());
    REQUIRE(pool > 0);
    const std::string first = child_query(d.setup.socket, Op::read_local, kSessionProbe);
    REQUIRE(first.rfind("ok ", 0) == 0);
    const std::string defaults = session_state(first);
    std::string answers;
    for (const char* sql :
         {"set timezone = 'America/New_York'", "set search_path = pg_catalog",
          "select set_config('search_path', 'pg_catalog', false)", "set application_name = 'rgd_changed'",
          "prepare rgd_p as select 1", "declare rgd_cur cursor with hold for select 1"}) {
        const Command c = d.query({sql});
        answers += std::string("\n  read_local ") + sql + ": exit " + std::to_string(c.status) + " " + c.err;
    }
    INFO("answers:" << answers);
    check_probed(probe_every_connection(d, Op::read_local, "eu-west-1", pool, defaults));
}

TEST_CASE("COPY to and from, as a read and as a write: an error at once, the daemon responsive and idle after",
          "[isolation][copy]") {
    ensure_table();
    Daemon d("us-east-1");
    for (const std::string& sql :
         {std::string("copy (select 1) to stdout"), std::string("copy ") + kTable + " (v) to stdout",
          std::string("copy ") + kTable + " (v) from stdin"}) {
        for (const std::string mode : {"--primary", "", "--write"}) {
            INFO((mode.empty() ? "read_local" : mode) << ": " << sql);
            std::vector<std::string> args;
            if (!mode.empty()) args.push_back(mode);
            args.push_back(sql);
            const Command c = d.query(args, 5s);
            INFO(c.err);
            REQUIRE(c.status != -1);  // finished: the daemon did not wedge
            CHECK(c.status == 1);
            CHECK(c.err.find("COPY") != std::string::npos);
            CHECK(c.ms < 1000);
            const auto t0 = Clock::now();
            const std::string status = admin_command(d.setup.admin_socket, "status");
            const double status_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            CHECK(status.rfind("ok\n", 0) == 0);
            CHECK(status_ms < 1000);
        }
    }
    // Idle afterwards: a loop spinning on a result would use a whole core.
    std::this_thread::sleep_for(500ms);  // let the daemon's bounded ring spin after activity end
    const double before = cpu_seconds(d.process->pid());
    std::this_thread::sleep_for(2s);
    const double used = cpu_seconds(d.process->pid()) - before;
    INFO("daemon CPU over 2 s: " << used << " s");
    CHECK(used < 0.5);
    CHECK(d.unhealthy().empty());
}

TEST_CASE("8 concurrent self-terminating reads: every endpoint stays healthy, other clients are served",
          "[isolation][health]") {
    ensure_table();
    Daemon d("us-east-1");
    std::vector<Spawned> killers;
    for (int i = 0; i < 8; ++i)
        killers.push_back(d.spawn_query({"--primary", "select pg_terminate_backend(pg_backend_pid())"}));
    const std::string socket = d.setup.socket;
    const std::string prefix = unique_value();
    Children others(6, [&](int i) {
        std::string failures;
        for (int n = 0; n < 15; ++n) {
            const std::string v = prefix + "-" + std::to_string(i) + "-" + std::to_string(n);
            for (const auto& [op, sql] :
                 {std::pair{Op::read_primary, std::string("select 1")},
                  std::pair{Op::read_local, std::string("select 2")},
                  std::pair{Op::write, std::string("insert into ") + kTable + " (v) values ('" + v + "')"}}) {
                const std::string r = child_query(socket, op, sql);
                if (r.rfind("ok", 0) != 0) failures += r + "; ";
            }
        }
        return failures.empty() ? std::string("ok") : failures;
    });
    std::vector<std::string> unhealthy;
    const auto deadline = Clock::now() + 60s;
    while (!others.done() && Clock::now() < deadline) {
        if (std::string u = d.unhealthy(); !u.empty()) unhealthy.push_back(u);
        std::this_thread::sleep_for(20ms);
    }
    for (auto& k : killers) {
        const Command c = k.wait(Clock::now() + 30s);
        INFO(c.err);
        CHECK(c.status == 1);
        CHECK(c.err.find("57P01") != std::string::npos);  // its own error, not re-run elsewhere
    }
    if (std::string u = d.unhealthy(); !u.empty()) unhealthy.push_back(u);
    for (const auto& u : unhealthy) INFO("unhealthy: " << u);
    CHECK(unhealthy.empty());
    for (const auto& line : others.collect()) {
        INFO(line);
        CHECK(line == "ok");
    }
    // Every write the others made is there.
    PgSession primary(ClusterEnv::get().superuser_conninfo("us-east-1"));
    CHECK(primary.scalar(std::string("select count(*) from ") + kTable + " where v like '" + prefix + "-%'") == "90");
}

namespace {

// ~8 MB as text (200 000 rows of ~40 bytes).
const char* const kBigSql = "select g, 'row-' || g || repeat('.', 30) as label from generate_series(1, 200000) g";

std::string fetch_big(const std::string& socket) {
    char err[512] = "";
    rgd_client* c = rgd_connect(socket.c_str(), err, sizeof err);
    if (c == nullptr) return std::string("error connect ") + err;
    rgd_set_timeout_ms(c, 60000);
    rgd_result* r = rgd_read_local(c, kBigSql, 0, nullptr);
    std::string out;
    if (rgd_ok(r) != 1) {
        out = std::string("error ") + rgd_error(r);
    } else if (rgd_nrows(r) != 200000) {
        out = "rows " + std::to_string(rgd_nrows(r));
    } else if (std::string(rgd_value(r, 199999, 1)).rfind("row-200000.", 0) != 0) {
        out = std::string("last row ") + rgd_value(r, 199999, 1);
    } else {
        out = "ok";
    }
    rgd_free(r);
    rgd_disconnect(c);
    return out;
}

}  // namespace

TEST_CASE("a 200 000-row result through the daemon", "[isolation][large]") {
    Daemon d("eu-west-1");
    const auto lines = run_children(1, [&](int) { return fetch_big(d.setup.socket); });
    CHECK(lines.at(0) == "ok");
}

TEST_CASE("the daemon's memory stays bounded while 20 clients fetch large results", "[isolation][large][memory]") {
    // Bound: each client's response is held by the daemon at most as its
    // streaming window (max(ring_size, 1 MiB)) plus the 64 KiB chunk being
    // filled, and libpq buffers one socket read per pooled connection; with 20
    // clients and 1 MiB rings that is about 20 x 1.1 MiB + 8 x 0.5 MiB = 26 MiB
    // over the idle daemon. 64 MiB leaves room for the allocator. Holding the
    // results whole instead would take 20 x ~10 MB.
    Daemon d("eu-west-1");
    REQUIRE(run_children(1, [&](int) { return fetch_big(d.setup.socket); }).at(0) == "ok");  // warm: pool open
    const std::uint64_t idle = rss_bytes(d.process->pid());
    Children clients(20, [&](int) { return fetch_big(d.setup.socket); });
    std::uint64_t peak = idle;
    const auto deadline = Clock::now() + 120s;
    while (!clients.done() && Clock::now() < deadline) {
        peak = std::max(peak, rss_bytes(d.process->pid()));
        std::this_thread::sleep_for(5ms);
    }
    for (const auto& line : clients.collect()) CHECK(line == "ok");
    INFO("idle RSS " << idle / 1024 << " KiB, peak " << peak / 1024 << " KiB");
    CHECK(peak - idle < 64ull * 1024 * 1024);
}

TEST_CASE("a result over daemon.max_result fails naming the limit; the next request works", "[isolation][limit]") {
    // daemon.max_result comes with the client-server work (config key and the
    // dispatcher passing Job::max_result).
    Daemon d("eu-west-1", "max_result = \"1MiB\"");
    const std::string r = run_children(1, [&](int) { return fetch_big(d.setup.socket); }).at(0);
    CHECK(r == "error result exceeds daemon.max_result (1 MiB)");
    CHECK(child_query(d.setup.socket, Op::read_local, "select 'next'") == "ok next");
}

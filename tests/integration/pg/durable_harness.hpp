// Helpers of the durable-invalidation integration tests (durable_test.cpp,
// tailer_test.cpp): a libpq session with parameters, the rows of
// regiond.invalidations, a database without the table, scripts/schema.sql
// applied with psql, writes with keys, and a recorder of the tailer's hooks.
#pragma once

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../child_output.hpp"
#include "../cluster_env.hpp"
#include "../pg_session.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/invalidation_tailer.hpp"
#include "daemon/pg/endpoint.hpp"
#include "endpoint_harness.hpp"

namespace regiond::testing::pg {

using Row = std::vector<std::optional<std::string>>;

// A session that binds parameters (PgSession has none): what the tests read
// back must not depend on the quoting the code under test is checked for.
class Db {
public:
    explicit Db(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str()), &PQfinish) {
        if (PQstatus(conn_.get()) != CONNECTION_OK)
            throw std::runtime_error(std::string("connect failed: ") + PQerrorMessage(conn_.get()));
    }

    std::vector<Row> rows(const std::string& sql, const std::vector<std::string>& params = {}) {
        std::vector<const char*> values;
        for (const auto& p : params) values.push_back(p.c_str());
        std::unique_ptr<PGresult, decltype(&PQclear)> r(
            PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                         nullptr, 0),
            &PQclear);
        const auto st = PQresultStatus(r.get());
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
            throw std::runtime_error("query failed: " + sql + ": " + PQerrorMessage(conn_.get()));
        std::vector<Row> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
            Row row;
            for (int c = 0; c < PQnfields(r.get()); ++c) {
                if (PQgetisnull(r.get(), i, c)) {
                    row.emplace_back(std::nullopt);
                } else {
                    row.emplace_back(
                        std::string(PQgetvalue(r.get(), i, c), static_cast<std::size_t>(PQgetlength(r.get(), i, c))));
                }
            }
            out.push_back(std::move(row));
        }
        return out;
    }

    std::string scalar(const std::string& sql, const std::vector<std::string>& params = {}) {
        auto r = rows(sql, params);
        return r.empty() || r[0].empty() || !r[0][0] ? std::string() : *r[0][0];
    }

    void exec(const std::string& sql, const std::vector<std::string>& params = {}) { (void)rows(sql, params); }

private:
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
};

inline std::uint64_t lsn_of(const std::string& text) {
    const auto lsn = regiond::daemon::pg::parse_lsn(text);
    REQUIRE(lsn.has_value());
    return *lsn;
}

inline std::uint64_t token_lsn(const regiond::shm::Response& r) {
    const std::string token(r.token);
    const auto slash = token.find('/');
    REQUIRE(slash != std::string::npos);
    return lsn_of(token.substr(slash + 1));
}

// The invalidation rows written by `origin`: (id, keys in order).
struct InvalidationRow {
    std::string id;
    std::vector<std::string> keys;
};

inline std::vector<InvalidationRow> invalidation_rows(Db& db, const std::string& origin) {
    std::vector<InvalidationRow> out;
    for (const auto& r : db.rows("select i.id::text, k.key from regiond.invalidations i"
                                 " left join lateral unnest(i.keys) with ordinality as k(key, n) on true"
                                 " where i.origin = $1 order by i.id, k.n",
                                 {origin})) {
        if (out.empty() || out.back().id != *r[0]) out.push_back(InvalidationRow{*r[0], {}});
        if (r[1]) out.back().keys.push_back(*r[1]);
    }
    return out;
}

// Waits until the replica of `region` has replayed everything the primary has
// written so far (the superuser's view of both).
inline void wait_replayed(const std::string& region) {
    const auto& env = ClusterEnv::get();
    PgSession primary(env.superuser_conninfo("us-east-1"));
    const std::string lsn = primary.scalar("select pg_current_wal_insert_lsn()");
    PgSession replica(env.superuser_conninfo(region));
    REQUIRE(eventually(
        [&] { return replica.scalar("select pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn") == "t"; }, 30s));
}

// Waits until the replica of `region` has replayed at least `lsn`.
inline void wait_replay_at_least(const std::string& region, std::uint64_t lsn) {
    PgSession replica(ClusterEnv::get().superuser_conninfo(region));
    REQUIRE(eventually(
        [&] {
            return replica.scalar("select pg_last_wal_replay_lsn() >= '" + regiond::daemon::pg::format_lsn(lsn) +
                                  "'::pg_lsn") == "t";
        },
        30s));
}

// Some WAL after everything so far (a commit of its own), so that a replica's
// replay LSN can pass a token that ends exactly at a WAL page boundary
// (docs/design.md, "Known limitation: WAL page boundaries").
inline void write_filler() {
    PgSession primary(ClusterEnv::get().superuser_conninfo("us-east-1"));
    primary.exec(std::string("insert into ") + kTable + " (v) values ('filler')");
}

// A database of the cluster without regiond's table (and a table `t` the
// application may write), made afresh: "the table is missing".
inline const char* const kNoTableDb = "rgd_durable_notable";

inline void make_db_without_table() {
    const auto& env = ClusterEnv::get();
    PgSession primary(env.superuser_conninfo("us-east-1"));
    primary.exec("set client_min_messages = warning");
    primary.exec(std::string("drop database if exists ") + kNoTableDb + " with (force)");
    primary.exec(std::string("create database ") + kNoTableDb);
    const std::string conninfo = env.superuser_conninfo("us-east-1") + " dbname=" + kNoTableDb;
    PgSession db(conninfo);
    db.exec("create table t (v text not null)");
    db.exec("grant all on t to " + env.value("APP_USER"));
    wait_replayed("eu-west-1");
}

// A conninfo for another database: libpq takes the last value of a keyword.
inline std::string with_db(const std::string& conninfo, const std::string& db) {
    return conninfo + " dbname=" + db;
}

// Runs scripts/schema.sql with psql on the primary in `db`, as the cluster
// script does; fails the test with psql's output when it fails.
inline void apply_schema(const std::string& db) {
    const auto& env = ClusterEnv::get();
    const char* root = std::getenv("REGIOND_SOURCE_ROOT");
    REQUIRE(root != nullptr);
    const std::string file = std::string(root) + "/scripts/schema.sql";
    const std::string port = std::to_string(env.pg_port("us-east-1"));
    const std::string role = "app_role=" + env.value("APP_USER");
    const std::string sock = env.pg_socket_dir();
    int out[2], err[2];
    REQUIRE(pipe(out) == 0);
    REQUIRE(pipe(err) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        execlp("psql", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", sock.c_str(), "-p", port.c_str(), "-U",
               "postgres", "-d", db.c_str(), "-v", role.c_str(), "-f", file.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    const auto r = collect_child_output(pid, out[0], err[0], std::chrono::steady_clock::now() + 30s);
    INFO("psql: " << r.out << r.err);
    REQUIRE(r.status == 0);
}

// A write with keys through `ep`; the test fails if it does not answer.
inline Result write_with_keys(EventLoop& loop, Endpoint& ep, const std::string& sql,
                              std::vector<std::optional<std::string>> params, std::vector<std::string> keys,
                              const std::string& origin) {
    Job j = write(sql, std::move(params));
    j.invalidate_keys = std::move(keys);
    j.origin = origin;
    return run_job(loop, ep, std::move(j));
}

// What a tailer's hooks were told, in order.
struct Recorder {
    struct Delivery {
        std::vector<std::string> keys;
        std::uint64_t lsn = 0;
    };
    std::vector<Delivery> deliveries;
    std::vector<std::string> gaps;
    int caught_up = 0;

    regiond::daemon::InvalidationTailer::Hooks hooks() {
        return {[this](std::vector<std::string> keys, std::uint64_t lsn) {
                    deliveries.push_back(Delivery{std::move(keys), lsn});
                },
                [this](std::string reason) { gaps.push_back(std::move(reason)); }, [this] { ++caught_up; }};
    }

    // The deliveries whose first key starts with `prefix`.
    std::vector<Delivery> with_prefix(const std::string& prefix) const {
        std::vector<Delivery> out;
        for (const auto& d : deliveries)
            if (!d.keys.empty() && d.keys[0].rfind(prefix, 0) == 0) out.push_back(d);
        return out;
    }
};

// Tailer options for the eu-west-1 replica as its own region's daemon sees it.
inline regiond::daemon::InvalidationTailer::Options replica_tailer_options(std::chrono::milliseconds poll_interval,
                                                                           const std::string& db = "") {
    const auto& env = ClusterEnv::get();
    regiond::daemon::InvalidationTailer::Options o;
    o.conninfo = env.app_conninfo_via("eu-west-1", "eu-west-1");
    if (!db.empty()) o.conninfo = with_db(o.conninfo, db);
    o.display_name = link_display(env, "eu-west-1", "eu-west-1");
    o.poll_interval = poll_interval;
    o.connect_timeout = 2000ms;
    return o;
}

// Polls driven by the test: a poll interval no test lasts, and poll_now().
inline constexpr std::chrono::milliseconds kManualPolls = std::chrono::hours(1);

// One poll (all its pages) answered after this call: poll_now(), then the
// loop until the tailer's page count has grown and no page is in flight.
inline void poll_once(EventLoop& loop, regiond::daemon::InvalidationTailer& t) {
    const auto before = t.stats().polls + t.stats().failed_polls;
    t.poll_now();
    REQUIRE(run_until(
        loop, [&] { return t.stats().polls + t.stats().failed_polls > before && t.idle(); }, 15s));
}

}  // namespace regiond::testing::pg

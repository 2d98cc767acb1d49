// Helpers shared by the daemon/pg/ integration tests: endpoints built from the
// cluster's servers (through the WAN links), jobs, a loop driver that polls
// with a deadline, and decoding of response chunks as a client would.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "../cluster_env.hpp"
#include "../pg_session.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/pg/endpoint.hpp"
#include "shm/codec.hpp"

namespace regiond::testing::pg {

using namespace std::chrono_literals;
using regiond::daemon::EventLoop;
using regiond::daemon::pg::Endpoint;
using regiond::daemon::pg::EndpointOptions;
using regiond::daemon::pg::Job;
using regiond::daemon::pg::JobCallbacks;
using regiond::daemon::pg::JobId;
using regiond::daemon::pg::Outcome;
using regiond::daemon::pg::Role;
using regiond::shm::Response;
using Clock = std::chrono::steady_clock;

inline const char* const kTable = "pg_endpoint_test";

struct Result {
    Outcome outcome;
    Response response;
    double ms = 0;
};

inline Response decode(const Outcome& out) {
    regiond::shm::ResponseDecoder dec;
    for (const auto& chunk : out.chunks) REQUIRE(dec.feed(chunk) == regiond::shm::CodecError::ok);
    REQUIRE(dec.complete());
    return dec.take();
}

inline std::optional<std::string> cell(const Response& r, std::size_t row, std::size_t col) {
    REQUIRE(row < r.nrows());
    REQUIRE(col < r.ncols());
    auto v = r.value(row, col);
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
}

inline Job make_job(Job::Kind kind, std::string sql, std::vector<std::optional<std::string>> params = {},
                    std::chrono::milliseconds timeout = 10s) {
    Job j;
    j.kind = kind;
    j.sql = std::move(sql);
    j.params = std::move(params);
    j.deadline = Clock::now() + timeout;
    return j;
}

inline Job read(std::string sql, std::vector<std::optional<std::string>> params = {},
                std::chrono::milliseconds timeout = 10s) {
    return make_job(Job::Kind::read, std::move(sql), std::move(params), timeout);
}

inline Job write(std::string sql, std::vector<std::optional<std::string>> params = {},
                 std::chrono::milliseconds timeout = 10s) {
    return make_job(Job::Kind::write, std::move(sql), std::move(params), timeout);
}

// Runs the loop until cond holds or the limit passes (never a fixed sleep).
inline bool run_until(EventLoop& loop, const std::function<bool()>& cond, std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
        if (cond()) return true;
        loop.run_once(5ms);
    }
    return cond();
}

inline Result run_job(EventLoop& loop, Endpoint& ep, Job job, std::chrono::milliseconds limit = 15s) {
    std::optional<Outcome> got;
    const auto t0 = Clock::now();
    ep.submit(std::move(job), [&](Outcome&& o) {
        REQUIRE_FALSE(got.has_value());  // exactly once
        got = std::move(o);
    });
    REQUIRE(run_until(
        loop, [&] { return got.has_value(); }, limit));
    Result r;
    r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    r.outcome = std::move(*got);
    r.response = decode(r.outcome);
    return r;
}

inline EndpointOptions options(const std::string& region, Role role, const std::string& conninfo,
                               const std::string& display) {
    EndpointOptions o;
    o.region = region;
    o.role = role;
    o.conninfo = conninfo;
    o.display_name = display;
    o.pool_size = 4;
    o.connect_timeout = 2000ms;
    o.check_interval = 200ms;
    o.lag_poll_interval = 50ms;
    o.max_chunk_bytes = 64 * 1024;
    return o;
}

inline std::string link_display(const ClusterEnv& env, const std::string& from, const std::string& to) {
    const auto& l = env.link(from, to, "pg");
    return l.listen_host + ":" + std::to_string(l.listen_port);
}

// The eu-west-1 replica as seen from the ap-northeast-1 host (an 11 ms link in
// the fast profile), for tests that cut that link.
inline EndpointOptions eu_replica_from_tokyo(const ClusterEnv& env) {
    return options("eu-west-1", Role::replica, env.app_conninfo_via("ap-northeast-1", "eu-west-1"),
                   link_display(env, "ap-northeast-1", "eu-west-1"));
}

// The primary as seen from the eu-west-1 host (through the WAN link).
inline std::unique_ptr<Endpoint> primary_from_eu(EventLoop& loop, unsigned pool = 4) {
    const auto& env = ClusterEnv::get();
    auto o = options("us-east-1", Role::primary, env.app_conninfo_via("eu-west-1", "us-east-1"),
                     link_display(env, "eu-west-1", "us-east-1"));
    o.pool_size = pool;
    auto ep = Endpoint::create(loop, o);
    ep->start();
    return ep;
}

// The eu-west-1 replica as seen from its own region.
inline std::unique_ptr<Endpoint> local_replica(EventLoop& loop, unsigned pool = 4) {
    const auto& env = ClusterEnv::get();
    auto o = options("eu-west-1", Role::replica, env.app_conninfo_via("eu-west-1", "eu-west-1"),
                     link_display(env, "eu-west-1", "eu-west-1"));
    o.pool_size = pool;
    auto ep = Endpoint::create(loop, o);
    ep->start();
    return ep;
}

inline std::string unique_value() {
    std::random_device rd;
    return "v-" + std::to_string(getpid()) + "-" + std::to_string(rd());
}

inline void ensure_table() {
    const auto& env = ClusterEnv::get();
    PgSession primary(env.superuser_conninfo("us-east-1"));
    primary.exec("set client_min_messages = warning");  // no "already exists" notices
    primary.exec(std::string("create table if not exists ") + kTable +
                 " (id bigserial primary key, v text not null, n int)");
    primary.exec(std::string("grant all on ") + kTable + " to " + env.value("APP_USER"));
    primary.exec(std::string("grant all on sequence ") + kTable + "_id_seq to " + env.value("APP_USER"));
    const std::string lsn = primary.scalar("select pg_current_wal_insert_lsn()");
    PgSession replica(env.superuser_conninfo("eu-west-1"));
    REQUIRE(eventually(
        [&] { return replica.scalar("select pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn") == "t"; }, 30s));
}

inline std::string count_of(PgSession& s, const std::string& v) {
    return s.scalar(std::string("select count(*) from ") + kTable + " where v = '" + v + "'");
}

struct ReplayPauseGuard {
    PgSession& replica;
    explicit ReplayPauseGuard(PgSession& r) : replica(r) { replica.exec("select pg_wal_replay_pause()"); }
    ~ReplayPauseGuard() {
        try {
            replica.exec("select pg_wal_replay_resume()");
        } catch (...) {}
    }
};

// Waits (running the loop) until a statement containing `marker` is active on
// the primary.
inline void wait_active(EventLoop& loop, PgSession& primary, const std::string& marker) {
    REQUIRE(run_until(
        loop,
        [&] {
            return primary.scalar("select count(*) from pg_stat_activity where state = 'active' and query like '%" +
                                  marker + "%' and pid <> pg_backend_pid()") == "1";
        },
        5s));
}

}  // namespace regiond::testing::pg

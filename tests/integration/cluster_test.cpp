// The local cluster itself (scripts/cluster.sh): replication works, replay can be
// frozen, the WAN proxy adds its delay and can cut a link, and the generated
// regiond configs are valid. Runs against the cluster that is up; fails with a
// clear message when none is.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cluster_env.hpp"
#include "pg_session.hpp"

extern char** environ;

using namespace std::chrono_literals;
using regiond::testing::ClusterEnv;
using regiond::testing::eventually;
using regiond::testing::LinkCut;
using regiond::testing::PgSession;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string unique_value() {
    std::random_device rd;
    return "probe-" + std::to_string(getpid()) + "-" + std::to_string(rd());
}

void ensure_probe_table(PgSession& primary) {
    primary.exec("create table if not exists cluster_probe (id bigserial primary key, v text not null)");
}

// The rows with value v; "no table" while a replica has not replayed the
// CREATE TABLE yet (a fresh cluster may be polled before it has).
std::string count_rows(PgSession& s, const std::string& v) {
    if (s.scalar("select to_regclass('cluster_probe') is null") == "t") return "no table";
    return s.scalar("select count(*) from cluster_probe where v = '" + v + "'");
}

// Resumes replay on a replica even when the test fails half way, so a paused
// replica never leaks into later tests.
struct ReplayPauseGuard {
    PgSession& replica;
    explicit ReplayPauseGuard(PgSession& r) : replica(r) { replica.exec("select pg_wal_replay_pause()"); }
    ~ReplayPauseGuard() {
        try {
            replica.exec("select pg_wal_replay_resume()");
        } catch (...) {}
    }
};

// A raw TCP round trip: connect, send `request`, read until `expect_prefix` has
// arrived. Returns the milliseconds the exchange (not the connect) took.
double tcp_round_trip_ms(const std::string& host, int port, const std::string& request,
                         const std::string& expect_prefix) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto t0 = Clock::now();
    REQUIRE(write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string got;
    char buf[256];
    while (got.size() < expect_prefix.size()) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    double ms = ms_since(t0);
    close(fd);
    REQUIRE(got.compare(0, expect_prefix.size(), expect_prefix) == 0);
    return ms;
}

int run_and_capture(const std::vector<std::string>& args, std::string& out) {
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    REQUIRE(rc == 0);
    char buf[512];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("a row written on the primary becomes visible on both replicas", "[cluster]") {
    const auto& env = ClusterEnv::get();
    PgSession primary(env.superuser_conninfo("us-east-1"));
    ensure_probe_table(primary);
    const std::string v = unique_value();
    primary.exec("insert into cluster_probe (v) values ('" + v + "')");
    for (const char* region : {"eu-west-1", "ap-northeast-1"}) {
        INFO("replica " << region);
        PgSession replica(env.superuser_conninfo(region));
        CHECK(replica.scalar("select pg_is_in_recovery()") == "t");
        CHECK(eventually([&] { return count_rows(replica, v) == "1"; }, 30s));
    }
}

TEST_CASE("a replica with replay paused does not show a new row until replay resumes", "[cluster]") {
    const auto& env = ClusterEnv::get();
    PgSession primary(env.superuser_conninfo("us-east-1"));
    PgSession paused(env.superuser_conninfo("eu-west-1"));
    PgSession other(env.superuser_conninfo("ap-northeast-1"));
    ensure_probe_table(primary);
    // The table must exist on the replica before replay freezes.
    REQUIRE(eventually([&] { return paused.scalar("select to_regclass('cluster_probe') is not null") == "t"; }, 30s));
    const std::string v = unique_value();
    {
        ReplayPauseGuard guard(paused);
        REQUIRE(eventually([&] { return paused.scalar("select pg_get_wal_replay_pause_state()") == "paused"; }, 10s));
        primary.exec("insert into cluster_probe (v) values ('" + v + "')");
        // The LSN is read after the commit, in its own statement (ENVIRONMENT.md).
        const std::string lsn = primary.scalar("select pg_current_wal_insert_lsn()");
        // The replica has received the commit record but must not have applied it.
        REQUIRE(eventually(
            [&] { return paused.scalar("select pg_last_wal_receive_lsn() >= '" + lsn + "'::pg_lsn") == "t"; }, 30s));
        REQUIRE(eventually([&] { return count_rows(other, v) == "1"; }, 30s));
        CHECK(count_rows(paused, v) == "0");
        CHECK(paused.scalar("select pg_last_wal_replay_lsn() < '" + lsn + "'::pg_lsn") == "t");
    }
    CHECK(eventually([&] { return count_rows(paused, v) == "1"; }, 30s));
}

TEST_CASE("a round trip through a WAN link takes at least twice its one-way delay", "[cluster][wan]") {
    const auto& env = ClusterEnv::get();
    const auto& link = env.link("eu-west-1", "us-east-1", "pg");
    REQUIRE(link.delay_ms > 0);
    PgSession via_wan(env.app_conninfo_via("eu-west-1", "us-east-1"));
    PgSession direct("host=127.0.0.1 port=" + std::to_string(env.pg_port("us-east-1")) +
                     " dbname=app user=app passfile=" + env.value("APP_PASSFILE"));
    std::vector<double> wan, local;
    for (int i = 0; i < 5; ++i) {
        auto t0 = Clock::now();
        REQUIRE(via_wan.scalar("select 1") == "1");
        wan.push_back(ms_since(t0));
        t0 = Clock::now();
        REQUIRE(direct.scalar("select 1") == "1");
        local.push_back(ms_since(t0));
    }
    std::sort(wan.begin(), wan.end());
    std::sort(local.begin(), local.end());
    INFO("one-way delay " << link.delay_ms << " ms; via WAN min " << wan.front() << " ms; direct median " << local[2]
                          << " ms");
    // The proxy holds every chunk for the delay in each direction: a physical lower
    // bound, not a timing guess.
    CHECK(wan.front() >= 2 * link.delay_ms);
    CHECK(local[2] < link.delay_ms);

    const auto& redis_link = env.link("ap-northeast-1", "us-east-1", "redis");
    double redis_ms = tcp_round_trip_ms(redis_link.listen_host, redis_link.listen_port, "PING\r\n", "+PONG");
    INFO("redis PING via " << redis_link.name << ": " << redis_ms << " ms");
    CHECK(redis_ms >= 2 * redis_link.delay_ms);
}

TEST_CASE("a cut WAN link refuses connections quickly and works again once restored", "[cluster][wan]") {
    const auto& env = ClusterEnv::get();
    // eu-west-1 -> ap-northeast-1 carries no replication, so cutting it disturbs
    // nothing else.
    const std::string conninfo = env.app_conninfo_via("eu-west-1", "ap-northeast-1");
    const std::string name = env.link("eu-west-1", "ap-northeast-1", "pg").name;
    {
        PgSession open_before(conninfo);
        LinkCut cut(env, name, "reset");
        auto t0 = Clock::now();
        PGconn* c = PQconnectdb(conninfo.c_str());
        const double elapsed = ms_since(t0);
        CHECK(PQstatus(c) == CONNECTION_BAD);
        PQfinish(c);
        INFO("refused after " << elapsed << " ms");
        CHECK(elapsed < 5000);
        // reset mode closed the connection that was open
        CHECK_THROWS(open_before.scalar("select 1"));
    }
    PgSession after(conninfo);
    CHECK(after.scalar("select 1") == "1");
    {
        LinkCut cut(env, name, "blackhole");
        auto t0 = Clock::now();
        PGconn* c = PQconnectdb(conninfo.c_str());  // connect_timeout=2 in the conninfo
        const double elapsed = ms_since(t0);
        CHECK(PQstatus(c) == CONNECTION_BAD);
        PQfinish(c);
        INFO("blackholed connect gave up after " << elapsed << " ms");
        CHECK(elapsed < 8000);
    }
    PgSession again(conninfo);
    CHECK(again.scalar("select 1") == "1");
}

TEST_CASE("the generated regiond configs pass --check-config", "[cluster][config]") {
    const auto& env = ClusterEnv::get();
    const char* regiond = std::getenv("REGIOND_BIN");
    REQUIRE(regiond != nullptr);
    for (const char* region : {"us-east-1", "eu-west-1", "ap-northeast-1"}) {
        std::string out;
        INFO("config for " << region << ": " << env.regiond_config(region));
        int rc = run_and_capture({regiond, "--check-config", env.regiond_config(region)}, out);
        INFO(out);
        CHECK(rc == 0);
        CHECK(out == "ok\n");
    }
}

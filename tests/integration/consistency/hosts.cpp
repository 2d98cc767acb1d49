#include "hosts.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace regiond::testing::consistency {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string regionctl_binary() {
    const char* v = std::getenv("REGIONCTL_BIN");
    if (v == nullptr || *v == '\0') throw std::runtime_error("$REGIONCTL_BIN is not set (run through meson test)");
    return v;
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

}  // namespace

std::uint64_t parse_lsn(const std::string& text) {
    const auto slash = text.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == text.size() ||
        text.find_first_not_of("0123456789abcdefABCDEF/") != std::string::npos ||
        text.find('/', slash + 1) != std::string::npos)
        throw std::runtime_error("not an LSN: '" + text + "'");
    const std::uint64_t hi = std::stoull(text.substr(0, slash), nullptr, 16);
    const std::uint64_t lo = std::stoull(text.substr(slash + 1), nullptr, 16);
    return hi << 32 | lo;
}

std::uint64_t token_lsn(const std::string& token) {
    const auto slash = token.find('/');
    if (slash == std::string::npos || token.find_first_not_of("0123456789", 0) != slash)
        throw std::runtime_error("not a token: '" + token + "'");
    return parse_lsn(token.substr(slash + 1));
}

std::string format_lsn(std::uint64_t lsn) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%X/%X", static_cast<unsigned>(lsn >> 32), static_cast<unsigned>(lsn));
    return buffer;
}

std::string Answer::describe() const {
    if (status != 0) return "exit " + std::to_string(status) + ": " + error;
    return "served_by " + served_by + ", route_reason \"" + route_reason + "\", token " + token + ", first value " +
           first();
}

Host::Host(std::string region, const std::vector<std::pair<std::string, std::string>>& keys)
    : region_(std::move(region)), setup_(DaemonSetup::from(ClusterEnv::get().regiond_config(region_))) {
    for (const auto& [key, value] : keys) setup_.set_key(key, value);
    process_ = std::make_unique<RegiondProcess>(regiond_binary(), setup_.config_path, setup_.dir + "/regiond.log", "");
    wait_healthy();
}

Json Host::status() const {
    const std::string reply = admin_command(setup_.admin_socket, "status json");
    if (reply.rfind("ok\n", 0) != 0) throw std::runtime_error("status json: " + reply);
    return Json::parse(reply.substr(3));
}

Json Host::endpoint(const std::string& region, const std::string& role) const {
    const Json s = status();
    for (const Json& e : s["endpoints"].array())
        if (e["region"].str() == region && e["role"].str() == role) return e;
    throw std::runtime_error("no " + role + " of " + region + " in " + region_ + "'s status");
}

std::uint64_t Host::counter(const std::string& name) const {
    return static_cast<std::uint64_t>(status()["counters"][name].num());
}

void Host::wait_healthy() const {
    const auto deadline = Clock::now() + 30s;
    std::string last = "not started";
    while (Clock::now() < deadline) {
        try {
            last.clear();
            const Json s = status();
            for (const Json& e : s["endpoints"].array())
                if (!e["healthy"].boolean())
                    last = e["region"].str() + " " + e["role"].str() + ": " + e["last_error"].str();
            if (last.empty()) return;
        } catch (const std::exception& e) {
            last = e.what();
        }
        std::this_thread::sleep_for(20ms);
    }
    INFO(process_->log());
    FAIL("regiond for " << region_ << " not healthy within 30 s: " << last);
}

void Host::wait_replay_known(const std::string& region, std::uint64_t lsn) const {
    std::string last;
    const bool known = eventually(
        [&] {
            last = endpoint(region, "replica")["replay_lsn"].str();
            return !last.empty() && last != "-" && parse_lsn(last) >= lsn;
        },
        15s);
    INFO(region_ << "'s daemon: " << region << " replica replay_lsn " << last << ", wanted " << format_lsn(lsn));
    REQUIRE(known);
}

Answer Host::query(const std::vector<std::string>& args) const {
    std::vector<std::string> all{"--socket", setup_.socket, "query", "--json"};
    all.insert(all.end(), args.begin(), args.end());
    const isolation::Command c = isolation::run_command(regionctl_binary(), all, 30s);
    Answer a;
    a.status = c.status;
    a.ms = c.ms;
    if (c.status != 0) {
        a.error = c.err;
        return a;
    }
    const Json j = Json::parse(c.out);
    a.served_by = j["served_by"].str();
    a.route_reason = j["route_reason"].str();
    a.token = j["token"].str();
    for (const Json& row : j["rows"].array()) {
        std::vector<std::string> cells;
        for (const Json& v : row.array())
            cells.push_back(std::holds_alternative<std::nullptr_t>(v.value) ? "\\N" : v.str());
        a.rows.push_back(std::move(cells));
    }
    return a;
}

Answer Host::write(const std::string& sql, const std::vector<std::string>& params) const {
    std::vector<std::string> args{"--write", sql};
    args.insert(args.end(), params.begin(), params.end());
    return query(args);
}

Answer Host::read_consistent(const std::string& token, const std::string& sql,
                             const std::vector<std::string>& params) const {
    std::vector<std::string> args{"--consistent", token, sql};
    args.insert(args.end(), params.begin(), params.end());
    return query(args);
}

PgSession superuser(const std::string& region) {
    return PgSession(ClusterEnv::get().superuser_conninfo(region));
}

std::uint64_t replica_replay_lsn(const std::string& region) {
    return parse_lsn(superuser(region).scalar("select pg_last_wal_replay_lsn()"));
}

std::uint64_t primary_lsn() {
    return parse_lsn(superuser("us-east-1").scalar("select pg_current_wal_insert_lsn()"));
}

void wait_replayed(const std::string& region, std::uint64_t lsn) {
    PgSession s = superuser(region);
    INFO(region << " replica replaying up to " << format_lsn(lsn));
    REQUIRE(eventually(
        [&] { return s.scalar("select pg_last_wal_replay_lsn() >= '" + format_lsn(lsn) + "'::pg_lsn") == "t"; }, 30s));
}

void wait_streaming(const std::string& region) {
    PgSession primary = superuser("us-east-1");
    INFO(region << " replica streaming from the primary");
    REQUIRE(eventually(
        [&] {
            return primary.scalar("select count(*) from pg_stat_replication where application_name = '" + region +
                                  "' and state = 'streaming'") == "1";
        },
        30s));
}

ReplayPause::ReplayPause(std::string region) : region_(std::move(region)) {
    superuser(region_).exec("select pg_wal_replay_pause()");
    paused_ = true;
}

void ReplayPause::resume() {
    if (!paused_) return;
    PgSession s = superuser(region_);
    s.exec("select pg_wal_replay_resume()");
    paused_ = false;
    // Confirmed, so the next test starts from a replica that replays.
    REQUIRE(eventually([&] { return s.scalar("select pg_get_wal_replay_pause_state()") == "not paused"; }, 10s));
}

ReplayPause::~ReplayPause() {
    if (!paused_) return;
    try {
        superuser(region_).exec("select pg_wal_replay_resume()");
    } catch (...) {
        // The replica may be mid-restart; a restart clears the pause anyway.
    }
}

isolation::Command restart_replica(const std::string& region) {
    const auto& env = ClusterEnv::get();
    const std::string key = ClusterEnv::key_of(region);
    // As the postgres user, from a directory it can read (ENVIRONMENT.md).
    const std::string cmd = "cd " + shell_quote(env.value("REGIOND_CLUSTER_DIR")) + " && runuser -u postgres -- " +
                            shell_quote(env.value("PGBIN") + "/pg_ctl") + " -D " +
                            shell_quote(env.value("PG_DATA_" + key)) + " -l " +
                            shell_quote(env.value("REGIOND_CLUSTER_DIR") + "/log/postgres-" + region + ".log") +
                            " -m immediate -w -t 30 restart";
    return isolation::run_command("/bin/sh", {"-c", cmd}, 60s);
}

ApplyDelay::ApplyDelay(std::string region, const std::string& delay) : region_(std::move(region)) {
    superuser(region_).exec("alter system set recovery_min_apply_delay = '" + delay + "'");
    set_ = true;
}

void ApplyDelay::reset() {
    if (!set_) return;
    PgSession s = superuser(region_);
    s.exec("alter system reset recovery_min_apply_delay");
    s.exec("select pg_reload_conf()");
    set_ = false;
    REQUIRE(eventually([&] { return s.scalar("show recovery_min_apply_delay") == "0"; }, 10s));
}

ApplyDelay::~ApplyDelay() {
    if (!set_) return;
    try {
        ensure_replica_running(region_);
        PgSession s = superuser(region_);
        s.exec("alter system reset recovery_min_apply_delay");
        s.exec("select pg_reload_conf()");
    } catch (...) {
        // Reported by the test that failed; nothing more to do here.
    }
}

void ensure_replica_running(const std::string& region) {
    const auto& env = ClusterEnv::get();
    const std::string key = ClusterEnv::key_of(region);
    const std::string cmd =
        "cd " + shell_quote(env.value("REGIOND_CLUSTER_DIR")) + " && (" +
        shell_quote(env.value("PGBIN") + "/pg_isready") + " -q -h " + shell_quote(env.pg_socket_dir()) + " -p " +
        std::to_string(env.pg_port(region)) + " || runuser -u postgres -- " +
        shell_quote(env.value("PGBIN") + "/pg_ctl") + " -D " + shell_quote(env.value("PG_DATA_" + key)) + " -l " +
        shell_quote(env.value("REGIOND_CLUSTER_DIR") + "/log/postgres-" + region + ".log") + " -w -t 30 start)";
    isolation::run_command("/bin/sh", {"-c", cmd}, 60s);
}

void ensure_table() {
    const auto& env = ClusterEnv::get();
    PgSession primary = superuser("us-east-1");
    primary.exec("set client_min_messages = warning");
    primary.exec(std::string("create table if not exists ") + kTable +
                 " (k text primary key, v bigint not null, version bigint not null default 0)");
    primary.exec(std::string("grant all on ") + kTable + " to " + env.value("APP_USER"));
    const std::uint64_t lsn = primary_lsn();
    wait_replayed("eu-west-1", lsn);
    wait_replayed("ap-northeast-1", lsn);
}

}  // namespace regiond::testing::consistency

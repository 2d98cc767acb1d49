#include "cache_fixture.hpp"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "../cluster_env.hpp"

namespace regiond::testing::cache {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string regionctl_binary() {
    const char* v = std::getenv("REGIONCTL_BIN");
    if (v == nullptr || *v == '\0') throw std::runtime_error("$REGIONCTL_BIN is not set (run through meson test)");
    return v;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string redis_dir(const std::string& region) {
    return ClusterEnv::get().value("REGIOND_CLUSTER_DIR") + "/redis/" + region;
}

}  // namespace

void ensure_schema() {
    const auto& env = ClusterEnv::get();
    PgSession primary = consistency::superuser("us-east-1");
    primary.exec("set client_min_messages = warning");
    primary.exec(std::string("create table if not exists ") + kTable + " (k text primary key, v text not null)");
    primary.exec(std::string("grant all on ") + kTable + " to " + env.value("APP_USER"));
    // STABLE: it only reads. plpgsql, so it is never inlined: every
    // execution of the statement that calls it runs it (and logs) once.
    primary.exec(std::string("create or replace function ") + kCountedFunction +
                 "(key text) returns text language plpgsql stable as $$ "
                 "begin raise log 'rgd-cache-counted %', key; "
                 "return (select v from " +
                 kTable + " where k = key); end $$");
    primary.exec(std::string("grant execute on function ") + kCountedFunction + "(text) to " + env.value("APP_USER"));
    const std::uint64_t lsn = consistency::primary_lsn();
    consistency::wait_replayed(kEu, lsn);
    consistency::wait_replayed(kAp, lsn);
}

std::string unique_key(const std::string& what) {
    return "rgd-cache:" + what + ":" + std::to_string(::getpid()) + ":" +
           std::to_string(Clock::now().time_since_epoch().count() % 1000000000000);
}

std::uint64_t put_row(const std::string& key, const std::string& value) {
    PgSession primary = consistency::superuser("us-east-1");
    // Literals from the tests only (keys and values without quotes), checked.
    if (key.find('\'') != std::string::npos || value.find('\'') != std::string::npos)
        throw std::runtime_error("put_row: no quotes in keys or values");
    primary.exec(std::string("insert into ") + kTable + " (k, v) values ('" + key + "', '" + value +
                 "') on conflict (k) do update set v = excluded.v");
    const std::uint64_t lsn = consistency::primary_lsn();
    consistency::wait_replayed(kEu, lsn);
    consistency::wait_replayed(kAp, lsn);
    return lsn;
}

std::string select_sql() {
    return std::string("select v, md5(v) from ") + kTable + " where k = $1";
}

Answer cached(const Host& host, const std::string& key, const std::string& sql, const std::vector<std::string>& params,
              unsigned ttl_seconds) {
    std::vector<std::string> args{"--cached", key, "--ttl", std::to_string(ttl_seconds), sql};
    args.insert(args.end(), params.begin(), params.end());
    return host.query(args);
}

Answer write_invalidating(const Host& host, const std::string& sql, const std::vector<std::string>& params,
                          const std::vector<std::string>& keys) {
    std::vector<std::string> args{"--write"};
    for (const std::string& k : keys) {
        args.push_back("--invalidate");
        args.push_back(k);
    }
    args.push_back(sql);
    args.insert(args.end(), params.begin(), params.end());
    return host.query(args);
}

Answer update_invalidating(const Host& host, const std::string& key, const std::string& value) {
    return write_invalidating(host, std::string("update ") + kTable + " set v = $2 where k = $1", {key, value}, {key});
}

std::string admin_socket(const Host& host) {
    const std::string& s = host.socket();
    return s.substr(0, s.rfind('/')) + "/admin.sock";
}

isolation::Command flush(const Host& host, const std::vector<std::string>& keys) {
    std::vector<std::string> args{"--socket", admin_socket(host), "cache", "flush"};
    args.insert(args.end(), keys.begin(), keys.end());
    return isolation::run_command(regionctl_binary(), args, 30s);
}

std::string segment_name(const Host& host) {
    return host.status()["state_segment"].str();
}

Json hot_cache(const Host& host) {
    return host.status()["hot_cache"];
}

void wait_vouched(const Host& host, std::chrono::milliseconds deadline) {
    std::string why;
    const bool vouched = eventually(
        [&] {
            const Json h = hot_cache(host);
            why = h["not_vouched"].str();
            return h["vouched"].boolean();
        },
        deadline);
    INFO(host.region() << "'s hot cache not vouched for: " << why << "\n" << log_tail(host));
    REQUIRE(vouched);
}

std::uint64_t wait_counter_above(const Host& host, const std::string& name, std::uint64_t before,
                                 std::chrono::milliseconds deadline) {
    std::uint64_t now = before;
    const bool moved = eventually(
        [&] {
            now = host.counter(name);
            return now > before;
        },
        deadline);
    INFO(host.region() << "'s counter " << name << " stayed at " << now << "\n" << log_tail(host));
    REQUIRE(moved);
    return now;
}

void read_until_local(const Host& host, const std::string& key, const std::string& want,
                      std::chrono::milliseconds deadline) {
    Answer last;
    const bool local = eventually(
        [&] {
            last = cached(host, key, select_sql(), {key});
            INFO(host.region() << ": " << last.describe() << "\n" << log_tail(host));
            REQUIRE(last.status == 0);
            REQUIRE(last.first() == want);
            return last.served_by == "cache:local";
        },
        deadline);
    INFO(host.region() << " never answered from its hot cache: " << last.describe() << "\n" << log_tail(host));
    REQUIRE(local);
}

std::string log_tail(const Host& host, std::size_t lines) {
    const std::string log = host.log();
    std::size_t start = log.size();
    for (std::size_t n = 0; n <= lines && start > 0;) {
        --start;
        if (log[start] == '\n') ++n;
    }
    return "--- " + host.region() + " daemon log (tail) ---\n" + log.substr(start);
}

bool segment_has(const std::string& segment, const std::string& key) {
    auto view = shm::StateView::open(segment);
    if (!view) throw std::runtime_error("cannot map the state segment " + segment + ": " + view.error().message);
    return view->cache_reader().peek(key).has_value();
}

shm::StateView SegmentView::open(const std::string& segment) {
    auto view = shm::StateView::open(segment);
    if (!view) throw std::runtime_error("cannot map the state segment " + segment + ": " + view.error().message);
    return std::move(*view);
}

SegmentView::SegmentView(const Host& host) : view_(open(segment_name(host))) {}

Redis::Redis(const std::string& region) {
    const timeval timeout{2, 0};
    context_ = redisConnectWithTimeout("127.0.0.1", ClusterEnv::get().redis_port(region), timeout);
    if (context_ == nullptr || context_->err != 0) {
        const std::string why = context_ != nullptr ? context_->errstr : "out of memory";
        redisFree(context_);
        context_ = nullptr;
        throw std::runtime_error("cannot connect to " + region + "'s Redis: " + why);
    }
    redisSetTimeout(context_, timeout);
}

Redis::~Redis() {
    redisFree(context_);
}

namespace {

using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

Reply command(redisContext* c, const char* what, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const std::string& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    Reply r(static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())),
            &freeReplyObject);
    if (!r) throw std::runtime_error(std::string("Redis ") + what + ": " + c->errstr);
    if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error(std::string("Redis ") + what + ": " + r->str);
    return r;
}

}  // namespace

std::optional<std::string> Redis::get(const std::string& key) {
    const Reply r = command(context_, "GET", {"GET", key});
    if (r->type == REDIS_REPLY_NIL) return std::nullopt;
    if (r->type != REDIS_REPLY_STRING) throw std::runtime_error("Redis GET: unexpected reply type");
    return std::string(r->str, r->len);
}

void Redis::set(const std::string& key, const std::string& value, long ttl_ms) {
    command(context_, "SET", {"SET", key, value, "PX", std::to_string(ttl_ms)});
}

long long Redis::publish(const std::string& channel, const std::string& message) {
    const Reply r = command(context_, "PUBLISH", {"PUBLISH", channel, message});
    if (r->type != REDIS_REPLY_INTEGER) throw std::runtime_error("Redis PUBLISH: unexpected reply type");
    return r->integer;
}

bool Redis::ping() {
    try {
        const Reply r = command(context_, "PING", {"PING"});
        return r->type == REDIS_REPLY_STATUS && std::string(r->str, r->len) == "PONG";
    } catch (const std::exception&) {
        return false;
    }
}

RedisValue wait_redis(const std::string& region, const std::string& key,
                      const std::function<bool(const RedisValue&)>& pred, std::chrono::milliseconds deadline) {
    Redis redis(region);
    std::optional<std::string> last;
    eventually(
        [&] {
            last = redis.get(key);
            return pred(last);
        },
        deadline);
    return last;
}

namespace {

bool redis_answers(const std::string& region) {
    try {
        return Redis(region).ping();
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

RedisKilled::RedisKilled(std::string region) : region_(std::move(region)) {
    const std::string pidfile = redis_dir(region_) + "/redis.pid";
    const std::string text = read_file(pidfile);
    const long pid = std::strtol(text.c_str(), nullptr, 10);
    if (pid <= 1) throw std::runtime_error("no pid in " + pidfile);
    // The Redis that scripts/cluster.sh started for this test run's cluster.
    if (::kill(static_cast<pid_t>(pid), SIGKILL) != 0)
        throw std::runtime_error("kill " + std::to_string(pid) + " (" + region_ +
                                 "'s Redis) failed: " + std::strerror(errno));
    down_ = true;
    if (!eventually([&] { return ::kill(static_cast<pid_t>(pid), 0) != 0 && !redis_answers(region_); }, 10s))
        throw std::runtime_error(region_ + "'s Redis still answers after SIGKILL");
}

void RedisKilled::restart() {
    if (!down_) return;
    const auto& env = ClusterEnv::get();
    const std::string dir = redis_dir(region_);
    // As scripts/cluster.sh's start_redis does.
    const isolation::Command c = isolation::run_command(
        "/bin/sh",
        {"-c", "exec redis-server --port " + std::to_string(env.redis_port(region_)) +
                   " --bind 127.0.0.1 --daemonize yes --dir '" + dir + "' --pidfile '" + dir +
                   "/redis.pid' --logfile '" + dir + "/redis.log' --save '' --appendonly no >/dev/null"},
        30s);
    if (c.status != 0) throw std::runtime_error("redis-server for " + region_ + " failed: " + c.err);
    if (!eventually([&] { return redis_answers(region_); }, 10s))
        throw std::runtime_error(region_ + "'s Redis did not answer PING after its restart (log: " + dir +
                                 "/redis.log)");
    down_ = false;
}

RedisKilled::~RedisKilled() {
    try {
        restart();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "[cache] could not restart %s's Redis: %s\n", region_.c_str(), e.what());
    }
}

std::size_t server_log_count(const std::string& region, const std::string& needle) {
    const std::string log =
        read_file(ClusterEnv::get().value("REGIOND_CLUSTER_DIR") + "/log/postgres-" + region + ".log");
    std::size_t n = 0;
    for (std::size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + needle.size())) ++n;
    return n;
}

}  // namespace regiond::testing::cache

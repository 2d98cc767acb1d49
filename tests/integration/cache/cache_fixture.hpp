// What the cache tests (issue 9) need beside the read_consistent suite's
// hosts (tests/integration/consistency/hosts.hpp, reused as is): the
// application table and its rows, the cache's view of a Host (vouched,
// counters, its segment, regionctl cache flush), each region's Redis seen
// directly (hiredis, no WAN link) and a Redis killed and brought back as an
// operator would, and the replica's server log as a count of executions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "../consistency/hosts.hpp"
#include "shm/state_segment.hpp"

struct redisContext;

namespace regiond::testing::cache {

using consistency::Answer;
using consistency::Host;

inline const std::string kEu = "eu-west-1";
inline const std::string kAp = "ap-northeast-1";

/// The application table of these tests: one text value per key.
inline const char* const kTable = "rgd_cache_it";
/// A plpgsql function that returns k's value and writes one line
/// "rgd-cache-counted <k>" to the server log each time it runs (RAISE LOG:
/// written by the backend to the log file before the statement's result is
/// sent, so once an answer is in, the line of the execution behind it is in
/// the file). Defined on the primary, so it runs on the replicas too.
inline const char* const kCountedFunction = "rgd_cache_counted";

/// Creates the table and the function (once) and waits until both replicas
/// have them.
void ensure_schema();
/// A key nobody used before (pid and time).
std::string unique_key(const std::string& what);
/// Sets k's value with a superuser session on the primary (no invalidation:
/// the cache does not hear of it) and waits until both replicas replayed it.
/// Returns the primary's insert LSN after the commit.
std::uint64_t put_row(const std::string& key, const std::string& value);

/// The query most tests cache: the value and its md5, computed by PostgreSQL.
std::string select_sql();

/// `regionctl query --json --cached KEY --ttl TTL SQL PARAMS...` on `host`.
Answer cached(const Host& host, const std::string& key, const std::string& sql, const std::vector<std::string>& params,
              unsigned ttl_seconds = 60);
/// `regionctl query --json --write --invalidate KEY... SQL PARAMS...`.
Answer write_invalidating(const Host& host, const std::string& sql, const std::vector<std::string>& params,
                          const std::vector<std::string>& keys);
/// The update every invalidation test uses: v = $2 where k = $1, invalidating k.
Answer update_invalidating(const Host& host, const std::string& key, const std::string& value);

/// The admin socket of a Host (DaemonSetup puts it beside the client socket).
std::string admin_socket(const Host& host);
/// `regionctl --socket ADMIN cache flush [KEY...]`: its exit code and output.
isolation::Command flush(const Host& host, const std::vector<std::string>& keys = {});
/// The state segment's name, from the daemon's status.
std::string segment_name(const Host& host);
/// status json's "hot_cache" object.
Json hot_cache(const Host& host);
/// Waits until the host's hot cache is vouched for (subscribed to its Redis
/// channel and the durable tailer caught up): before that nothing is cached.
void wait_vouched(const Host& host, std::chrono::milliseconds deadline = std::chrono::seconds(30));
/// Waits until counter `name` is above `before`; returns its value.
std::uint64_t wait_counter_above(const Host& host, const std::string& name, std::uint64_t before,
                                 std::chrono::milliseconds deadline = std::chrono::seconds(15));
/// Reads `key` (select_sql) through `host` until it is in the hot cache (a
/// cache:local answer); every answer must be `want`.
void read_until_local(const Host& host, const std::string& key, const std::string& want,
                      std::chrono::milliseconds deadline = std::chrono::seconds(20));
/// The last `lines` lines of the daemon's log (for failure messages).
std::string log_tail(const Host& host, std::size_t lines = 40);

/// Whether the host's segment holds an entry for `key` (any query, any
/// expiry), looked up through a read-only mapping as a client would.
bool segment_has(const std::string& segment, const std::string& key);

/// A host's segment mapped once (read-only, as a client maps it), for
/// looking at it right after something happened.
class SegmentView {
public:
    explicit SegmentView(const Host& host);
    bool has(const std::string& key) const { return view_.cache_reader().peek(key).has_value(); }

private:
    static shm::StateView open(const std::string& segment);
    shm::StateView view_;
};

/// A synchronous hiredis connection straight to a region's Redis (no WAN link).
class Redis {
public:
    explicit Redis(const std::string& region);
    ~Redis();
    Redis(const Redis&) = delete;
    Redis& operator=(const Redis&) = delete;
    /// GET: nullopt for nil; throws on an error reply or a lost connection.
    std::optional<std::string> get(const std::string& key);
    /// SET key value PX ttl_ms (binary-safe).
    void set(const std::string& key, const std::string& value, long ttl_ms = 60000);
    /// PUBLISH channel message; returns the number of subscribers that got it.
    long long publish(const std::string& channel, const std::string& message);
    bool ping();

private:
    redisContext* context_ = nullptr;
};
using RedisValue = std::optional<std::string>;
/// Polls GET until `pred(value)` holds (deadline); returns the last value.
RedisValue wait_redis(const std::string& region, const std::string& key,
                      const std::function<bool(const RedisValue&)>& pred,
                      std::chrono::milliseconds deadline = std::chrono::seconds(10));
inline bool is_nil(const RedisValue& v) {
    return !v.has_value();
}
inline bool is_set(const RedisValue& v) {
    return v.has_value();
}

/// A region's Redis killed (SIGKILL from its pidfile: a crash, nothing saved)
/// for the guard's lifetime, started again as scripts/cluster.sh starts it
/// (same port, directory and options) when the guard ends or on restart(),
/// and waited for (PING), also when the test fails half way.
class RedisKilled {
public:
    explicit RedisKilled(std::string region);
    ~RedisKilled();
    RedisKilled(const RedisKilled&) = delete;
    RedisKilled& operator=(const RedisKilled&) = delete;
    void restart();

private:
    std::string region_;
    bool down_ = false;
};

/// Lines of the replica's server log (pg_ctl -l, no logging collector: each
/// backend appends its lines itself) containing `needle`.
std::size_t server_log_count(const std::string& region, const std::string& needle);

}  // namespace regiond::testing::cache

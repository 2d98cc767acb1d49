// The emulated hosts and servers of the read_consistent tests (issue 8): a
// real regiond per host (eu-west-1, ap-northeast-1) on a test-owned copy of
// the cluster's generated config, with its own sockets and state segment;
// regionctl runs against it; and the replicas controlled from outside as an
// operator would (replay pause, restart as the postgres user).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../cluster_env.hpp"
#include "../daemon/mini_json.hpp"
#include "../daemon/regiond_process.hpp"
#include "../isolation/clients.hpp"
#include "../pg_session.hpp"

namespace regiond::testing::consistency {

/// "0/16B3748" -> 0x16B3748; throws on anything else. The test's own parser,
/// independent of the daemon's.
std::uint64_t parse_lsn(const std::string& text);
/// "SYSTEMID/0/16B3748" -> the LSN; throws on anything else.
std::uint64_t token_lsn(const std::string& token);
std::string format_lsn(std::uint64_t lsn);

/// What `regionctl query --json` printed, or its error.
struct Answer {
    int status = -1;  ///< regionctl's exit code
    std::string error;
    std::string served_by, route_reason, token;
    std::vector<std::vector<std::string>> rows;  ///< SQL NULL as "\\N"
    double ms = 0;
    std::string first() const { return rows.empty() || rows[0].empty() ? "<no row>" : rows[0][0]; }
    std::string describe() const;
};

/// regiond for one emulated host.
class Host {
public:
    /// Starts regiond on a copy of the cluster's config for `region` (with
    /// `keys` rewritten: {"poll_interval", "\"1s\""}) and waits until every
    /// endpoint is healthy.
    explicit Host(std::string region, const std::vector<std::pair<std::string, std::string>>& keys = {});

    const std::string& region() const { return region_; }
    const std::string& socket() const { return setup_.socket; }
    Json status() const;
    /// The status entry of the endpoint of `region` with `role`.
    Json endpoint(const std::string& region, const std::string& role) const;
    /// Waits until every endpoint is healthy (30 s; fails with the log).
    void wait_healthy() const;
    /// Waits until this daemon's polled replay LSN of `region`'s replica is at
    /// or past `lsn` (what read_consistent decides with).
    void wait_replay_known(const std::string& region, std::uint64_t lsn) const;
    std::string log() const { return process_->log(); }
    std::uint64_t counter(const std::string& name) const;

    /// `regionctl --socket SOCKET query --json ARGS...`.
    Answer query(const std::vector<std::string>& args) const;
    Answer write(const std::string& sql, const std::vector<std::string>& params = {}) const;
    Answer read_consistent(const std::string& token, const std::string& sql,
                           const std::vector<std::string>& params = {}) const;

private:
    std::string region_;
    DaemonSetup setup_;
    std::unique_ptr<RegiondProcess> process_;
};

/// Superuser session straight to a region's server (no WAN link).
PgSession superuser(const std::string& region);
/// The replica's pg_last_wal_replay_lsn().
std::uint64_t replica_replay_lsn(const std::string& region);
/// The primary's pg_current_wal_insert_lsn().
std::uint64_t primary_lsn();
/// Waits until the replica of `region` has replayed up to `lsn`.
void wait_replayed(const std::string& region, std::uint64_t lsn);
/// Waits until the replica of `region` streams from the primary again.
void wait_streaming(const std::string& region);

/// pg_wal_replay_pause() on a replica for the guard's lifetime; resumed (and
/// the pause confirmed gone) even when the test fails half way.
class ReplayPause {
public:
    explicit ReplayPause(std::string region);
    ~ReplayPause();
    ReplayPause(const ReplayPause&) = delete;
    ReplayPause& operator=(const ReplayPause&) = delete;
    void resume();

private:
    std::string region_;
    bool paused_ = false;
};

/// `pg_ctl restart -m immediate` of a replica as the postgres user (a crash and
/// restart: it comes back from what it has on disk). Returns pg_ctl's run.
isolation::Command restart_replica(const std::string& region);
/// recovery_min_apply_delay on a replica, set with ALTER SYSTEM (taking effect
/// at its next restart or reload) and reset and reloaded at the end even when
/// the test fails. After an immediate restart such a replica comes back with
/// its replay LSN behind where it was: commits younger than the delay that it
/// had replayed before are replayed again only once they are old enough.
class ApplyDelay {
public:
    ApplyDelay(std::string region, const std::string& delay);
    ~ApplyDelay();
    ApplyDelay(const ApplyDelay&) = delete;
    ApplyDelay& operator=(const ApplyDelay&) = delete;
    void reset();

private:
    std::string region_;
    bool set_ = false;
};

/// Starts the replica when it is not running (a test that failed mid-restart).
void ensure_replica_running(const std::string& region);

/// The application table: one row per key, a value and a version.
inline const char* const kTable = "rgd_consistency_it";
/// Creates it (once) and waits until both replicas have it.
void ensure_table();

}  // namespace regiond::testing::consistency

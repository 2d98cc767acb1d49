// What `status`, `status json` and `metrics` on the admin socket show: a snapshot
// the daemon takes of itself, and the pure functions that format it (unit-tested).
// Only display names appear here, never a conninfo string or a Redis URL.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "daemon/pg/endpoint.hpp"
#include "daemon/stats.hpp"
#include "shm/state_layout.hpp"

namespace regiond::daemon {

struct EndpointReport {
    std::string region;
    std::string endpoint;  ///< display name, "host:port"
    pg::Role role = pg::Role::replica;
    bool healthy = false;
    std::uint64_t lag_ms = 0;
    std::uint64_t lag_bytes = 0;
    std::uint32_t rtt_us = 0;
    std::uint64_t replay_lsn = 0;
    double replay_rate = 0;  ///< replica: bytes replayed per second, smoothed
    std::uint32_t pool_in_use = 0;
    std::uint32_t pool_size = 0;
    bool cache_healthy = false;  ///< the region's Redis
    bool alert = false;          ///< lag past alert_after
    std::string last_error;      ///< safe to show
};

struct CacheReport {
    std::string region;
    bool healthy = false;
    std::uint32_t rtt_us = 0;
    std::string last_error;
};

/// This host's hot cache and whether it is vouched for (CacheService).
struct HotCacheReport {
    std::uint64_t capacity = 0;  ///< bytes of the value arena (cache.memory)
    std::uint64_t bytes_used = 0;
    std::uint64_t entries = 0;
    bool vouched = false;
    std::string not_vouched;  ///< why not, when !vouched
    std::uint64_t fences = 0;
    std::uint64_t fence_floor = 0;  ///< the global floor LSN
};

/// Host-wide waiting (shm/wait_policy.hpp): the last decision and its inputs,
/// as published in the state segment.
using WaitingReport = shm::WaitFacts;

struct StatusSnapshot {
    std::string region;
    pid_t pid = 0;
    std::uint64_t generation = 0;
    std::string state_segment;  ///< the name in use (NAME.XXXXXXXX when the configured one was squatted)
    std::uint64_t uptime_s = 0;
    std::size_t clients = 0;
    std::size_t in_flight = 0;        ///< requests taken from the rings whose work has not ended
    std::size_t orphaned = 0;         ///< of those, requests of clients that went away (cancelled, not yet ended)
    std::uint64_t backlog_bytes = 0;  ///< responses queued beyond the rings, all clients (daemon.max_backlog)
    bool draining = false;
    std::chrono::nanoseconds alert_after{};
    std::chrono::nanoseconds max_lag{};
    std::vector<EndpointReport> endpoints;
    std::vector<CacheReport> caches;  ///< one per region
    HotCacheReport hot_cache;
    WaitingReport waiting;
    std::vector<std::pair<std::string, std::uint64_t>> counters;  ///< name, value (Stats order)
    WaitHistogram consistent_wait;                                ///< read_consistent waits for the replica
};

const char* role_name(pg::Role role) noexcept;

/// `status`: a header line, the endpoint table, then the alerts.
std::string format_status_text(const StatusSnapshot& status);
/// `status json`: one JSON object on one line.
std::string format_status_json(const StatusSnapshot& status);
/// `metrics`: Prometheus text exposition format 0.0.4.
std::string format_metrics(const StatusSnapshot& status);

}  // namespace regiond::daemon

// Where a request goes (DESIGN.md "Consistency", API.md). Pure: a function of the
// endpoints' health snapshot and the settings, unit-tested without servers.
//
// read_local:   1. this region's healthy replicas, lowest RTT first;
//               2. this region's primary, if the primary is here (us-east-1: reads
//                  are local to the primary);
//               3. healthy replicas of other regions, lowest measured RTT first;
//               4. the primary last.
//               A replica that is down or lags past lag.max_lag gets no reads.
// read_primary, write: the primary, if healthy.
//
// When nothing qualifies only because an endpoint has no verdict yet, the route
// says so (awaiting_verdict) and the request waits for that verdict, up to its
// deadline, instead of failing.
//
// The result is the ordered list of candidates: the first is used, the second is
// where a read that failed on an endpoint fault is retried (once). When nothing
// qualifies the error names every endpoint and why it was passed over, e.g.
//   no healthy endpoint for reads in eu-west-1 (replica lag 7.2s > max_lag 5s;
//   primary unreachable)
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "daemon/pg/endpoint.hpp"

namespace regiond::daemon {

/// What routing needs to know of one endpoint.
struct EndpointState {
    std::string region;
    std::string name;  ///< display name ("host:port"), used when a region has several replicas
    pg::Role role = pg::Role::replica;
    bool healthy = false;
    bool checked = false;  ///< false until the first probe finished (no verdict yet)
    std::uint64_t lag_ms = 0;
    std::uint32_t rtt_us = 0;
    std::uint64_t replay_lsn = 0;         ///< replica: last polled replay LSN (a lower bound of the current one)
    double replay_rate = 0;               ///< replica: bytes replayed per second, smoothed; 0 unknown
    std::uint64_t lag_bytes = 0;          ///< replica: the primary's last known LSN - replay LSN
    std::uint64_t system_identifier = 0;  ///< 0 until the endpoint has connected once
};

enum class RouteKind : std::uint8_t { read_local, read_primary, write };

struct RoutingSettings {
    std::string local_region;
    std::chrono::nanoseconds max_lag{std::chrono::seconds(5)};
};

struct Route {
    std::vector<std::size_t> candidates;  ///< indices into the endpoint list, best first
    std::string error;                    ///< set when candidates is empty
    /// Why the first candidate (rgd_route_reason), e.g. "local replica",
    /// "replica lag 7.2s > max_lag 5s; nearest healthy: ap-northeast-1 replica (rtt 221ms)".
    std::string reason;
    /// No candidate now, but an endpoint that could be one has no verdict yet
    /// (the daemon just started or the endpoint was just added): worth waiting
    /// for its first probe rather than failing a request in the daemon's first
    /// milliseconds.
    bool awaiting_verdict = false;
    bool ok() const noexcept { return !candidates.empty(); }
};

/// `exclude`: endpoints already tried for this request (a retry).
Route plan_route(RouteKind kind, std::span<const EndpointState> endpoints, const RoutingSettings& settings,
                 std::span<const std::size_t> exclude = {});

}  // namespace regiond::daemon

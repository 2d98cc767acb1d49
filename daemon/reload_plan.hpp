// SIGHUP: what a new configuration file changes, and what of it can be applied
// without a restart. Pure: unit-tested.
//
// Applied at once: daemon.max_clients, max_request, request_timeout,
// drain_timeout, allowed_uids (connected clients it no longer admits are
// dropped), max_in_flight_per_client, max_result, max_backlog (to requests
// received from then on), max_request_timeout; cache.default_ttl;
// consistency.max_wait; lag.max_lag, lag.alert_after; health.* (to the Redis
// checks; the PostgreSQL endpoints' probes keep their settings until a restart,
// the backend contract has no way to change them live).
// Needs a restart: daemon.region, socket, admin_socket, state_segment,
// client_group, ring_size (responses are chunked to the rings made at start);
// cache.memory; lag.poll_interval; anything under [[regions]].
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace regiond::daemon {

struct ReloadPlan {
    config::Config effective;               ///< the running config with the live changes applied
    std::vector<std::string> applied;       ///< keys changed and applied now
    std::vector<std::string> need_restart;  ///< keys changed that only a restart applies (kept as they were)
    std::vector<std::string> notes;         ///< partial applications, one sentence each
};

ReloadPlan plan_reload(const config::Config& running, const config::Config& next);

}  // namespace regiond::daemon

#include "daemon/reload_plan.hpp"

namespace regiond::daemon {
namespace {

// Copies `next` into `target` (a field of the effective config) and records the
// key when the value differs.
template <class T>
void live(T& target, const T& next, const char* key, ReloadPlan& plan) {
    if (target == next) return;
    target = next;
    plan.applied.emplace_back(key);
}

template <class T>
void restart_only(const T& running, const T& next, std::string key, ReloadPlan& plan) {
    if (!(running == next)) plan.need_restart.push_back(std::move(key));
}

void compare_regions(const config::Config& running, const config::Config& next, ReloadPlan& plan) {
    if (running.regions.size() != next.regions.size()) {
        plan.need_restart.emplace_back("regions");
        return;
    }
    for (std::size_t i = 0; i < running.regions.size(); ++i) {
        const config::Region& a = running.regions[i];
        const config::Region& b = next.regions[i];
        const std::string prefix = "regions[" + std::to_string(i) + "].";
        restart_only(a.name, b.name, prefix + "name", plan);
        // conninfo strings and URLs may hold passwords: only their keys are named.
        restart_only(a.primary, b.primary, prefix + "primary", plan);
        restart_only(a.replicas, b.replicas, prefix + "replicas", plan);
        restart_only(a.redis, b.redis, prefix + "redis", plan);
        restart_only(a.pool_size, b.pool_size, prefix + "pool_size", plan);
    }
}

}  // namespace

ReloadPlan plan_reload(const config::Config& running, const config::Config& next) {
    ReloadPlan plan;
    plan.effective = running;
    config::Config& e = plan.effective;

    restart_only(running.daemon.region, next.daemon.region, "daemon.region", plan);
    restart_only(running.daemon.socket, next.daemon.socket, "daemon.socket", plan);
    restart_only(running.daemon.admin_socket, next.daemon.admin_socket, "daemon.admin_socket", plan);
    restart_only(running.daemon.state_segment, next.daemon.state_segment, "daemon.state_segment", plan);
    restart_only(running.daemon.client_group, next.daemon.client_group, "daemon.client_group", plan);
    live(e.daemon.allowed_uids, next.daemon.allowed_uids, "daemon.allowed_uids", plan);
    // The name and the gid it resolves to now (a group recreated under the same name
    // gets a new gid): both or neither.
    if (e.daemon.admin_group != next.daemon.admin_group || e.daemon.admin_gid != next.daemon.admin_gid) {
        e.daemon.admin_group = next.daemon.admin_group;
        e.daemon.admin_gid = next.daemon.admin_gid;
        plan.applied.emplace_back("daemon.admin_group");
    }
    live(e.daemon.max_clients, next.daemon.max_clients, "daemon.max_clients", plan);
    live(e.daemon.max_request, next.daemon.max_request, "daemon.max_request", plan);
    live(e.daemon.request_timeout, next.daemon.request_timeout, "daemon.request_timeout", plan);
    live(e.daemon.drain_timeout, next.daemon.drain_timeout, "daemon.drain_timeout", plan);
    live(e.daemon.max_in_flight_per_client, next.daemon.max_in_flight_per_client, "daemon.max_in_flight_per_client",
         plan);
    live(e.daemon.max_result, next.daemon.max_result, "daemon.max_result", plan);
    live(e.daemon.max_backlog, next.daemon.max_backlog, "daemon.max_backlog", plan);
    live(e.daemon.max_request_timeout, next.daemon.max_request_timeout, "daemon.max_request_timeout", plan);
    // The backends chunk responses to fit the rings made at start.
    restart_only(running.daemon.ring_size, next.daemon.ring_size, "daemon.ring_size", plan);

    restart_only(running.cache.memory, next.cache.memory, "cache.memory", plan);
    live(e.cache.default_ttl, next.cache.default_ttl, "cache.default_ttl", plan);
    live(e.consistency.max_wait, next.consistency.max_wait, "consistency.max_wait", plan);

    restart_only(running.lag.poll_interval, next.lag.poll_interval, "lag.poll_interval", plan);
    live(e.lag.max_lag, next.lag.max_lag, "lag.max_lag", plan);
    live(e.lag.alert_after, next.lag.alert_after, "lag.alert_after", plan);

    // Redis checks and PostgreSQL endpoints alike (Backends::update_health).
    live(e.health.down_after, next.health.down_after, "health.down_after", plan);
    live(e.health.up_after, next.health.up_after, "health.up_after", plan);
    live(e.health.connect_timeout, next.health.connect_timeout, "health.connect_timeout", plan);
    live(e.health.check_interval, next.health.check_interval, "health.check_interval", plan);

    compare_regions(running, next, plan);
    return plan;
}

}  // namespace regiond::daemon

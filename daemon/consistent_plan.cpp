#include "daemon/consistent_plan.hpp"

#include <algorithm>
#include <vector>

#include "daemon/text.hpp"
#include "shm/base/lsn.hpp"

namespace regiond::daemon {
namespace {

using std::chrono::nanoseconds;

bool excluded(std::span<const std::size_t> exclude, std::size_t i) {
    return std::find(exclude.begin(), exclude.end(), i) != exclude.end();
}

bool lag_ok(const EndpointState& e, const RoutingSettings& settings) {
    return static_cast<std::int64_t>(e.lag_ms) <=
           std::chrono::duration_cast<std::chrono::milliseconds>(settings.max_lag).count();
}

std::string rtt_text(const EndpointState& e) {
    return "rtt " + format_duration(std::chrono::microseconds(e.rtt_us));
}

std::string at_vs_token(const EndpointState& e, std::uint64_t token) {
    return "at " + base::format_lsn(e.replay_lsn) + (e.replay_lsn >= token ? " >= " : " < ") + "token " +
           base::format_lsn(token);
}

}  // namespace

bool replaying(const EndpointState& replica) {
    // Behind the primary's known position with nothing replayed lately: paused
    // or stuck (a long query holding replay back, say), not about to catch up.
    return replica.replay_rate > 0 || replica.lag_bytes == 0;
}

nanoseconds predicted_catch_up(const EndpointState& replica, std::uint64_t lsn) {
    if (replica.replay_lsn >= lsn) return nanoseconds{0};
    if (!replaying(replica)) return nanoseconds::max();
    if (replica.replay_rate > 0) {
        const double seconds = static_cast<double>(lsn - replica.replay_lsn) / replica.replay_rate;
        return std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(std::min(seconds, 3600.0)));
    }
    return std::chrono::milliseconds(replica.lag_ms);
}

ConsistentDecision plan_consistent_read(std::span<const EndpointState> endpoints, const RoutingSettings& settings,
                                        const ConsistentQuery& query, std::span<const std::size_t> exclude) {
    const std::uint64_t token = query.token_lsn;
    std::vector<std::size_t> local_replicas, remote_replicas;
    std::optional<std::size_t> primary;
    std::string local_out;  // why no local replica could answer at once
    bool any_local_replica = false;
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        const EndpointState& e = endpoints[i];
        if (e.role == pg::Role::primary) {
            if (e.healthy && !excluded(exclude, i)) primary = i;
            continue;
        }
        const bool local = e.region == settings.local_region;
        any_local_replica = any_local_replica || local;
        std::string out;
        if (excluded(exclude, i))
            out = "was behind the token when the read ran";
        else if (!e.healthy)
            out = e.checked ? "unreachable" : "not checked yet";
        else if (!lag_ok(e, settings))
            out = "lag " + format_duration_ms(e.lag_ms) + " > max_lag " + format_duration(settings.max_lag);
        if (!out.empty()) {
            if (local) local_out += (local_out.empty() ? "" : "; ") + std::string("local replica ") + out;
            continue;
        }
        (local ? local_replicas : remote_replicas).push_back(i);
    }
    auto by_rtt = [&](std::size_t a, std::size_t b) { return endpoints[a].rtt_us < endpoints[b].rtt_us; };
    std::stable_sort(local_replicas.begin(), local_replicas.end(), by_rtt);
    std::stable_sort(remote_replicas.begin(), remote_replicas.end(), by_rtt);

    ConsistentDecision d;
    // 1. A local replica that has the token's write.
    for (const std::size_t i : local_replicas) {
        if (endpoints[i].replay_lsn < token) continue;
        d.action = ConsistentAction::read;
        d.endpoint = i;
        d.min_lsn = token;
        if (query.has_waited) {
            d.kind = ConsistentKind::local_after_wait;
            d.reason = "waited " + format_duration(query.waited) + " for the local replica (" +
                       at_vs_token(endpoints[i], token) + ")";
        } else {
            d.kind = ConsistentKind::local;
            d.reason = "local replica " + at_vs_token(endpoints[i], token);
        }
        return d;
    }
    // In the primary's region the primary is local.
    if (primary && endpoints[*primary].region == settings.local_region) {
        d.action = ConsistentAction::read;
        d.endpoint = *primary;
        d.kind = ConsistentKind::local;
        d.reason = "local primary";
        return d;
    }
    // 2. Wait for the nearest local replica when that is predicted to be cheaper.
    if (!local_replicas.empty()) {
        const std::size_t i = local_replicas.front();
        const nanoseconds predicted = predicted_catch_up(endpoints[i], token);
        const nanoseconds budget = primary ? query.wait_budget : query.deadline_budget;
        const bool sooner_than_primary = !primary || predicted < std::chrono::microseconds(endpoints[*primary].rtt_us);
        // The polled replay LSN is up to a poll interval old, and a write's WAL
        // reaches the local replica about when the write's answer reaches this
        // host: measured, the replica already had it in ~98 % of reads right
        // after the write while the stale sample said it was behind. So before
        // judging by a sample older than the request, look once more: one
        // local round trip (the LSN watch polls back to back).
        const bool worth_a_look = !query.fresh_sample && replaying(endpoints[i]) &&
                                  (!primary || endpoints[i].rtt_us < endpoints[*primary].rtt_us);
        if (budget > nanoseconds{0} && worth_a_look) {
            d.action = ConsistentAction::wait;
            d.endpoint = i;
            d.wait_for = budget;
            d.recheck = true;
            d.reason = "local replica " + at_vs_token(endpoints[i], token) + " when last polled: looking again";
            return d;
        }
        if (budget > nanoseconds{0} && predicted <= budget && sooner_than_primary) {
            d.action = ConsistentAction::wait;
            d.endpoint = i;
            d.wait_for = budget;
            d.reason = "local replica " + at_vs_token(endpoints[i], token) + ", predicted catch-up " +
                       format_duration(predicted);
            return d;
        }
        local_out += (local_out.empty() ? "" : "; ") + std::string("local replica ") + at_vs_token(endpoints[i], token);
        if (query.has_waited)
            local_out += " after waiting " + format_duration(query.waited);
        else if (!replaying(endpoints[i]))
            local_out += ", not replaying (" + std::to_string(endpoints[i].lag_bytes) + " bytes behind the primary)";
        else if (budget > nanoseconds{0} && predicted > budget)
            local_out += ", predicted catch-up " + format_duration(predicted) + " > " +
                         (primary ? "max_wait" : "the request's deadline");
        else if (!sooner_than_primary)
            local_out += ", predicted catch-up " + format_duration(predicted) + " > the primary's " +
                         rtt_text(endpoints[*primary]);
    } else if (!any_local_replica) {
        local_out = "no replica in " + settings.local_region;
    }
    // 3. The nearest replica elsewhere that has the write, if nearer than the primary.
    for (const std::size_t i : remote_replicas) {
        const EndpointState& e = endpoints[i];
        if (e.replay_lsn < token) continue;
        if (primary && e.rtt_us >= endpoints[*primary].rtt_us) break;  // sorted: the rest are farther
        d.action = ConsistentAction::read;
        d.endpoint = i;
        d.min_lsn = token;
        d.kind = ConsistentKind::elsewhere;
        d.reason = local_out + "; " + e.region + " replica " + at_vs_token(e, token) + " (" + rtt_text(e) + ")";
        return d;
    }
    // 4. The primary.
    if (primary) {
        d.action = ConsistentAction::read;
        d.endpoint = *primary;
        d.kind = ConsistentKind::primary;
        d.reason = local_out + "; primary";
        return d;
    }
    d.action = ConsistentAction::fail;
    d.error = "no endpoint has reached token " + base::format_lsn(token) + " (" + local_out + "; primary unreachable)";
    return d;
}

}  // namespace regiond::daemon

#include "daemon/routing.hpp"

#include <algorithm>

#include "daemon/text.hpp"

namespace regiond::daemon {
namespace {

bool contains(std::span<const std::size_t> set, std::size_t value) {
    return std::find(set.begin(), set.end(), value) != set.end();
}

std::uint64_t max_lag_ms(const RoutingSettings& settings) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(settings.max_lag).count();
    return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

// Why an endpoint gets no reads; "" when it may have them.
std::string read_refusal(const EndpointState& e, const RoutingSettings& settings) {
    if (!e.healthy) return e.checked ? "unreachable" : "not checked yet";
    if (e.role == pg::Role::replica && e.lag_ms > max_lag_ms(settings))
        return "lag " + format_duration_ms(e.lag_ms) + " > max_lag " + format_duration(settings.max_lag);
    return {};
}

// How an endpoint is named in an error: "replica" for this region's only
// replica, "replica HOST:PORT" when the region has several, "REGION replica" for
// other regions, "primary" for the primary.
std::string label(const EndpointState& e, std::span<const EndpointState> all, const RoutingSettings& settings) {
    if (e.role == pg::Role::primary) return "primary";
    const auto replicas_in_region = std::count_if(all.begin(), all.end(), [&](const EndpointState& o) {
        return o.role == pg::Role::replica && o.region == e.region;
    });
    std::string text = e.region == settings.local_region ? "replica" : e.region + " replica";
    if (replicas_in_region > 1) text += " " + e.name;
    return text;
}

void sort_by_rtt(std::vector<std::size_t>& indices, std::span<const EndpointState> endpoints) {
    std::stable_sort(indices.begin(), indices.end(),
                     [&](std::size_t a, std::size_t b) { return endpoints[a].rtt_us < endpoints[b].rtt_us; });
}

Route route_reads(std::span<const EndpointState> endpoints, const RoutingSettings& settings,
                  std::span<const std::size_t> exclude) {
    // Candidates and refusal reasons in the same order: this region's replicas,
    // this region's primary, other regions' replicas, a remote primary.
    enum Bucket { local_replica, local_primary, remote_replica, remote_primary, kBuckets };
    std::vector<std::size_t> candidates[kBuckets];
    std::vector<std::string> reasons[kBuckets];
    bool unchecked = false;
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        const EndpointState& e = endpoints[i];
        if (contains(exclude, i)) continue;
        const bool local = e.region == settings.local_region;
        const Bucket bucket = e.role == pg::Role::primary ? (local ? local_primary : remote_primary)
                                                          : (local ? local_replica : remote_replica);
        if (const std::string refusal = read_refusal(e, settings); !refusal.empty()) {
            reasons[bucket].push_back(label(e, endpoints, settings) + " " + refusal);
            unchecked = unchecked || !e.checked;
        } else
            candidates[bucket].push_back(i);
    }
    sort_by_rtt(candidates[local_replica], endpoints);
    sort_by_rtt(candidates[remote_replica], endpoints);

    Route route;
    std::string why;
    for (int b = 0; b < kBuckets; ++b) {
        route.candidates.insert(route.candidates.end(), candidates[b].begin(), candidates[b].end());
        for (const std::string& reason : reasons[b]) why += (why.empty() ? "" : "; ") + reason;
    }
    if (!route.candidates.empty()) {
        const std::size_t first = route.candidates.front();
        const EndpointState& e = endpoints[first];
        if (e.region == settings.local_region) {
            route.reason = "local " + label(e, endpoints, settings);
        } else {
            std::string local_out;
            for (const std::string& reason : reasons[local_replica])
                local_out += (local_out.empty() ? "" : "; ") + reason;
            if (local_out.empty() && candidates[local_replica].empty())
                local_out = "no replica in " + settings.local_region;
            route.reason = local_out + "; nearest healthy: " + (e.role == pg::Role::primary ? e.region + " " : "") +
                           label(e, endpoints, settings) + " (rtt " +
                           format_duration(std::chrono::microseconds(e.rtt_us)) + ")";
        }
    }
    if (route.candidates.empty()) {
        route.awaiting_verdict = unchecked;
        route.error = "no healthy endpoint for reads in " + settings.local_region;
        if (!why.empty())
            route.error += " (" + why + ")";
        else if (endpoints.empty())
            route.error += " (no endpoints configured)";
    }
    return route;
}

Route route_primary(RouteKind kind, std::span<const EndpointState> endpoints, std::span<const std::size_t> exclude) {
    const char* what = kind == RouteKind::write ? "writes" : "read_primary";
    Route route;
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        const EndpointState& e = endpoints[i];
        if (e.role != pg::Role::primary || contains(exclude, i)) continue;
        if (e.healthy) {
            route.candidates.push_back(i);
            route.reason = "primary";
            return route;
        }
        route.awaiting_verdict = !e.checked;
        route.error = std::string("no healthy primary for ") + what + " (primary " + e.region + " " + e.name +
                      (e.checked ? " unreachable)" : " not checked yet)");
        return route;
    }
    route.error = std::string("no primary for ") + what + " (no region has a primary configured)";
    return route;
}

}  // namespace

Route plan_route(RouteKind kind, std::span<const EndpointState> endpoints, const RoutingSettings& settings,
                 std::span<const std::size_t> exclude) {
    if (kind == RouteKind::read_local) return route_reads(endpoints, settings, exclude);
    return route_primary(kind, endpoints, exclude);
}

}  // namespace regiond::daemon

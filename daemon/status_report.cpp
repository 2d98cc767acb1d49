#include "daemon/status_report.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "daemon/text.hpp"
#include "shm/base/lsn.hpp"

namespace regiond::daemon {
namespace {

std::string rtt_ms_text(std::uint32_t rtt_us) {
    return format_decimal(rtt_us, 3);
}

std::string uptime_text(std::uint64_t seconds) {
    const std::uint64_t days = seconds / 86400, hours = seconds / 3600 % 24, minutes = seconds / 60 % 60,
                        secs = seconds % 60;
    std::string text;
    if (days != 0) text += std::to_string(days) + "d";
    if (days != 0 || hours != 0) text += std::to_string(hours) + "h";
    if (days != 0 || hours != 0 || minutes != 0) text += std::to_string(minutes) + "m";
    text += std::to_string(secs) + "s";
    return text;
}

// A left-aligned text table with two spaces between columns.
std::string render_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) {
            if (widths.size() <= c) widths.push_back(0);
            widths[c] = std::max(widths[c], row[c].size());
        }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            line += row[c];
            if (c + 1 < row.size()) line.append(widths[c] - row[c].size() + 2, ' ');
        }
        out += line;
        out += '\n';
    }
    return out;
}

std::string endpoint_label(const EndpointReport& e) {
    return e.region + " " + role_name(e.role) + " " + e.endpoint;
}

void append_json_string(std::string& out, std::string_view key, std::string_view value) {
    out += '"';
    out += key;
    out += "\":\"";
    out += json_escape(value);
    out += '"';
}

void append_json_raw(std::string& out, std::string_view key, std::string_view value) {
    out += '"';
    out += key;
    out += "\":";
    out += value;
}

// One metric family: HELP, TYPE, then its samples.
class Family {
public:
    Family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
        : out_(out), name_(name) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void sample(std::string_view labels, std::string_view value, std::string_view suffix = "") {
        out_ += name_;
        out_ += suffix;
        if (!labels.empty()) {
            out_ += '{';
            out_ += labels;
            out_ += '}';
        }
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }

private:
    std::string& out_;
    std::string_view name_;
};

std::string endpoint_labels(const EndpointReport& e) {
    return "region=\"" + prometheus_label_escape(e.region) + "\",endpoint=\"" + prometheus_label_escape(e.endpoint) +
           "\",role=\"" + role_name(e.role) + "\"";
}

std::uint64_t counter_value(const StatusSnapshot& s, std::string_view name) {
    for (const auto& [n, v] : s.counters)
        if (n == name) return v;
    return 0;
}

}  // namespace

const char* role_name(pg::Role role) noexcept {
    return role == pg::Role::primary ? "primary" : "replica";
}

std::string format_status_text(const StatusSnapshot& s) {
    std::string out = "region " + s.region + "  pid " + std::to_string(s.pid) + "  uptime " + uptime_text(s.uptime_s) +
                      "  generation " + std::to_string(s.generation) + "  clients " + std::to_string(s.clients) +
                      "  in flight " + std::to_string(s.in_flight) + "  orphaned " + std::to_string(s.orphaned) +
                      "  backlog " + format_size(s.backlog_bytes);
    if (s.draining) out += "  DRAINING (shutting down)";
    out += '\n';
    // Clients map the segment by the name the daemon uses, which differs from the
    // configured one when that was squatted: say which.
    if (!s.state_segment.empty()) out += "state segment " + s.state_segment + "\n";
    out += '\n';

    std::vector<std::vector<std::string>> rows;
    rows.push_back({"REGION", "ENDPOINT", "ROLE", "HEALTHY", "LAG_MS", "LAG_BYTES", "REPLAY_LSN", "RTT_MS", "POOL",
                    "CACHE", "ALERT"});
    for (const EndpointReport& e : s.endpoints) {
        const bool replica = e.role == pg::Role::replica;
        rows.push_back({e.region, e.endpoint, role_name(e.role), e.healthy ? "yes" : "no",
                        replica ? std::to_string(e.lag_ms) : "-", replica ? std::to_string(e.lag_bytes) : "-",
                        replica && e.replay_lsn != 0 ? base::format_lsn(e.replay_lsn) : "-",
                        e.healthy ? rtt_ms_text(e.rtt_us) : "-",
                        std::to_string(e.pool_in_use) + "/" + std::to_string(e.pool_size),
                        e.cache_healthy ? "up" : "down", e.alert ? "LAG" : "-"});
    }
    out += render_table(rows);

    const HotCacheReport& h = s.hot_cache;
    out += "\nhot cache " + format_size(h.bytes_used) + " of " + format_size(h.capacity) + " used, " +
           std::to_string(h.entries) + " entries; hits local " + std::to_string(counter_value(s, "cache_hits_local")) +
           ", redis " + std::to_string(counter_value(s, "cache_hits_redis")) + "; misses " +
           std::to_string(counter_value(s, "cache_misses")) + " (+" +
           std::to_string(counter_value(s, "cache_misses_coalesced")) + " coalesced); fills " +
           std::to_string(counter_value(s, "cache_fills")) + ", fenced " +
           std::to_string(counter_value(s, "cache_fills_fenced")) + "; invalidations pub/sub " +
           std::to_string(counter_value(s, "invalidations_received_pubsub")) + ", durable " +
           std::to_string(counter_value(s, "invalidations_received_durable")) + "\n";
    out += "hot cache " + std::string(h.vouched ? "vouched for" : "NOT vouched for: " + h.not_vouched) + "\n";
    const WaitingReport& w = s.waiting;
    out += "waiting: " + std::to_string(w.usable_cores) + " usable cores, " + std::to_string(w.busy_cores) + " busy, " +
           std::to_string(w.spare_cores) + " spare; clients spinning " + std::to_string(w.clients_spinning) +
           ", sleeping " + std::to_string(w.clients_sleeping) + ", permits " + std::to_string(w.client_permits) +
           "; daemon " + (w.daemon_may_spin ? "may spin" : "sleeps") + "; wake-ups of clients " +
           std::to_string(counter_value(s, "client_wakeups")) + ", of the daemon " +
           std::to_string(counter_value(s, "daemon_wakeups")) + "\n";

    std::vector<std::string> alerts;
    for (const EndpointReport& e : s.endpoints) {
        if (e.alert)
            alerts.push_back(endpoint_label(e) + ": replication lag " + format_duration_ms(e.lag_ms) +
                             " > alert_after " + format_duration(s.alert_after));
        if (!e.healthy)
            alerts.push_back(endpoint_label(e) + ": down" + (e.last_error.empty() ? "" : " (" + e.last_error + ")"));
    }
    if (!h.vouched) alerts.push_back("hot cache not in use: " + h.not_vouched);
    for (const CacheReport& c : s.caches)
        if (!c.healthy)
            alerts.push_back(c.region + " redis: down" + (c.last_error.empty() ? "" : " (" + c.last_error + ")"));
    if (alerts.empty()) {
        out += "\nalerts: none\n";
    } else {
        out += "\nalerts:\n";
        for (const std::string& a : alerts) out += "  " + a + "\n";
    }
    return out;
}

std::string format_status_json(const StatusSnapshot& s) {
    std::string out = "{";
    append_json_string(out, "region", s.region);
    out += ',';
    append_json_raw(out, "pid", std::to_string(s.pid));
    out += ',';
    append_json_raw(out, "generation", std::to_string(s.generation));
    out += ',';
    append_json_raw(out, "uptime_s", std::to_string(s.uptime_s));
    out += ',';
    append_json_raw(out, "clients", std::to_string(s.clients));
    out += ',';
    append_json_raw(out, "in_flight", std::to_string(s.in_flight));
    out += ',';
    append_json_raw(out, "orphaned", std::to_string(s.orphaned));
    out += ',';
    append_json_raw(out, "backlog_bytes", std::to_string(s.backlog_bytes));
    out += ',';
    append_json_raw(out, "draining", s.draining ? "true" : "false");
    out += ",\"endpoints\":[";
    for (std::size_t i = 0; i < s.endpoints.size(); ++i) {
        const EndpointReport& e = s.endpoints[i];
        if (i != 0) out += ',';
        out += '{';
        append_json_string(out, "region", e.region);
        out += ',';
        append_json_string(out, "endpoint", e.endpoint);
        out += ',';
        append_json_string(out, "role", role_name(e.role));
        out += ',';
        append_json_raw(out, "healthy", e.healthy ? "true" : "false");
        out += ',';
        append_json_raw(out, "lag_ms", std::to_string(e.lag_ms));
        out += ',';
        append_json_raw(out, "lag_bytes", std::to_string(e.lag_bytes));
        out += ',';
        append_json_raw(out, "rtt_ms", rtt_ms_text(e.rtt_us));
        out += ',';
        append_json_string(out, "replay_lsn", base::format_lsn(e.replay_lsn));
        out += ',';
        append_json_raw(out, "pool_in_use", std::to_string(e.pool_in_use));
        out += ',';
        append_json_raw(out, "pool_size", std::to_string(e.pool_size));
        out += ',';
        append_json_raw(out, "cache_healthy", e.cache_healthy ? "true" : "false");
        out += ',';
        append_json_raw(out, "alert", e.alert ? "true" : "false");
        out += ',';
        append_json_string(out, "last_error", e.last_error);
        out += '}';
    }
    out += "],";
    append_json_string(out, "state_segment", s.state_segment);
    out += ",\"hot_cache\":{";
    append_json_raw(out, "capacity_bytes", std::to_string(s.hot_cache.capacity));
    out += ',';
    append_json_raw(out, "used_bytes", std::to_string(s.hot_cache.bytes_used));
    out += ',';
    append_json_raw(out, "entries", std::to_string(s.hot_cache.entries));
    out += ',';
    append_json_raw(out, "vouched", s.hot_cache.vouched ? "true" : "false");
    out += ',';
    append_json_string(out, "not_vouched", s.hot_cache.not_vouched);
    out += ',';
    append_json_raw(out, "fences", std::to_string(s.hot_cache.fences));
    out += ',';
    append_json_string(out, "fence_floor", base::format_lsn(s.hot_cache.fence_floor));
    out += "},\"waiting\":{";
    const WaitingReport& w = s.waiting;
    append_json_raw(out, "usable_cores", std::to_string(w.usable_cores));
    out += ',';
    append_json_raw(out, "busy_cores", std::to_string(w.busy_cores));
    out += ',';
    append_json_raw(out, "spare_cores", std::to_string(w.spare_cores));
    out += ',';
    append_json_raw(out, "runnable", std::to_string(w.runnable));
    out += ',';
    append_json_raw(out, "in_flight_avg",
                    std::to_string(w.in_flight_milli / 1000) + "." + std::to_string(w.in_flight_milli % 1000 / 100));
    out += ',';
    append_json_raw(out, "clients_spinning", std::to_string(w.clients_spinning));
    out += ',';
    append_json_raw(out, "clients_sleeping", std::to_string(w.clients_sleeping));
    out += ',';
    append_json_raw(out, "client_permits", std::to_string(w.client_permits));
    out += ',';
    append_json_raw(out, "daemon_may_spin", w.daemon_may_spin ? "true" : "false");
    out += "},\"counters\":{";
    for (std::size_t i = 0; i < s.counters.size(); ++i) {
        if (i != 0) out += ',';
        append_json_raw(out, json_escape(s.counters[i].first), std::to_string(s.counters[i].second));
    }
    out += "}}\n";
    return out;
}

std::string format_metrics(const StatusSnapshot& s) {
    std::string out;
    {
        Family f(out, "regiond_endpoint_healthy", "gauge", "1 if the endpoint is healthy (after hysteresis), else 0.");
        for (const auto& e : s.endpoints) f.sample(endpoint_labels(e), e.healthy ? "1" : "0");
    }
    {
        Family f(out, "regiond_replication_lag_seconds", "gauge",
                 "Replica lag: age of the oldest primary WAL position not yet replayed (0 when caught up).");
        for (const auto& e : s.endpoints)
            if (e.role == pg::Role::replica) f.sample(endpoint_labels(e), format_decimal(e.lag_ms, 3));
    }
    {
        Family f(out, "regiond_replication_lag_bytes", "gauge",
                 "Replica lag in bytes of WAL (primary LSN - replay LSN).");
        for (const auto& e : s.endpoints)
            if (e.role == pg::Role::replica) f.sample(endpoint_labels(e), std::to_string(e.lag_bytes));
    }
    {
        Family f(out, "regiond_lag_alert", "gauge", "1 while the replica's lag is past lag.alert_after.");
        for (const auto& e : s.endpoints)
            if (e.role == pg::Role::replica) f.sample(endpoint_labels(e), e.alert ? "1" : "0");
    }
    {
        Family f(out, "regiond_endpoint_rtt_seconds", "gauge", "Smoothed round trip of the health probe.");
        for (const auto& e : s.endpoints) f.sample(endpoint_labels(e), format_decimal(e.rtt_us, 6));
    }
    {
        Family f(out, "regiond_pool_in_use", "gauge", "Pool connections busy with a request.");
        for (const auto& e : s.endpoints) f.sample(endpoint_labels(e), std::to_string(e.pool_in_use));
    }
    {
        Family f(out, "regiond_pool_size", "gauge", "Pool connections configured.");
        for (const auto& e : s.endpoints) f.sample(endpoint_labels(e), std::to_string(e.pool_size));
    }
    {
        Family f(out, "regiond_cache_healthy", "gauge", "1 if the region's Redis answers PING, else 0.");
        for (const auto& c : s.caches)
            f.sample("region=\"" + prometheus_label_escape(c.region) + "\"", c.healthy ? "1" : "0");
    }
    {
        Family f(out, "regiond_requests_total", "counter", "Requests received, by operation.");
        static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> ops = {{
            {"read_local", "requests_read_local"},
            {"read_primary", "requests_read_primary"},
            {"write", "requests_write"},
            {"read_consistent", "requests_read_consistent"},
            {"cached_read", "requests_cached_read"},
        }};
        for (const auto& [op, counter] : ops)
            f.sample("op=\"" + std::string(op) + "\"", std::to_string(counter_value(s, counter)));
    }
    {
        Family f(out, "regiond_replay_lsn_bytes", "gauge",
                 "Replica: the replay LSN last polled, as a byte position (pg_last_wal_replay_lsn()).");
        for (const auto& e : s.endpoints)
            if (e.role == pg::Role::replica) f.sample(endpoint_labels(e), std::to_string(e.replay_lsn));
    }
    {
        Family f(out, "regiond_replay_rate_bytes_per_second", "gauge",
                 "Replica: WAL bytes replayed per second, smoothed over about a second.");
        for (const auto& e : s.endpoints)
            if (e.role == pg::Role::replica)
                f.sample(endpoint_labels(e), std::to_string(static_cast<std::uint64_t>(e.replay_rate)));
    }
    {
        Family f(out, "regiond_consistent_reads_total", "counter",
                 "read_consistent answers by where they went: local at once, local after a wait, a replica "
                 "elsewhere, the primary; failed (bad or foreign token, nobody reached it).");
        static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> outcomes = {{
            {"local", "consistent_reads_local"},
            {"waited", "consistent_reads_waited"},
            {"elsewhere", "consistent_reads_elsewhere"},
            {"primary", "consistent_reads_to_primary"},
            {"failed", "consistent_reads_failed"},
        }};
        for (const auto& [outcome, counter] : outcomes)
            f.sample("outcome=\"" + std::string(outcome) + "\"", std::to_string(counter_value(s, counter)));
    }
    {
        Family f(out, "regiond_consistent_wait_seconds", "histogram",
                 "How long read_consistent requests served by the local replica waited for it.");
        const WaitHistogram& h = s.consistent_wait;
        for (std::size_t i = 0; i < WaitHistogram::kBoundsUs.size(); ++i)
            f.sample("le=\"" + format_decimal(WaitHistogram::kBoundsUs[i], 6) + "\"", std::to_string(h.buckets[i]),
                     "_bucket");
        f.sample("le=\"+Inf\"", std::to_string(h.count), "_bucket");
        f.sample("", format_decimal(h.sum_us, 6), "_sum");
        f.sample("", std::to_string(h.count), "_count");
    }
    {
        Family f(out, "regiond_errors_total", "counter", "Requests answered with an error.");
        f.sample("", std::to_string(counter_value(s, "errors")));
    }
    {
        Family f(out, "regiond_timeouts_total", "counter", "Requests that failed because their deadline passed.");
        f.sample("", std::to_string(counter_value(s, "timeouts")));
    }
    {
        Family f(out, "regiond_cache_hits_total", "counter", "Cache hits, by tier.");
        f.sample("tier=\"local\"", std::to_string(counter_value(s, "cache_hits_local")));
        f.sample("tier=\"redis\"", std::to_string(counter_value(s, "cache_hits_redis")));
    }
    {
        Family f(out, "regiond_cache_misses_total", "counter",
                 "Cache misses read from the database: alone, or coalesced into another request's read.");
        f.sample("", std::to_string(counter_value(s, "cache_misses")));
        f.sample("kind=\"coalesced\"", std::to_string(counter_value(s, "cache_misses_coalesced")));
    }
    {
        Family f(out, "regiond_cache_fills_total", "counter",
                 "Values offered to the hot cache: stored, or refused by a fence (older than an invalidation).");
        f.sample("result=\"stored\"", std::to_string(counter_value(s, "cache_fills")));
        f.sample("result=\"fenced\"", std::to_string(counter_value(s, "cache_fills_fenced")));
    }
    {
        Family f(out, "regiond_cache_evictions_total", "counter", "Hot-cache entries overwritten to make room.");
        f.sample("", std::to_string(counter_value(s, "cache_evictions")));
    }
    {
        Family f(out, "regiond_invalidations_received_total", "counter",
                 "Invalidations received, by path: the Redis channel (fast) or rows tailed on the local database "
                 "(durable).");
        f.sample("path=\"pubsub\"", std::to_string(counter_value(s, "invalidations_received_pubsub")));
        f.sample("path=\"durable\"", std::to_string(counter_value(s, "invalidations_received_durable")));
    }
    {
        Family f(out, "regiond_invalidations_applied_total", "counter",
                 "Keys evicted from this host's hot cache by an invalidation.");
        f.sample("", std::to_string(counter_value(s, "invalidations_applied")));
    }
    {
        Family f(out, "regiond_invalidations_sent_total", "counter", "Writes with keys fanned out to every Redis.");
        f.sample("", std::to_string(counter_value(s, "invalidations_sent")));
    }
    {
        Family f(out, "regiond_cache_flushes_total", "counter",
                 "Whole hot-cache flushes (Redis or an invalidation path lost, an admin).");
        f.sample("", std::to_string(counter_value(s, "cache_flushes")));
    }
    {
        Family f(out, "regiond_cache_redis_errors_total", "counter", "Cache-tier Redis commands that failed.");
        f.sample("", std::to_string(counter_value(s, "cache_redis_errors")));
    }
    {
        Family f(out, "regiond_hot_cache_bytes", "gauge", "Hot cache: bytes of values held, and the capacity.");
        f.sample("kind=\"used\"", std::to_string(s.hot_cache.bytes_used));
        f.sample("kind=\"capacity\"", std::to_string(s.hot_cache.capacity));
    }
    {
        Family f(out, "regiond_hot_cache_entries", "gauge", "Hot cache: values held.");
        f.sample("", std::to_string(s.hot_cache.entries));
    }
    {
        Family f(out, "regiond_hot_cache_vouched", "gauge",
                 "1 while the hot cache is in use: subscribed to the invalidation channel and the durable path "
                 "in place.");
        f.sample("", s.hot_cache.vouched ? "1" : "0");
    }
    {
        Family f(out, "regiond_wakeups_total", "counter",
                 "Futex or eventfd wake-ups: of sleeping clients by the daemon (answers), of the sleeping daemon "
                 "by clients (requests). Compare with the requests: fewer is better.");
        f.sample("to=\"client\"", std::to_string(counter_value(s, "client_wakeups")));
        f.sample("to=\"daemon\"", std::to_string(counter_value(s, "daemon_wakeups")));
    }
    {
        Family f(out, "regiond_host_cores", "gauge",
                 "Host-wide waiting: cores usable (affinity, cgroup quota), busy with work that produces answers, "
                 "spare.");
        f.sample("kind=\"usable\"", std::to_string(s.waiting.usable_cores));
        f.sample("kind=\"busy\"", std::to_string(s.waiting.busy_cores));
        f.sample("kind=\"spare\"", std::to_string(s.waiting.spare_cores));
    }
    {
        Family f(out, "regiond_clients_waiting", "gauge", "Clients waiting for an answer now, by how they wait.");
        f.sample("how=\"spinning\"", std::to_string(s.waiting.clients_spinning));
        f.sample("how=\"sleeping\"", std::to_string(s.waiting.clients_sleeping));
    }
    {
        Family f(out, "regiond_spin_permits", "gauge", "Clients allowed to spin for their answers now.");
        f.sample("", std::to_string(s.waiting.client_permits));
    }
    {
        Family f(out, "regiond_clients_connected", "gauge", "Clients connected now.");
        f.sample("", std::to_string(s.clients));
    }
    {
        Family f(out, "regiond_requests_in_flight", "gauge",
                 "Requests taken from the client rings whose work has not ended (daemon.max_in_flight_per_client).");
        f.sample("", std::to_string(s.in_flight));
    }
    {
        Family f(out, "regiond_requests_orphaned", "gauge",
                 "Requests of clients that went away, cancelled on the server and not yet ended.");
        f.sample("", std::to_string(s.orphaned));
    }
    {
        Family f(out, "regiond_response_backlog_bytes", "gauge",
                 "Response bytes queued beyond the client rings, all clients (daemon.max_backlog).");
        f.sample("", std::to_string(s.backlog_bytes));
    }
    {
        Family f(out, "regiond_client_connections_total", "counter", "Client connections accepted since start.");
        f.sample("", std::to_string(counter_value(s, "clients_connected")));
    }
    {
        Family f(out, "regiond_clients_dropped_total", "counter",
                 "Clients dropped for breaking the protocol or not reading their responses.");
        f.sample("", std::to_string(counter_value(s, "clients_dropped")));
    }
    {
        Family f(out, "regiond_draining", "gauge", "1 while the daemon drains after SIGTERM.");
        f.sample("", s.draining ? "1" : "0");
    }
    {
        Family f(out, "regiond_uptime_seconds", "gauge", "Seconds since the daemon started.");
        f.sample("", std::to_string(s.uptime_s));
    }
    return out;
}

}  // namespace regiond::daemon

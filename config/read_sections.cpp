#include "config/read_sections.hpp"

#include <limits>

#include "config/duration.hpp"
#include "config/key_path.hpp"
#include "config/local_names.hpp"
#include "config/quote.hpp"
#include "config/size.hpp"
#include "config/system_group.hpp"

namespace regiond::config::detail {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

std::optional<std::string> power_of_two_problem(std::uint64_t bytes) {
    // The rings index with a mask (head & (size - 1)), so the size is a power of two.
    if ((bytes & (bytes - 1)) == 0) return std::nullopt;
    const std::uint64_t below = std::uint64_t{1} << (63 - __builtin_clzll(bytes));
    return format_size(bytes) + " is not a power of two; use \"" + format_size(below) + "\" or \"" +
           format_size(below * 2) + "\"";
}

std::optional<std::string> group_name_problem(std::string_view name) {
    if (name.empty()) return "must name a group, e.g. \"regiond\"";
    return std::nullopt;
}

// The socket paths must differ: two listeners cannot share one path. Only
// checked when both are valid, and reported at whichever the file sets.
void check_sockets_differ(TableReader& daemon, const DaemonSection& out, bool socket_ok, bool admin_ok) {
    if (!socket_ok || !admin_ok || !same_path(out.socket, out.admin_socket)) return;
    const char* key = "admin_socket";
    const toml::node* node = daemon.find(key);
    if (node == nullptr) {
        key = "socket";
        node = daemon.find(key);
    }
    const std::string message =
        "daemon.socket and daemon.admin_socket must be different paths "
        "(both are " +
        quote(out.socket) + ")";
    if (node != nullptr)
        daemon.sink().error(node->source(), daemon.path_of(key), message);
    else
        daemon.sink().error(daemon.place().where, daemon.path_of(key), message);
}

// The group owns the state segment and admits clients, so it must exist now.
void resolve_client_group(TableReader& daemon, DaemonSection& out, bool group_ok) {
    if (!group_ok) return;
    auto gid = lookup_group(out.client_group);
    if (gid) {
        out.client_gid = gid.value();
        return;
    }
    const toml::node* node = daemon.find("client_group");
    const std::string advice =
        "; create it (groupadd --system " + out.client_group + ") or set daemon.client_group to an existing group";
    if (node != nullptr)
        daemon.sink().error(node->source(), daemon.path_of("client_group"), gid.error() + advice);
    else
        daemon.sink().error(daemon.place().where, daemon.path_of("client_group"),
                            "the default " + gid.error() + advice);
}

// True when `key` is absent (its default is valid) or `read` stored a valid value.
template <class Read>
bool read_or_default(TableReader& table, std::string_view key, Read&& read) {
    return table.find(key) == nullptr || read();
}

// Reports a problem that involves two keys at the first of them the file sets
// (at the table when it sets neither).
void error_at_either(TableReader& table, std::string_view first, std::string_view second, const std::string& message) {
    const toml::node* node = table.find(first);
    std::string_view key = first;
    if (node == nullptr) {
        node = table.find(second);
        key = second;
    }
    if (node == nullptr) {
        table.sink().error(table.place().where, table.path_of(first), message);
        return;
    }
    table.sink().error(node->source(), table.path_of(key), message);
}

std::string set_or_default(TableReader& table, std::string_view key) {
    return table.find(key) == nullptr ? " (the default)" : "";
}

// A request travels in one record of the client's request ring: a larger
// max_request could never be sent.
void check_request_fits_ring(TableReader& daemon, const DaemonSection& out) {
    const std::uint64_t limit = ring_record_limit(out.ring_size);
    if (out.max_request <= limit) return;
    error_at_either(daemon, "max_request", "ring_size",
                    "daemon.max_request " + format_size(out.max_request) + set_or_default(daemon, "max_request") +
                        " does not fit one record of the request ring: with daemon.ring_size " +
                        format_size(out.ring_size) + set_or_default(daemon, "ring_size") +
                        " the largest allowed value is \"" + format_size(limit) +
                        "\" (ring_size / 2 - 16 bytes); lower max_request or raise ring_size");
}

// The default timeout is one a client could ask for, so the cap must allow it.
void check_timeout_within_cap(TableReader& daemon, const DaemonSection& out) {
    if (out.request_timeout <= out.max_request_timeout) return;
    error_at_either(daemon, "max_request_timeout", "request_timeout",
                    "daemon.request_timeout " + format_duration(out.request_timeout) +
                        set_or_default(daemon, "request_timeout") + " is above daemon.max_request_timeout " +
                        format_duration(out.max_request_timeout) + set_or_default(daemon, "max_request_timeout") +
                        "; max_request_timeout must be at least request_timeout");
}

// Optional; when set, the group must exist now (as for client_group).
void read_admin_group(TableReader& daemon, DaemonSection& out) {
    const toml::node* node = daemon.find("admin_group");
    if (node == nullptr || !daemon.string("admin_group", out.admin_group, group_name_problem)) return;
    auto gid = lookup_group(out.admin_group);
    if (gid) {
        out.admin_gid = gid.value();
        return;
    }
    daemon.sink().error(node->source(), daemon.path_of("admin_group"),
                        gid.error() + "; create it (groupadd --system " + out.admin_group +
                            ") and add the admins to it, or remove daemon.admin_group (then only root and "
                            "the daemon's user may run admin commands that change state)");
}

void read_allowed_uids(TableReader& daemon, DaemonSection& out) {
    const toml::node* node = daemon.find("allowed_uids");
    if (node == nullptr) return;
    const std::string path = daemon.path_of("allowed_uids");
    const toml::array* uids = read_array(*node, path, daemon.sink(), "an array of user ids (integers)");
    if (uids == nullptr) return;
    // (uid_t)-1 is "no user" to the kernel, never a real peer.
    constexpr std::int64_t max_uid = std::numeric_limits<uid_t>::max() - 1;
    for (std::size_t i = 0; i < uids->size(); ++i)
        if (auto uid = read_integer(*uids->get(i), indexed_key(path, i), daemon.sink(), 0, max_uid))
            out.allowed_uids.push_back(static_cast<uid_t>(*uid));
}

}  // namespace

TableReader open_section(TableReader& top, std::string_view name) {
    const std::string path = top.path_of(name);
    const toml::node* node = top.find(name);
    if (node == nullptr)
        return TableReader(
            nullptr, {path, top.place().where, " (the file has no [" + path + "] table; add one that sets it)", true},
            top.sink());
    const toml::table* table = read_table(*node, path, top.sink(), "a table (written [" + path + "])");
    if (table == nullptr) return TableReader(nullptr, {path, node->source(), "", false}, top.sink());
    return TableReader(table, {path, node->source(), " from [" + path + "]", true}, top.sink());
}

const toml::node* read_daemon(TableReader& top, DaemonSection& out) {
    TableReader daemon = open_section(top, "daemon");
    const bool region_ok = daemon.required_string("region", out.region);

    const bool socket_ok = daemon.find("socket") == nullptr || daemon.string("socket", out.socket, socket_path_problem);
    const bool admin_ok =
        daemon.find("admin_socket") == nullptr || daemon.string("admin_socket", out.admin_socket, socket_path_problem);
    check_sockets_differ(daemon, out, socket_ok, admin_ok);

    daemon.string("state_segment", out.state_segment, segment_name_problem);

    const bool group_ok =
        daemon.find("client_group") == nullptr || daemon.string("client_group", out.client_group, group_name_problem);
    resolve_client_group(daemon, out, group_ok);
    read_admin_group(daemon, out);
    read_allowed_uids(daemon, out);

    daemon.integer("max_clients", out.max_clients, 1, 65536);
    const bool request_ok = read_or_default(
        daemon, "max_request", [&] { return daemon.size("max_request", out.max_request, 4 * KiB, 1 * GiB); });
    const bool timeout_ok = read_or_default(daemon, "request_timeout", [&] {
        return daemon.duration("request_timeout", out.request_timeout, milliseconds(1), hours(1));
    });
    daemon.duration("drain_timeout", out.drain_timeout, seconds(0), minutes(10));
    const bool ring_ok = read_or_default(daemon, "ring_size", [&] {
        return daemon.size("ring_size", out.ring_size, 64 * KiB, 256 * MiB, power_of_two_problem);
    });
    daemon.integer("max_in_flight_per_client", out.max_in_flight_per_client, 1, 65536);
    daemon.size("max_result", out.max_result, 64 * KiB, 16 * GiB);
    daemon.size("max_backlog", out.max_backlog, 1 * MiB, 64 * GiB);
    const bool max_timeout_ok = read_or_default(daemon, "max_request_timeout", [&] {
        return daemon.duration("max_request_timeout", out.max_request_timeout, milliseconds(1), hours(24));
    });
    if (request_ok && ring_ok) check_request_fits_ring(daemon, out);
    if (timeout_ok && max_timeout_ok) check_timeout_within_cap(daemon, out);

    daemon.finish();
    return region_ok ? daemon.find("region") : nullptr;
}

void read_cache(TableReader& top, CacheSection& out) {
    TableReader cache = open_section(top, "cache");
    cache.size("memory", out.memory, 1 * MiB, 64 * GiB);
    cache.duration("default_ttl", out.default_ttl, seconds(1), hours(24 * 30));
    cache.finish();
}

void read_consistency(TableReader& top, ConsistencySection& out) {
    TableReader consistency = open_section(top, "consistency");
    consistency.duration("max_wait", out.max_wait, seconds(0), seconds(60));
    consistency.finish();
}

void read_lag(TableReader& top, LagSection& out) {
    TableReader lag = open_section(top, "lag");
    lag.duration("poll_interval", out.poll_interval, milliseconds(10), seconds(60));
    lag.duration("max_lag", out.max_lag, milliseconds(1), hours(1));
    lag.duration("alert_after", out.alert_after, milliseconds(1), hours(1));
    lag.finish();
}

void read_health(TableReader& top, HealthSection& out) {
    TableReader health = open_section(top, "health");
    health.integer("down_after", out.down_after, 1, 100);
    health.integer("up_after", out.up_after, 1, 100);
    health.duration("connect_timeout", out.connect_timeout, milliseconds(10), seconds(60));
    health.duration("check_interval", out.check_interval, milliseconds(10), seconds(60));
    health.finish();
}

}  // namespace regiond::config::detail

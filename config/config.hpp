// The typed configuration of one regiond instance, as read from its TOML file.
//
// The defaults below are the documented ones (docs/configuration.md); a Config
// that came out of parse_config_file()/parse_config_string() has also passed
// every check listed there. Durations are std::chrono::nanoseconds, sizes are
// bytes. Several daemons may run on one host, so nothing that two instances
// could collide on (socket paths, segment name) is fixed in code.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::config {

inline constexpr std::uint64_t KiB = 1024;
inline constexpr std::uint64_t MiB = 1024 * KiB;
inline constexpr std::uint64_t GiB = 1024 * MiB;

inline constexpr std::string_view default_config_path = "/etc/regiond/regiond.toml";

struct DaemonSection {
    std::string region;  // required: the region this host is in
    std::string socket = "/run/regiond/regiond.sock";
    std::string admin_socket = "/run/regiond/admin.sock";
    std::string state_segment = "/regiond";
    std::string client_group = "regiond";
    // client_group resolved on this host by the parser; (gid_t)-1 ("leave the
    // group unchanged" to chown) in a Config that was not parsed.
    gid_t client_gid = static_cast<gid_t>(-1);
    std::vector<uid_t> allowed_uids;
    // Who may run admin commands that change state (regionctl cache flush), besides
    // root and the daemon's own user. "" (the default): nobody else.
    std::string admin_group;
    std::optional<gid_t> admin_gid;  // admin_group resolved by the parser

    // Extensions to the contract in API.md.
    std::uint32_t max_clients = 256;
    // At most one record of the request ring: ring_size / 2 - 16 bytes.
    std::uint64_t max_request = 256 * KiB;
    std::chrono::nanoseconds request_timeout = std::chrono::seconds{30};
    std::chrono::nanoseconds drain_timeout = std::chrono::seconds{10};
    std::uint64_t ring_size = 1 * MiB;  // a power of two

    // Resource bounds per client and in total (docs/configuration.md).
    // Requests of one client counted from when the daemon takes them until the
    // server has finished them; also the cap on a uid's orphaned requests.
    std::uint32_t max_in_flight_per_client = 256;
    std::uint64_t max_result = 256 * MiB;   // encoded bytes of one result
    std::uint64_t max_backlog = 256 * MiB;  // response bytes queued beyond the rings, all clients
    std::chrono::nanoseconds max_request_timeout = std::chrono::minutes{5};  // >= request_timeout
};

// The largest request payload one record of a ring of `ring_size` carries
// (shm::ring_max_payload; repeated here so config/ does not depend on shm/).
constexpr std::uint64_t ring_record_limit(std::uint64_t ring_size) noexcept {
    return ring_size / 2 - 16;
}

struct CacheSection {
    std::uint64_t memory = 64 * MiB;
    std::chrono::nanoseconds default_ttl = std::chrono::seconds{60};
};

struct ConsistencySection {
    std::chrono::nanoseconds max_wait = std::chrono::milliseconds{50};
};

struct LagSection {
    std::chrono::nanoseconds poll_interval = std::chrono::milliseconds{100};
    std::chrono::nanoseconds max_lag = std::chrono::seconds{5};
    std::chrono::nanoseconds alert_after = std::chrono::seconds{5};
};

// An extension to the contract in API.md: the health hysteresis.
struct HealthSection {
    std::uint32_t down_after = 3;  // consecutive failures before an endpoint is down
    std::uint32_t up_after = 2;    // consecutive successes before it is up again
    std::chrono::nanoseconds connect_timeout = std::chrono::seconds{2};
    std::chrono::nanoseconds check_interval = std::chrono::milliseconds{500};
};

// conninfo strings and the Redis URL may carry passwords: never log them.
struct Region {
    std::string name;
    std::optional<std::string> primary;  // libpq conninfo or URI; exactly one region has it
    std::vector<std::string> replicas;   // libpq conninfo strings or URIs
    std::string redis;                   // redis://[:password@]host:port[/db] or unix:///path
    std::uint32_t pool_size = 20;

    [[nodiscard]] bool has_primary() const noexcept { return primary.has_value(); }
};

struct Config {
    DaemonSection daemon;
    CacheSection cache;
    ConsistencySection consistency;
    LagSection lag;
    HealthSection health;
    std::vector<Region> regions;
    std::string source_path;  // the file it was read from, for messages

    // nullptr when no region has that name.
    [[nodiscard]] const Region* find_region(std::string_view name) const noexcept;

    // The region named by daemon.region. Precondition: it exists (always true
    // of a parsed Config); otherwise throws std::logic_error.
    [[nodiscard]] const Region& local_region() const;

    // The one region with a primary. Precondition as for local_region().
    [[nodiscard]] const Region& primary_region() const;
};

}  // namespace regiond::config

// rgd_health: one row per in-use endpoint slot of the state segment, each read as
// one consistent snapshot under its seqlock. No message to the daemon.
#include <cstdio>

#include "client.hpp"
#include "shm/base/lsn.hpp"
#include "shm/state_layout.hpp"

namespace regiond::client {

namespace {

const char* role_name(std::uint8_t role) noexcept {
    switch (static_cast<shm::EndpointRole>(role)) {
        case shm::EndpointRole::primary: return "primary";
        case shm::EndpointRole::replica: return "replica";
    }
    return nullptr;
}

std::string rtt_text(std::uint32_t rtt_us) {
    // Milliseconds with microsecond precision: "0.052", "20.513".
    char text[32];
    std::snprintf(text, sizeof text, "%u.%03u", rtt_us / 1000, rtt_us % 1000);
    return text;
}

}  // namespace

ResultPtr health_from(const shm::StateView& state) {
    shm::Response response;
    response.status = shm::Status::ok;
    response.affected = -1;
    // API.md's columns in its order; replay_lsn was added last so that column
    // numbers of existing programs keep their meaning.
    response.columns = {"region",    "endpoint", "role",          "healthy",   "lag_ms",
                        "lag_bytes", "rtt_ms",   "cache_healthy", "replay_lsn"};
    unsigned busy = 0;
    for (std::uint32_t region = 0; region < state.max_regions(); ++region) {
        for (std::uint32_t endpoint = 0; endpoint < state.max_endpoints_per_region(); ++endpoint) {
            shm::EndpointStatus s{};
            if (!state.read_endpoint(region, endpoint, s)) {
                ++busy;  // no stable snapshot (a writer died mid-write?)
                continue;
            }
            if (s.in_use != 1) continue;
            const char* role = role_name(s.role);
            if (role == nullptr) continue;  // not a row the contract can express
            const std::string lag_ms = std::to_string(s.lag_ms);
            const std::string lag_bytes = std::to_string(s.lag_bytes);
            const std::string rtt_ms = rtt_text(s.rtt_us);
            // 0 is what the daemon writes before its first probe answers (no real
            // WAL position is 0/0): unknown, "".
            const std::string replay_lsn = s.replay_lsn == 0 ? std::string() : base::format_lsn(s.replay_lsn);
            const std::optional<std::string_view> row[] = {
                std::string_view(s.region),  // NUL-terminated by read_endpoint
                std::string_view(s.endpoint),
                std::string_view(role),
                std::string_view(s.healthy ? "t" : "f"),
                std::string_view(lag_ms),
                std::string_view(lag_bytes),
                std::string_view(rtt_ms),
                std::string_view(s.cache_healthy ? "t" : "f"),
                std::string_view(replay_lsn),
            };
            response.add_row(row);
        }
    }
    if (busy != 0)  // never silently leave an endpoint out
        return make_error("regiond's state segment is being rewritten continuously (" + std::to_string(busy) +
                          " endpoint entries unreadable): retry");
    return make_result(std::move(response));
}

ResultPtr health(rgd_client& client) {
    const unsigned timeout_ms = client.timeout_ms.load(std::memory_order_relaxed);
    const Deadline deadline =
        timeout_ms == 0 ? Deadline{} : Deadline{Clock::now() + std::chrono::milliseconds(timeout_ms)};
    std::string error;
    const std::shared_ptr<Connection> connection = usable_connection(client, deadline, error);
    if (!connection) return make_error(std::move(error));
    return health_from(connection->state());
}

}  // namespace regiond::client

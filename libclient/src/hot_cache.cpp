#include "hot_cache.hpp"

#include <vector>

#include "shm/cache_answer.hpp"

namespace regiond::client {

ResultPtr hot_cache_hit(rgd_client& client, const shm::RequestView& request) {
    std::string error;
    // The same liveness check every call makes (no system call while the
    // daemon's heartbeat is fresh): a dead daemon's cache is not trusted,
    // since nobody evicts what later writes invalidate.
    const unsigned timeout_ms = client.timeout_ms.load(std::memory_order_relaxed);
    const Deadline deadline =
        timeout_ms == 0 ? Deadline{} : Deadline{Clock::now() + std::chrono::milliseconds(timeout_ms)};
    const std::shared_ptr<Connection> connection = usable_connection(client, deadline, error);
    if (!connection) return nullptr;  // execute() reports why
    std::vector<std::byte> blob;
    if (!connection->cache_lookup(request.key, request.sql, request.params, blob)) return nullptr;
    std::optional<shm::Response> response =
        shm::response_from_cache_value(blob, "cache:local", "cache:local: this host's hot cache");
    if (!response) return nullptr;
    return make_result(std::move(*response));
}

}  // namespace regiond::client

#include "hot_cache.hpp"

#include <vector>

#include "shm/cache_answer.hpp"

namespace regiond::client {

ResultPtr hot_cache_hit(rgd_client& client, const shm::RequestView& request) {
    // The connection as it is: a hit never reconnects (a miss goes through
    // execute(), which does, with the call's deadline). Connection::cache_lookup
    // misses unless the daemon's heartbeat is fresh: a dead daemon's cache is
    // not trusted, since nobody evicts what later writes invalidate.
    std::shared_ptr<Connection> connection;
    {
        std::lock_guard lk(client.connection_mu);
        connection = client.connection;
    }
    if (!connection) return nullptr;
    std::vector<std::byte> blob;
    if (!connection->cache_lookup(request.key, request.sql, request.params, blob)) return nullptr;
    std::optional<shm::Response> response =
        shm::response_from_cache_value(blob, "cache:local", "cache:local: this host's hot cache");
    if (!response) return nullptr;
    return make_result(std::move(*response));
}

}  // namespace regiond::client

#include "daemon/backlog.hpp"

namespace regiond::daemon {

std::optional<BacklogVictim> backlog_victim(std::span<const ClientBacklog> backlogs, std::size_t max_backlog) {
    BacklogVictim v;
    const ClientBacklog* largest = nullptr;
    for (const ClientBacklog& b : backlogs) {
        if (b.bytes == 0) continue;
        v.total += b.bytes;
        ++v.clients;
        if (largest == nullptr || b.bytes > largest->bytes) largest = &b;
    }
    if (v.total <= max_backlog || largest == nullptr) return std::nullopt;
    v.share = max_backlog / v.clients;
    // Over the total, the largest is always above the average, hence above its
    // share; the test stays for the rule's sake.
    if (largest->bytes <= v.share) return std::nullopt;
    v.client = largest->client;
    v.bytes = largest->bytes;
    return v;
}

}  // namespace regiond::daemon

// The response backlog: what the clients have not read yet, beyond their rings
// (OutputQueue). Two bounds (docs/configuration.md, daemon.max_backlog):
//
//  * per client, a window of max(ring_size, 1 MiB): a streaming job pauses
//    (JobCallbacks::partial returns false) while the client's queued bytes
//    exceed it, and resumes when they drop below half of it; the daemon also
//    stops taking the client's requests while it is exceeded;
//  * all clients together, daemon.max_backlog: over it, the client with the
//    largest backlog, if over its share (max_backlog / clients with a
//    backlog), is dropped. Results that are not streamed (buffered whole by the
//    endpoint, bounded by daemon.max_result) can still pass a window; this is
//    what bounds them.
// Pure: unit-tested.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace regiond::daemon {

inline constexpr std::size_t kMinStreamWindow = std::size_t{1} << 20;

constexpr std::size_t stream_window(std::uint32_t ring_size) noexcept {
    return std::max<std::size_t>(ring_size, kMinStreamWindow);
}

struct ClientBacklog {
    std::uint64_t client = 0;
    std::size_t bytes = 0;
};

struct BacklogVictim {
    std::uint64_t client = 0;
    std::size_t bytes = 0;    ///< its backlog
    std::size_t share = 0;    ///< max_backlog / clients
    std::size_t clients = 0;  ///< clients with a backlog
    std::size_t total = 0;
};

/// The client to drop when `backlogs` (one entry per client, zeros allowed)
/// add up to more than `max_backlog`; nullopt when within it.
std::optional<BacklogVictim> backlog_victim(std::span<const ClientBacklog> backlogs, std::size_t max_backlog);

}  // namespace regiond::daemon

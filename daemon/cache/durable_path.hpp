// The durable invalidation path as the cache sees it: something that delivers
// the keys of every invalidation row committed on the primary, as the local
// database replays them, and says when it cannot vouch for that. The real one
// is the InvalidationTailer (daemon/invalidation_tailer.hpp), which needs the
// PostgreSQL backend; the daemon core gets it through a factory, so its unit
// tests run on fake endpoints without one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/event_loop.hpp"
#include "daemon/pg/endpoint.hpp"

namespace regiond::daemon::cache {

class DurablePath {
public:
    struct Hooks {
        /// One row's keys, and an LSN at or past its commit.
        std::function<void(std::vector<std::string> keys, std::uint64_t lsn)> on_invalidation;
        /// It cannot vouch for the rows since its last good poll (why; safe to show).
        std::function<void(std::string reason)> on_gap;
        /// The first complete poll after a gap or the start: rows committed after
        /// `lsn` will be delivered, nothing before it is vouched for.
        std::function<void(std::uint64_t lsn)> on_caught_up;
    };
    virtual ~DurablePath() = default;
    virtual void start() = 0;
    /// Poll now (the fast path lost its subscription).
    virtual void poll_now() = 0;
};

/// Makes the durable path on `endpoint` (the local database); `cleanup`: it
/// also deletes old rows (the primary's region).
using DurablePathFactory = std::function<std::unique_ptr<DurablePath>(
    EventLoop& loop, const pg::EndpointOptions& endpoint, bool cleanup, DurablePath::Hooks hooks)>;

}  // namespace regiond::daemon::cache

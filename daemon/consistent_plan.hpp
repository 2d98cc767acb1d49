// Where a read_consistent goes (API.md, issue 8): never to data older than the
// token's write, and locally whenever that is possible. Pure: a function of the
// endpoints' snapshot, unit-tested without servers (tests/unit/daemon).
//
//   1. a healthy local replica (lag within max_lag) whose replay LSN is at or
//      past the token: read there at once, with Job::min_lsn = the token, so the
//      endpoint checks again on the connection that runs the read (a replica
//      restarted or replaced since the poll cannot answer from behind);
//      in the primary's region, the local primary;
//   2. else, if the replay LSN the plan sees was polled before the request came,
//      look once more (one poll of the local replica, ~a local round trip);
//      then, if that replica is predicted to catch up within the wait budget
//      (max_wait, and sooner than a round trip to the primary): wait for it,
//      released when its polled replay LSN passes the token;
//   3. else the nearest healthy replica elsewhere that has reached the token,
//      when it is nearer than the primary;
//   4. else the primary;
//   5. the primary down too: wait for the local replica up to the request's
//      deadline (the wait budget the caller passes), else an error.
//
// The prediction: (token - replay LSN) / replay rate when the rate is known,
// else the replica's lag in milliseconds (0 when it has caught up with the
// primary's last known position: a token just past it is expected within a
// poll or two).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "daemon/routing.hpp"

namespace regiond::daemon {

enum class ConsistentAction : std::uint8_t { read, wait, fail };

/// How a read_consistent was answered, for the counters.
enum class ConsistentKind : std::uint8_t { local, local_after_wait, elsewhere, primary };

struct ConsistentDecision {
    ConsistentAction action = ConsistentAction::fail;
    std::size_t endpoint = 0;   ///< read: where; wait: the replica waited for
    std::uint64_t min_lsn = 0;  ///< read on a replica: the token's LSN; 0 on the primary
    ConsistentKind kind = ConsistentKind::primary;
    std::string reason;                    ///< read: rgd_route_reason; wait: why it is worth it
    std::string error;                     ///< fail
    std::chrono::nanoseconds wait_for{0};  ///< wait: the budget it may use from now
    /// wait: plan again at the first replay LSN polled after now, even if it is
    /// still below the token (the sample the plan saw predates the request).
    bool recheck = false;
};

struct ConsistentQuery {
    std::uint64_t token_lsn = 0;
    /// How long the request may still wait for a replica while the primary is
    /// there to go to: what is left of consistency.max_wait (0: no waiting).
    std::chrono::nanoseconds wait_budget{0};
    /// How long it may wait when the primary is down: what is left of its deadline.
    std::chrono::nanoseconds deadline_budget{0};
    /// How long it has waited already (for the reason after a wait).
    std::chrono::nanoseconds waited{0};
    bool has_waited = false;
    /// The replicas' replay LSNs were polled after the request arrived.
    bool fresh_sample = false;
};

ConsistentDecision plan_consistent_read(std::span<const EndpointState> endpoints, const RoutingSettings& settings,
                                        const ConsistentQuery& query, std::span<const std::size_t> exclude = {});

/// False when the replica is behind the primary's known position and has
/// replayed nothing lately (paused or stuck): not worth waiting for.
bool replaying(const EndpointState& replica);

/// The predicted time for `replica` to replay up to `lsn` (see above);
/// nanoseconds::max() when it is not replaying.
std::chrono::nanoseconds predicted_catch_up(const EndpointState& replica, std::uint64_t lsn);

}  // namespace regiond::daemon

// read_consistent (API.md, issue 8): never data older than the token's write,
// served locally whenever that is possible. The decision is
// plan_consistent_read() (consistent_plan.hpp); this handler checks the token,
// carries the decision out, and waits: a request that is worth waiting for the
// local replica parks on the dispatcher's LSN waiters (keyed by LSN, released
// by the replica's own replay-LSN polls, which run back to back while anyone
// waits) until max_wait, then goes to the primary.
//
// The check and the read cannot race: a replica read carries Job::min_lsn, and
// the endpoint checks the replay LSN again on the connection that runs the read,
// in the same round trip, before a row is delivered. A replica that restarted
// behind the token (or was replaced) answers Outcome::behind, and the request
// goes to the primary (its one re-send).
//
// An empty token is read_local. A malformed token, or one of another cluster
// (system identifier), is an error: never a silent stale read.
#pragma once

#include "daemon/consistent_plan.hpp"
#include "daemon/operation_handler.hpp"
#include "daemon/read_handler.hpp"

namespace regiond::daemon {

class ConsistentReadHandler final : public OperationHandler {
public:
    void start(PendingRequest& request, DispatchContext& context) override;
    void on_failure(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) override;
    void on_wait_over(PendingRequest& request, DispatchContext& context) override;
    void on_answer(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) override;

private:
    void plan_and_go(PendingRequest& request, DispatchContext& context, bool may_wait);
    ReadHandler local_{RouteKind::read_local};  ///< an empty token
};

}  // namespace regiond::daemon

// read_local and read_primary: routed by plan_route(), run read-only by the
// endpoint, and sent to the next endpoint of the route at most once.
//
// The dispatcher's part of the retry rule (docs/design.md, "Retries"; the
// endpoint's part is in daemon/pg/endpoint.hpp): a read is sent elsewhere only
// when
//   - its job failed with Outcome::retry_elsewhere (the endpoint confirmed it
//     failed, nothing was streamed, and the request's re-send was not spent
//     by the endpoint itself),
//   - the request's one re-send is unused here too (the re-send goes out with
//     Job::may_retry = false, so no endpoint sends it a third time),
//   - no chunk of it reached the client (streamed rows are never repeated),
//   - its deadline has not passed, the client still waits for it (not
//     cancelled, still connected), and the daemon is not draining,
//   - and the route still has an endpoint it has not tried.
// Writes never get here (write_handler.hpp).
#pragma once

#include "daemon/operation_handler.hpp"

namespace regiond::daemon {

class ReadHandler final : public OperationHandler {
public:
    /// RouteKind::read_local or RouteKind::read_primary.
    explicit ReadHandler(RouteKind kind) : kind_(kind) {}
    void start(PendingRequest& request, DispatchContext& context) override;
    void on_failure(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) override;

private:
    RouteKind kind_;
};

}  // namespace regiond::daemon

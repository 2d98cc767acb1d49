#include "daemon/write_handler.hpp"

namespace regiond::daemon {

void WriteHandler::start(PendingRequest& request, DispatchContext& context) {
    request.job.kind = pg::Job::Kind::write;
    request.job.may_retry = false;
    const Route route = context.route(RouteKind::write, {});
    if (!route.ok()) {
        context.no_route(request, route);
        return;
    }
    request.job.route_reason = route.reason;
    context.submit(request, route.candidates.front(), false);
}

}  // namespace regiond::daemon

#include "daemon/read_handler.hpp"

#include "daemon/log.hpp"

namespace regiond::daemon {

void ReadHandler::start(PendingRequest& request, DispatchContext& context) {
    request.job.kind = pg::Job::Kind::read;
    request.job.may_retry = true;
    const Route route = context.route(kind_, {});
    if (!route.ok()) {
        context.no_route(request, route);
        return;
    }
    request.job.route_reason = route.reason;
    context.submit(request, route.candidates.front(), true);
}

void ReadHandler::on_failure(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
    if (!outcome.retry_elsewhere || request.resent || request.streamed || context.draining() ||
        std::chrono::steady_clock::now() >= request.deadline)
        return;
    const Route route = context.route(kind_, request.tried);
    if (!route.ok()) return;
    const BackendEndpoint& failed = context.endpoint(request.tried.back());
    const BackendEndpoint& next = context.endpoint(route.candidates.front());
    log::info("retrying a read on " + next.region + " " + next.display_name + " after an endpoint failure on " +
              failed.region + " " + failed.display_name);
    request.resent = true;
    request.job.may_retry = false;
    request.job.route_reason = failed.region + " " + failed.display_name + " failed under the read; " + route.reason;
    context.submit(request, route.candidates.front(), false);
}

}  // namespace regiond::daemon

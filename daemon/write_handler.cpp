#include "daemon/write_handler.hpp"

namespace regiond::daemon {

void WriteHandler::start(PendingRequest& request, DispatchContext& context) {
    request.job.kind = pg::Job::Kind::write;
    request.job.may_retry = false;
    request.job.invalidate_keys = request.invalidate_keys;
    if (!request.invalidate_keys.empty()) request.job.origin = cache_.settings().origin;
    const Route route = context.route(RouteKind::write, {});
    if (!route.ok()) {
        context.no_route(request, route);
        return;
    }
    request.job.route_reason = route.reason;
    context.submit(request, route.candidates.front(), false);
}

void WriteHandler::on_answer(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
    if (request.invalidate_keys.empty()) return;
    const std::uint64_t lsn = outcome.ok ? outcome.lsn : 0;
    cache_.invalidate_local(request.invalidate_keys, lsn);
    if (outcome.ok) cache_.publish_invalidation(request.invalidate_keys, lsn, context.system_identifier());
}

}  // namespace regiond::daemon

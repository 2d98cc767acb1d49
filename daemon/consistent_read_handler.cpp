#include "daemon/consistent_read_handler.hpp"

#include <algorithm>

#include "daemon/log.hpp"
#include "shm/base/lsn.hpp"
#include "shm/base/token.hpp"

namespace regiond::daemon {
namespace {

using Clock = std::chrono::steady_clock;

shm::Counter counter_of(ConsistentKind kind) {
    switch (kind) {
        case ConsistentKind::local: return shm::Counter::consistent_reads_local;
        case ConsistentKind::local_after_wait: return shm::Counter::consistent_reads_waited;
        case ConsistentKind::elsewhere: return shm::Counter::consistent_reads_elsewhere;
        case ConsistentKind::primary: return shm::Counter::consistent_reads_to_primary;
    }
    return shm::Counter::consistent_reads_to_primary;
}

// A token as it may be quoted in an error: short, printable.
std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (char c : text.substr(0, 48)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out + (text.size() > 48 ? "...\"" : "\"");
}

}  // namespace

void ConsistentReadHandler::start(PendingRequest& request, DispatchContext& context) {
    request.job.kind = pg::Job::Kind::read;
    request.job.may_retry = true;
    ConsistentState& c = request.consistent;
    if (!c.checked) {
        if (request.token.empty()) {
            c.as_read_local = true;
            c.checked = true;
        } else {
            const auto token = base::parse_token(request.token);
            if (!token) {
                context.count(shm::Counter::consistent_reads_failed);
                context.answer_error(request, "malformed token " + quoted(request.token) +
                                                  ": a token is SYSTEMID/LSN as rgd_token returns it, e.g. "
                                                  "7713697811223072330/0/41F2E80");
                return;
            }
            const std::uint64_t cluster = context.system_identifier();
            if (cluster == 0) {
                // No endpoint has connected yet: wait for the first verdicts.
                context.park(request,
                             "read_consistent: the cluster's system identifier is not known yet (no "
                             "endpoint has answered)");
                return;
            }
            if (token->system_identifier != cluster) {
                context.count(shm::Counter::consistent_reads_failed);
                context.answer_error(request, "token " + quoted(request.token) +
                                                  " is from another cluster (system identifier " +
                                                  std::to_string(token->system_identifier) + "; this cluster's is " +
                                                  std::to_string(cluster) + ")");
                return;
            }
            c.token_lsn = token->lsn;
            c.checked = true;
        }
    }
    if (c.as_read_local) {
        local_.start(request, context);
        return;
    }
    plan_and_go(request, context, true);
}

void ConsistentReadHandler::plan_and_go(PendingRequest& request, DispatchContext& context, bool may_wait) {
    ConsistentState& c = request.consistent;
    const auto now = Clock::now();
    ConsistentQuery q;
    q.token_lsn = c.token_lsn;
    q.fresh_sample = c.fresh_sample;
    if (c.waiting_since) {
        q.has_waited = true;
        q.waited = now - *c.waiting_since;
    }
    if (may_wait) {
        // One budget per request: a wait that is resumed keeps its start.
        const auto wait_end = c.waiting_since ? *c.waiting_since + context.settings().consistency_max_wait
                                              : now + context.settings().consistency_max_wait;
        q.wait_budget = std::max(std::chrono::nanoseconds{0}, std::min(wait_end, request.deadline) - now);
        // With the primary down the plan waits for the replica up to the
        // deadline and then fails with an error that says which token and why.
        // libclient's timer ends at the same deadline (never later: see
        // remaining_ms in libclient/src/client.cpp), so an answer made at the
        // deadline loses the race and the caller sees only "timed out after N
        // ms". Stop waiting a little earlier so the explanation reaches it.
        constexpr std::chrono::nanoseconds kAnswerMargin = std::chrono::milliseconds(20);
        q.deadline_budget = std::max(std::chrono::nanoseconds{0}, request.deadline - now - kAnswerMargin);
    }
    const ConsistentDecision d =
        plan_consistent_read(context.endpoint_states(), context.settings().routing, q, request.tried);
    switch (d.action) {
        case ConsistentAction::fail:
            context.count(shm::Counter::consistent_reads_failed);
            context.answer_error(request, d.error);
            return;
        case ConsistentAction::wait:
            if (!c.waiting_since) c.waiting_since = now;
            context.wait_for_lsn(request, d.endpoint, c.token_lsn, now + d.wait_for, d.recheck);
            return;
        case ConsistentAction::read:
            c.kind = d.kind;
            if (c.waiting_since) c.released_at = now;
            request.job.min_lsn = d.min_lsn;
            request.job.route_reason = d.reason;
            context.submit(request, d.endpoint, true);
            return;
    }
}

void ConsistentReadHandler::on_wait_over(PendingRequest& request, DispatchContext& context) {
    if (request.consistent.as_read_local) {
        OperationHandler::on_wait_over(request, context);
        return;
    }
    plan_and_go(request, context, false);
}

void ConsistentReadHandler::on_answer(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
    const ConsistentState& c = request.consistent;
    if (c.as_read_local) return;
    if (!outcome.ok) {
        context.count(shm::Counter::consistent_reads_failed);
        return;
    }
    context.count(counter_of(c.kind));
    if (c.waiting_since && c.kind == ConsistentKind::local_after_wait)
        context.record_consistent_wait(c.released_at - *c.waiting_since);
}

void ConsistentReadHandler::on_failure(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
    if (request.consistent.as_read_local) {
        local_.on_failure(request, outcome, context);
        return;
    }
    if (!(outcome.behind || outcome.retry_elsewhere) || request.resent || request.streamed || context.draining() ||
        Clock::now() >= request.deadline)
        return;
    // Its one re-send: the endpoint it failed on is excluded from the plan.
    request.resent = true;
    request.job.may_retry = false;
    const BackendEndpoint& failed = context.endpoint(request.tried.back());
    log::info(std::string("read_consistent: ") +
              (outcome.behind ? "replica behind the token at query time on " : "endpoint failure on ") + failed.region +
              " " + failed.display_name + "; planning again");
    plan_and_go(request, context, false);
}

}  // namespace regiond::daemon

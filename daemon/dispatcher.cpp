#include "daemon/dispatcher.hpp"

#include "daemon/log.hpp"

namespace regiond::daemon {
namespace {

shm::Counter request_counter(shm::Op op) {
    switch (op) {
        case shm::Op::read_local: return shm::Counter::requests_read_local;
        case shm::Op::read_primary: return shm::Counter::requests_read_primary;
        case shm::Op::write: return shm::Counter::requests_write;
        case shm::Op::read_consistent: return shm::Counter::requests_read_consistent;
        case shm::Op::cached_read: return shm::Counter::requests_cached_read;
    }
    return shm::Counter::requests_read_local;
}

}  // namespace

Dispatcher::Dispatcher(const config::Config& config, Backends& backends, Responder& responder, Stats& stats)
    : config_(config),
      backends_(backends),
      responder_(responder),
      stats_(stats),
      self_(std::make_shared<Dispatcher*>(this)) {}

Dispatcher::~Dispatcher() = default;

void Dispatcher::answer_error(ClientId client, std::uint64_t request_id, std::string_view message) {
    responder_.respond_error(client, request_id, message);  // counts the error
}

void Dispatcher::on_request(ClientId client, std::uint64_t request_id, const shm::RequestView& request) {
    stats_.add(request_counter(request.op));
    const Key key{client, request_id};
    if (pending_.count(key) != 0) {
        responder_.drop_client(client,
                               "it reused request id " + std::to_string(request_id) + " while it was in flight");
        return;
    }

    RouteKind kind = RouteKind::read_local;
    switch (request.op) {
        case shm::Op::read_consistent:
            answer_error(client, request_id, "read_consistent is not implemented yet");
            return;
        case shm::Op::cached_read: answer_error(client, request_id, "cached_read is not implemented yet"); return;
        case shm::Op::read_local: kind = RouteKind::read_local; break;
        case shm::Op::read_primary: kind = RouteKind::read_primary; break;
        case shm::Op::write: kind = RouteKind::write; break;
    }
    if (draining_) {
        answer_error(client, request_id, "regiond is shutting down");
        return;
    }

    const RoutingSettings settings{config_.daemon.region, config_.lag.max_lag};
    const Route route = plan_route(kind, backends_.routing_states(), settings);
    if (!route.ok()) {
        answer_error(client, request_id, route.error);
        return;
    }

    Pending pending;
    pending.ticket = next_ticket_++;
    pending.kind = kind;
    const auto timeout =
        request.timeout_ms != 0
            ? std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::milliseconds(request.timeout_ms))
            : config_.daemon.request_timeout;
    pending.deadline = std::chrono::steady_clock::now() + timeout;
    pending.job.kind = kind == RouteKind::write ? pg::Job::Kind::write : pg::Job::Kind::read;
    pending.job.sql.assign(request.sql);
    pending.job.params.reserve(request.params.size());
    for (const auto& p : request.params)
        pending.job.params.push_back(p ? std::optional<std::string>(std::string(*p)) : std::nullopt);
    pending.job.deadline = pending.deadline;

    auto [it, inserted] = pending_.emplace(key, std::move(pending));
    submit(key, it->second, route.candidates.front());
}

void Dispatcher::submit(const Key& key, Pending& pending, std::size_t endpoint) {
    pending.tried.push_back(endpoint);
    // Only a read may run again elsewhere; a write's job is handed over.
    pg::Job job = pending.kind == RouteKind::write ? std::move(pending.job) : pending.job;
    std::weak_ptr<Dispatcher*> weak = self_;
    const std::uint64_t ticket = pending.ticket;
    backends_.at(endpoint).endpoint->submit(std::move(job), [weak, key, ticket](pg::Outcome&& outcome) {
        if (auto self = weak.lock()) (*self)->complete(key, ticket, std::move(outcome));
    });
}

void Dispatcher::complete(const Key& key, std::uint64_t ticket, pg::Outcome&& outcome) {
    auto it = pending_.find(key);
    if (it == pending_.end() || it->second.ticket != ticket)
        return;  // the client went away or cancelled: nobody to answer
    Pending& pending = it->second;
    const auto now = std::chrono::steady_clock::now();

    if (!outcome.ok && outcome.retry_elsewhere && pending.kind != RouteKind::write && pending.tried.size() == 1 &&
        now < pending.deadline && !draining_) {
        const RoutingSettings settings{config_.daemon.region, config_.lag.max_lag};
        const Route route = plan_route(pending.kind, backends_.routing_states(), settings, pending.tried);
        if (route.ok()) {
            const auto& failed = backends_.at(pending.tried.front());
            const auto& next = backends_.at(route.candidates.front());
            log::info("retrying a read on " + next.region + " " + next.display_name + " after an endpoint failure on " +
                      failed.region + " " + failed.display_name);
            submit(key, pending, route.candidates.front());
            return;
        }
    }

    if (!outcome.ok) {
        stats_.add(shm::Counter::errors);
        if (now >= pending.deadline) stats_.add(shm::Counter::timeouts);
    }
    pending_.erase(it);
    responder_.respond(key.first, key.second, std::move(outcome.chunks));
}

bool Dispatcher::on_cancel(ClientId client, std::uint64_t request_id) {
    // The job keeps running on its endpoint (the backend has no cancel); its
    // completion finds nothing pending and is dropped.
    return pending_.erase(Key{client, request_id}) != 0;
}

void Dispatcher::on_client_gone(ClientId client) {
    auto first = pending_.lower_bound(Key{client, 0});
    auto last = first;
    while (last != pending_.end() && last->first.first == client) ++last;
    pending_.erase(first, last);
}

void Dispatcher::abandon_all(const std::string& message) {
    auto pending = std::move(pending_);
    pending_.clear();
    for (const auto& [key, p] : pending) answer_error(key.first, key.second, message);
}

}  // namespace regiond::daemon

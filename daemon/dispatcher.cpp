#include "daemon/dispatcher.hpp"

#include <algorithm>

#include "daemon/cached_read_handler.hpp"
#include "daemon/consistent_read_handler.hpp"
#include "daemon/read_handler.hpp"
#include "daemon/write_handler.hpp"

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

Dispatcher::Dispatcher(EventLoop& loop, DispatchSettings settings, Backends& backends, Responder& responder,
                       Stats& stats, cache::CacheService& cache)
    : settings_(std::move(settings)),
      backends_(backends),
      responder_(responder),
      stats_(stats),
      loop_(loop),
      classifier_worker_(loop),
      scope_(loop) {
    handlers_[static_cast<std::size_t>(shm::Op::read_local)] = std::make_unique<ReadHandler>(RouteKind::read_local);
    handlers_[static_cast<std::size_t>(shm::Op::read_primary)] = std::make_unique<ReadHandler>(RouteKind::read_primary);
    handlers_[static_cast<std::size_t>(shm::Op::write)] = std::make_unique<WriteHandler>(cache);
    handlers_[static_cast<std::size_t>(shm::Op::read_consistent)] = std::make_unique<ConsistentReadHandler>();
    handlers_[static_cast<std::size_t>(shm::Op::cached_read)] = std::make_unique<CachedReadHandler>(cache);
    lsn_waiters_.resize(backends_.size());
    lsn_polls_.resize(backends_.size());
    rechecks_.resize(backends_.size());
    const std::weak_ptr<const bool> alive = scope_.token();
    for (std::size_t i = 0; i < backends_.size(); ++i) {
        backends_.at(i).endpoint->on_replay_lsn([this, alive, i](std::uint64_t lsn) {
            if (!alive.expired()) on_replay_lsn(i, lsn);
        });
    }
}

Dispatcher::~Dispatcher() = default;

OperationHandler& Dispatcher::handler(shm::Op op) {
    // decode_request() admits only the ops of shm::Op, each of which has one.
    return *handlers_.at(static_cast<std::size_t>(op));
}

Route Dispatcher::route(RouteKind kind, std::span<const std::size_t> exclude) {
    return plan_route(kind, backends_.routing_states(), settings_.routing, exclude);
}

void Dispatcher::on_request(ClientId client, std::uint64_t request_id, const shm::RequestView& request) {
    stats_.add(request_counter(request.op));
    const Key key{client, request_id};
    if (waiting_.count(key) != 0) {
        responder_.release(client);
        responder_.drop_client(client,
                               "it reused request id " + std::to_string(request_id) + " while it was in flight");
        return;
    }
    if (draining_) {
        responder_.respond_error(client, request_id, "regiond is shutting down");
        responder_.release(client);
        return;
    }

    PendingRequest r;
    r.ticket = next_ticket_++;
    r.client = client;
    r.request_id = request_id;
    r.op = request.op;
    std::chrono::nanoseconds timeout =
        request.timeout_ms != 0 ? std::chrono::milliseconds(request.timeout_ms) : settings_.request_timeout;
    timeout = std::min(timeout, settings_.max_request_timeout);
    r.deadline = std::chrono::steady_clock::now() + timeout;
    r.job.sql.assign(request.sql);
    r.token.assign(request.token);
    if (request.op == shm::Op::cached_read) {
        r.cached.key.assign(request.key);
        r.cached.ttl =
            request.ttl_seconds != 0 ? std::chrono::seconds(request.ttl_seconds) : settings_.cache_default_ttl;
    }
    r.invalidate_keys.assign(request.invalidate_keys.begin(), request.invalidate_keys.end());
    r.job.params.reserve(request.params.size());
    for (const auto& p : request.params)
        r.job.params.push_back(p ? std::optional<std::string>(std::string(*p)) : std::nullopt);
    r.job.deadline = r.deadline;
    r.job.max_result = settings_.max_result;

    const auto [it, inserted] = requests_.emplace(r.ticket, std::move(r));
    waiting_.emplace(key, it->first);
    PendingRequest& pending = it->second;
    // A long text not classified before is classified off the loop (up to
    // ~2 us per byte: a max_request text would hold every client for most of
    // a second); the endpoint then uses that classification.
    const pg::Operation as = pending.op == shm::Op::write ? pg::Operation::write : pg::Operation::read;
    if (pending.job.sql.size() > kClassifyOnLoopBytes) {
        if (auto known = backends_.classifier().find(pending.job.sql, as)) {
            pending.job.classification = std::move(known);
        } else {
            pending.classifying = true;
            const std::uint64_t ticket = pending.ticket;
            classifier_worker_.classify(pending.job.sql, as, [this, ticket](auto classification) {
                classified(ticket, std::move(classification));
            });
            return;
        }
    }
    start(pending);
    finish_if_idle(it);
}

void Dispatcher::start(PendingRequest& request) {
    handler(request.op).start(request, *this);
    if (!request.job_running && !request.answered && !request.parked && !request.held)
        answer_error(request, "internal error: no handler took the request");
}

void Dispatcher::hold(PendingRequest& request, std::string_view error) {
    request.held = true;
    request.held_error.assign(error);
    const std::uint64_t ticket = request.ticket;
    request.held_deadline = loop_.timer(request.deadline - std::chrono::steady_clock::now(), [this, ticket] {
        auto it = requests_.find(ticket);
        if (it == requests_.end() || !it->second.held) return;
        unhold(it->second);
        if (!it->second.answered) {
            stats_.add(shm::Counter::timeouts);
            answer_error(it->second, it->second.held_error);
        }
        finish_if_idle(it);
    });
}

void Dispatcher::unhold(PendingRequest& request) {
    request.held = false;
    request.held_deadline.cancel();
}

bool Dispatcher::with_request(std::uint64_t ticket, const std::function<void(PendingRequest&)>& fn) {
    auto it = requests_.find(ticket);
    if (it == requests_.end() || it->second.answered || !it->second.held) return false;
    PendingRequest& r = it->second;
    unhold(r);
    if (draining_) {
        answer_error(r, "regiond is shutting down");
    } else {
        fn(r);
        if (!r.job_running && !r.answered && !r.parked && !r.held)
            answer_error(r, "internal error: no handler took the request");
    }
    finish_if_idle(it);
    return true;
}

void Dispatcher::answer(PendingRequest& request, std::vector<std::vector<std::byte>> chunks) {
    forget(request);
    responder_.respond(request.client, request.request_id, std::move(chunks));
}

void Dispatcher::classified(std::uint64_t ticket, std::shared_ptr<const pg::Classification> classification) {
    auto it = requests_.find(ticket);
    if (it == requests_.end() || !it->second.classifying) return;  // cancelled or its client went away
    PendingRequest& r = it->second;
    r.classifying = false;
    const pg::Operation as = r.op == shm::Op::write ? pg::Operation::write : pg::Operation::read;
    backends_.classifier().remember(r.job.sql, as, classification);
    r.job.classification = std::move(classification);
    if (r.answered) {
        // Nothing to do: it was answered meanwhile (a drain).
    } else if (draining_) {
        answer_error(r, "regiond is shutting down");
    } else if (std::chrono::steady_clock::now() >= r.deadline) {
        stats_.add(shm::Counter::timeouts);
        answer_error(r, "timed out while regiond checked the statement");
    } else {
        start(r);
    }
    finish_if_idle(it);
}

void Dispatcher::park(PendingRequest& request, std::string_view error) {
    request.parked = true;
    request.parked_error.assign(error);
    const std::uint64_t ticket = request.ticket;
    request.parked_deadline = loop_.timer(request.deadline - std::chrono::steady_clock::now(), [this, ticket] {
        auto it = requests_.find(ticket);
        if (it == requests_.end() || !it->second.parked) return;
        it->second.parked = false;
        if (!it->second.answered) {
            stats_.add(shm::Counter::timeouts);
            answer_error(it->second, it->second.parked_error);
        }
        finish_if_idle(it);
    });
    parked_.push_back(ticket);
}

void Dispatcher::wait_for_lsn(PendingRequest& request, std::size_t index, std::uint64_t lsn,
                              std::chrono::steady_clock::time_point until, bool recheck) {
    request.parked = true;
    request.lsn_waiting = true;
    request.lsn_wait_endpoint = index;
    request.lsn_wait = lsn;
    if (lsn_waiters_[index].empty()) backends_.at(index).endpoint->set_lsn_watch(true);
    lsn_waiters_[index].emplace(lsn, request.ticket);
    if (recheck) {
        // The poll in flight now may have read the LSN before this request
        // came; the one after it was sent after: wait for that one.
        request.recheck_at_poll = lsn_polls_[index] + 2;
        rechecks_[index].push_back(request.ticket);
    } else {
        request.recheck_at_poll = 0;
    }
    const std::uint64_t ticket = request.ticket;
    request.parked_deadline = loop_.timer(until - std::chrono::steady_clock::now(), [this, ticket] {
        auto it = requests_.find(ticket);
        if (it == requests_.end() || !it->second.parked) return;
        unpark(it->second);
        if (!it->second.answered && !draining_) {
            handler(it->second.op).on_wait_over(it->second, *this);
            if (!it->second.job_running && !it->second.answered && !it->second.parked)
                answer_error(it->second, "internal error: no handler took the request");
        }
        finish_if_idle(it);
    });
    parked_.push_back(ticket);
}

void Dispatcher::unpark(PendingRequest& request) {
    request.parked = false;
    request.parked_deadline.cancel();
    if (!request.lsn_waiting) return;
    request.lsn_waiting = false;
    auto& waiters = lsn_waiters_[request.lsn_wait_endpoint];
    const auto [first, last] = waiters.equal_range(request.lsn_wait);
    for (auto w = first; w != last; ++w) {
        if (w->second == request.ticket) {
            waiters.erase(w);
            break;
        }
    }
    if (waiters.empty()) backends_.at(request.lsn_wait_endpoint).endpoint->set_lsn_watch(false);
}

void Dispatcher::on_replay_lsn(std::size_t index, std::uint64_t lsn) {
    const std::uint64_t poll = ++lsn_polls_[index];
    auto& waiters = lsn_waiters_[index];
    // Released in LSN order, then those due for a recheck; start() may park a
    // request again (not on this endpoint for this LSN: the replica has it now).
    std::vector<std::uint64_t> released;
    for (auto w = waiters.begin(); w != waiters.end() && w->first <= lsn; ++w) released.push_back(w->second);
    auto& rechecks = rechecks_[index];
    for (auto t = rechecks.begin(); t != rechecks.end();) {
        auto it = requests_.find(*t);
        if (it == requests_.end() || !it->second.lsn_waiting || it->second.recheck_at_poll == 0) {
            t = rechecks.erase(t);  // gone, or released already
        } else if (it->second.recheck_at_poll <= poll) {
            if (it->second.lsn_wait > lsn) released.push_back(*t);  // else released by its LSN above
            t = rechecks.erase(t);
        } else {
            ++t;
        }
    }
    if (released.empty()) return;
    for (const std::uint64_t ticket : released) {
        auto it = requests_.find(ticket);
        if (it == requests_.end() || !it->second.lsn_waiting) continue;
        PendingRequest& r = it->second;
        unpark(r);
        r.recheck_at_poll = 0;
        r.consistent.fresh_sample = true;  // this poll was sent after the request came
        if (!r.answered && !draining_) start(r);
        finish_if_idle(it);
    }
}

std::uint64_t Dispatcher::system_identifier() {
    return backends_.system_identifier();
}

void Dispatcher::on_backends_changed() {
    if (parked_.empty()) return;
    // start() may park a request again (into the fresh parked_).
    std::vector<std::uint64_t> parked;
    parked.swap(parked_);
    for (const std::uint64_t ticket : parked) {
        auto it = requests_.find(ticket);
        if (it == requests_.end() || !it->second.parked) continue;
        PendingRequest& r = it->second;
        // A read_consistent waiting for a replica that is still healthy keeps
        // waiting (its own LSN polls release it); any other change plans again.
        if (r.lsn_waiting && !draining_ && backends_.at(r.lsn_wait_endpoint).endpoint->health().healthy) {
            parked_.push_back(ticket);
            continue;
        }
        unpark(r);
        if (!r.answered && !draining_) {
            start(r);
        } else if (!r.answered) {
            answer_error(r, "regiond is shutting down");
        }
        finish_if_idle(it);
    }
}

void Dispatcher::submit(PendingRequest& request, std::size_t index, bool keep_job) {
    request.tried.push_back(index);
    request.endpoint = index;
    request.job_running = true;
    request.paused = false;
    pg::Job job = keep_job ? request.job : std::move(request.job);
    const std::weak_ptr<const bool> alive = scope_.token();
    const std::uint64_t ticket = request.ticket;
    pg::JobCallbacks callbacks;
    callbacks.partial = [this, alive, ticket](std::vector<std::byte>&& chunk) {
        return alive.expired() || on_partial(ticket, std::move(chunk));
    };
    callbacks.done = [this, alive, ticket](pg::Outcome&& outcome) {
        if (!alive.expired()) on_done(ticket, std::move(outcome));
    };
    request.job_id = backends_.at(index).endpoint->submit(std::move(job), std::move(callbacks));
}

void Dispatcher::answer_error(PendingRequest& request, std::string_view message) {
    forget(request);
    responder_.respond_error(request.client, request.request_id, message);  // counts the error
}

void Dispatcher::forget(PendingRequest& request) {
    if (request.answered) return;
    request.answered = true;
    waiting_.erase(Key{request.client, request.request_id});
}

void Dispatcher::finish_if_idle(Requests::iterator it) {
    if (it->second.job_running || waiting_without_job(it->second)) return;
    forget(it->second);
    const ClientId client = it->second.client;
    requests_.erase(it);
    responder_.release(client);
}

bool Dispatcher::on_partial(std::uint64_t ticket, std::vector<std::byte>&& chunk) {
    auto it = requests_.find(ticket);
    if (it == requests_.end()) return true;
    PendingRequest& r = it->second;
    r.streamed = true;
    if (r.answered) return true;  // nobody reads it; its job is being cancelled
    const bool open = responder_.stream(r.client, r.request_id, std::move(chunk));
    if (!open) r.paused = true;
    return open;
}

void Dispatcher::on_done(std::uint64_t ticket, pg::Outcome&& outcome) {
    auto it = requests_.find(ticket);
    if (it == requests_.end()) return;
    PendingRequest& r = it->second;
    r.job_running = false;
    r.paused = false;
    if (!r.answered) {
        if (!outcome.ok && !outcome.cancelled) {
            handler(r.op).on_failure(r, outcome, *this);
            if (r.job_running || r.parked || r.held) return;  // sent again, or waiting to be
            if (r.answered) {                                 // the handler answered it itself
                finish_if_idle(it);
                return;
            }
        }
        if (!outcome.ok) {
            stats_.add(shm::Counter::errors);
            if (std::chrono::steady_clock::now() >= r.deadline) stats_.add(shm::Counter::timeouts);
        }
        if (!outcome.cancelled) handler(r.op).on_answer(r, outcome, *this);
        forget(r);
        responder_.respond(r.client, r.request_id, std::move(outcome.chunks));
    } else if (outcome.cancelled) {
        handler(r.op).on_job_cancelled(r, *this);
    }
    finish_if_idle(it);
}

void Dispatcher::cancel_jobs(std::vector<std::pair<std::size_t, pg::JobId>> jobs) {
    // Outside any iteration: a queued job's `done` may run inside cancel().
    for (const auto& [index, id] : jobs) backends_.at(index).endpoint->cancel(id);
}

void Dispatcher::on_cancel(ClientId client, std::uint64_t request_id) {
    auto w = waiting_.find(Key{client, request_id});
    if (w == waiting_.end()) return;  // answered already: the answer crossed the cancel
    auto it = requests_.find(w->second);
    forget(it->second);
    // A parked or classifying request has nothing running: it ends here (the
    // worker's late result finds no request).
    if (it->second.parked) unpark(it->second);
    if (it->second.held) unhold(it->second);
    it->second.classifying = false;
    if (it->second.job_running)
        cancel_jobs({{it->second.endpoint, it->second.job_id}});  // counts until its done
    else
        finish_if_idle(it);
}

void Dispatcher::on_client_gone(ClientId client) {
    std::vector<std::pair<std::size_t, pg::JobId>> jobs;
    std::vector<std::uint64_t> parked;
    auto w = waiting_.lower_bound(Key{client, 0});
    while (w != waiting_.end() && w->first.first == client) {
        PendingRequest& r = requests_.at(w->second);
        r.answered = true;
        if (r.job_running) jobs.emplace_back(r.endpoint, r.job_id);
        if (waiting_without_job(r)) parked.push_back(r.ticket);
        w = waiting_.erase(w);
    }
    end_parked(parked);  // nothing runs for them: they end here
    cancel_jobs(std::move(jobs));
}

void Dispatcher::on_window_open(ClientId client) {
    std::vector<std::pair<std::size_t, pg::JobId>> paused;
    for (auto w = waiting_.lower_bound(Key{client, 0}); w != waiting_.end() && w->first.first == client; ++w) {
        PendingRequest& r = requests_.at(w->second);
        if (!r.paused || !r.job_running) continue;
        r.paused = false;
        paused.emplace_back(r.endpoint, r.job_id);
    }
    for (const auto& [index, id] : paused) backends_.at(index).endpoint->resume(id);
}

void Dispatcher::abandon_all(const std::string& message) {
    std::vector<std::pair<std::size_t, pg::JobId>> jobs;
    std::vector<std::uint64_t> parked;
    for (auto w = waiting_.begin(); w != waiting_.end();) {
        PendingRequest& r = requests_.at(w->second);
        r.answered = true;
        // A response already streaming cannot start over with an error head;
        // the client sees the daemon go away instead.
        if (!r.streamed) responder_.respond_error(r.client, r.request_id, message);
        if (r.job_running) jobs.emplace_back(r.endpoint, r.job_id);
        if (waiting_without_job(r)) parked.push_back(r.ticket);
        w = waiting_.erase(w);
    }
    end_parked(parked);
    cancel_jobs(std::move(jobs));
}

void Dispatcher::begin_drain() {
    draining_ = true;
    // Parked requests would start nothing now: they are answered at once.
    std::vector<std::uint64_t> parked;
    parked.swap(parked_);
    for (auto& [ticket, r] : requests_)
        if (r.classifying || r.held) parked.push_back(ticket);
    for (const std::uint64_t ticket : parked) {
        auto it = requests_.find(ticket);
        if (it == requests_.end() || !waiting_without_job(it->second)) continue;
        if (!it->second.answered) answer_error(it->second, "regiond is shutting down");
    }
    end_parked(parked);
}

void Dispatcher::end_parked(const std::vector<std::uint64_t>& tickets) {
    for (const std::uint64_t ticket : tickets) {
        auto it = requests_.find(ticket);
        if (it == requests_.end() || !waiting_without_job(it->second)) continue;
        if (it->second.parked) unpark(it->second);
        if (it->second.held) unhold(it->second);
        it->second.classifying = false;
        finish_if_idle(it);
    }
}

}  // namespace regiond::daemon

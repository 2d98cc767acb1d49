#include "daemon/cached_read_handler.hpp"

#include <algorithm>

#include "daemon/cache/cache_values.hpp"
#include "daemon/log.hpp"
#include "shm/cache_value.hpp"

namespace regiond::daemon {
namespace {

std::uint64_t wall_now_ms() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

std::vector<std::optional<std::string_view>> param_views(const pg::Job& job) {
    std::vector<std::optional<std::string_view>> views;
    views.reserve(job.params.size());
    for (const auto& p : job.params) views.push_back(p ? std::optional<std::string_view>(*p) : std::nullopt);
    return views;
}

std::span<const std::byte> bytes_of(std::string_view text) {
    return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

}  // namespace

std::string CachedReadHandler::flight_key(const PendingRequest& request) {
    // Length-prefixed key, then the query: no two (key, query) pairs collide.
    std::string fk = std::to_string(request.cached.key.size()) + ':' + request.cached.key;
    fk += request.cached.query;
    return fk;
}

void CachedReadHandler::start(PendingRequest& request, DispatchContext& context) {
    switch (request.cached.phase) {
        case CachedState::Phase::fresh: begin(request, context); return;
        case CachedState::Phase::redis:  // re-planned while Redis answers: cannot happen (held), be safe
        case CachedState::Phase::database:
        case CachedState::Phase::waited: read_database(request, context, false); return;
        case CachedState::Phase::primary: read_database(request, context, true); return;
    }
}

void CachedReadHandler::begin(PendingRequest& request, DispatchContext& context) {
    // libregiond refuses an empty key itself; a raw client gets the same answer.
    if (request.cached.key.empty()) {
        context.answer_error(request, "cache key is empty: cached_read needs a key");
        return;
    }
    const auto params = param_views(request.job);
    if (request.cached.query.empty()) {
        const std::vector<std::byte> query = shm::encode_cache_query(request.job.sql, params);
        request.cached.query.assign(reinterpret_cast<const char*>(query.data()), query.size());
    }
    const std::string& key = request.cached.key;

    // A fill may have landed since the client looked.
    if (service_.vouched()) {
        std::vector<std::byte> blob;
        if (service_.hot().lookup(key, request.job.sql, params, blob)) {
            if (auto chunks = cache::answer_from_value(blob, "cache:local", "cache:local: stored on this host",
                                                       service_.settings().max_chunk_bytes)) {
                service_.count_daemon_local_hit();
                context.answer(request, std::move(*chunks));
                return;
            }
        }
    }

    const std::string fk = flight_key(request);
    auto flight = flights_.find(fk);
    if (flight != flights_.end()) {
        if (context.exists(flight->second.leader)) {
            const cache::FillStart now = service_.fences().start(key);
            if (now.key_version == flight->second.started.key_version && now.epoch == flight->second.started.epoch) {
                flight->second.waiters.push_back(request.ticket);
                context.count(shm::Counter::cache_misses_coalesced);
                context.hold(request, "timed out waiting for a concurrent read of the same cache key");
                return;
            }
            // The key was invalidated (or the cache flushed) after the flight's
            // read began: its answer may be older than that invalidation, which
            // this request came after. It reads for itself, outside the flight
            // (so it fills nothing; the flight's fill is refused anyway), with
            // the key's fence as its minimum.
            context.count(shm::Counter::cache_misses);
            read_database(request, context, false);
            return;
        }
        flight->second.leader = 0;  // its leader ended without an answer: this request takes over
    } else {
        flight = flights_.emplace(fk, Flight{}).first;
        flight->second.key = key;
        flight->second.query = request.cached.query;
    }
    flight->second.leader = request.ticket;
    // What a request that wants to join compares with until the leader's
    // database read starts (read_database takes it again then).
    flight->second.started = service_.fences().start(key);

    if (service_.redis_usable()) {
        request.cached.phase = CachedState::Phase::redis;
        context.hold(request, "timed out waiting for the region's Redis");
        const std::weak_ptr<bool> alive = alive_;
        service_.own_store()->get(key, [this, alive, fk, &context](const cache::RegionStore::GetReply& reply) {
            if (!alive.expired()) on_redis(fk, reply, context);
        });
        return;
    }
    const cache::RegionStore* own = service_.own_store();
    flight->second.redis_note = own == nullptr        ? "no Redis"
                                : !service_.vouched() ? service_.not_vouched_reason()
                                                      : service_.settings().region + "'s Redis is down";
    context.count(shm::Counter::cache_misses);
    read_database(request, context, false);
}

void CachedReadHandler::on_redis(const std::string& fk, const cache::RegionStore::GetReply& reply,
                                 DispatchContext& context) {
    auto flight = flights_.find(fk);
    if (flight == flights_.end()) return;
    Flight& f = flight->second;
    std::string note;
    if (reply.kind == cache::RegionStore::GetReply::Kind::value) {
        const std::span<const std::byte> blob = bytes_of(reply.value);
        const std::optional<shm::CacheValueView> value = shm::parse_cache_value(blob);
        if (!value) {
            note = "an unreadable value in Redis";
        } else if (std::string_view(reinterpret_cast<const char*>(value->query.data()), value->query.size()) !=
                   f.query) {
            note = "Redis holds the key for another query";
        } else if (value->expires_unix_ms <= wall_now_ms()) {
            note = "the Redis value expired";
        } else if (!service_.vouched()) {
            note = service_.not_vouched_reason();
        } else if (!service_.fences().admits_now(f.key, value->floor_lsn)) {
            context.count(shm::Counter::cache_fills_fenced);
            note = "the Redis value is older than an invalidation of the key";
        } else if (auto chunks = cache::answer_from_value(blob, "cache:redis",
                                                          "cache:redis: " + service_.settings().region + "'s Redis",
                                                          service_.settings().max_chunk_bytes)) {
            const auto remaining = std::chrono::milliseconds(value->expires_unix_ms - wall_now_ms());
            if (service_.hot().insert(f.key, blob, remaining)) context.count(shm::Counter::cache_fills);
            context.count(shm::Counter::cache_hits_redis);
            answer_waiters(flight, *chunks, context, true);
            return;
        } else {
            note = "an unreadable value in Redis";
        }
    } else if (reply.kind == cache::RegionStore::GetReply::Kind::nil) {
        note = "not in Redis";
    } else {
        context.count(shm::Counter::cache_redis_errors);
        note = service_.settings().region + "'s Redis failed: " + reply.reason;
    }
    context.count(shm::Counter::cache_misses);
    f.redis_note = std::move(note);
    lead_to_database(fk, context);
}

void CachedReadHandler::lead_to_database(const std::string& fk, DispatchContext& context) {
    for (;;) {
        auto flight = flights_.find(fk);
        if (flight == flights_.end()) return;
        Flight& f = flight->second;
        std::uint64_t candidate = f.leader;
        if (candidate == 0) {
            if (f.waiters.empty()) {
                flights_.erase(flight);
                return;
            }
            candidate = f.waiters.front();
            f.waiters.erase(f.waiters.begin());
        }
        f.leader = 0;
        const bool ran = context.with_request(candidate, [&](PendingRequest& r) {
            f.leader = candidate;
            read_database(r, context, false);
        });
        if (ran) return;
        // `candidate` had ended: the next waiter leads (the loop re-finds the flight).
    }
}

void CachedReadHandler::read_database(PendingRequest& request, DispatchContext& context, bool primary) {
    const std::string fk = flight_key(request);
    auto flight = flights_.find(fk);
    const bool leads = flight != flights_.end() && flight->second.leader == request.ticket;

    request.job.kind = pg::Job::Kind::read;
    request.job.may_retry = !request.resent;
    request.job.want_floor = true;
    // A fenced key must not be read from a replica that has not replayed its
    // invalidation: the guard refuses it (Outcome::behind) and we wait.
    request.job.min_lsn = service_.fences().required_lsn(request.cached.key);
    const Route route = context.route(primary ? RouteKind::read_primary : RouteKind::read_local, request.tried);
    if (!route.ok()) {
        if (route.awaiting_verdict) {
            context.park(request, route.error);
            return;
        }
        context.answer_error(request, route.error);
        if (leads) {
            // The same route fails for every waiter: they get the same error.
            const std::string error = route.error;
            Flight f = std::move(flight->second);
            flights_.erase(flight);
            for (const std::uint64_t t : f.waiters)
                context.with_request(t, [&](PendingRequest& r) { context.answer_error(r, error); });
        }
        return;
    }
    if (primary)
        request.cached.phase = CachedState::Phase::primary;
    else if (request.cached.phase != CachedState::Phase::waited)
        request.cached.phase = CachedState::Phase::database;
    std::string reason = "cache miss";
    if (leads && !flight->second.redis_note.empty()) reason += " (" + flight->second.redis_note + ")";
    request.job.route_reason = reason + "; " + route.reason;
    if (leads) flight->second.started = service_.fences().start(request.cached.key);
    request.tried.clear();  // each phase routes afresh; the one re-send is tracked by `resent`
    context.submit(request, route.candidates.front(), true);
}

void CachedReadHandler::on_failure(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
    if (context.draining() || std::chrono::steady_clock::now() >= request.deadline || request.streamed) return;
    if (outcome.behind) {
        if (request.cached.phase == CachedState::Phase::database) {
            // The replica has not replayed the key's invalidation yet: wait for
            // it as read_consistent does, then the primary.
            request.cached.phase = CachedState::Phase::waited;
            const auto until =
                std::min(request.deadline, std::chrono::steady_clock::now() + context.settings().consistency_max_wait);
            context.wait_for_lsn(request, request.endpoint, request.job.min_lsn, until, false);
            return;
        }
        read_database(request, context, true);
        return;
    }
    if (!outcome.retry_elsewhere || request.resent) return;
    request.resent = true;
    request.tried.push_back(request.endpoint);
    read_database(request, context, request.cached.phase == CachedState::Phase::primary);
}

void CachedReadHandler::on_wait_over(PendingRequest& request, DispatchContext& context) {
    read_database(request, context, true);
}

void CachedReadHandler::maybe_fill(const PendingRequest& request, const pg::Outcome& outcome, const Flight& flight,
                                   DispatchContext& context) {
    if (!service_.vouched() || outcome.floor_lsn == 0) return;
    const auto ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(request.cached.ttl);
    cache::ValueFacts facts;
    facts.floor_lsn = outcome.floor_lsn;
    facts.token_lsn = outcome.lsn;
    facts.system_id = context.system_identifier();
    facts.expires_unix_ms = wall_now_ms() + static_cast<std::uint64_t>(ttl_ms.count());
    facts.query = bytes_of(flight.query);
    const auto blob = cache::value_from_answer(outcome.chunks, facts, service_.hot().max_value_bytes());
    if (!blob) return;  // an error, or too large to cache
    if (!service_.fences().admits(flight.key, flight.started, outcome.floor_lsn)) {
        context.count(shm::Counter::cache_fills_fenced);
        return;
    }
    if (service_.hot().insert(flight.key, *blob, request.cached.ttl)) context.count(shm::Counter::cache_fills);
    if (cache::RegionStore* own = service_.own_store(); own != nullptr && own->healthy())
        own->set(flight.key, *blob, ttl_ms);
}

void CachedReadHandler::on_answer(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
    auto flight = flights_.find(flight_key(request));
    if (flight == flights_.end() || flight->second.leader != request.ticket) return;
    if (outcome.ok && !request.streamed) maybe_fill(request, outcome, flight->second, context);
    // A streamed answer cannot be replayed, and a timeout was the leader's own
    // deadline: the waiters read for themselves then.
    if (request.streamed || (!outcome.ok && std::chrono::steady_clock::now() >= request.deadline)) {
        restart_waiters(flight, context);
        return;
    }
    answer_waiters(flight, outcome.chunks, context, false);
}

void CachedReadHandler::on_job_cancelled(PendingRequest& request, DispatchContext& context) {
    auto flight = flights_.find(flight_key(request));
    if (flight == flights_.end() || flight->second.leader != request.ticket) return;
    flight->second.leader = 0;
    lead_to_database(flight->first, context);
}

void CachedReadHandler::answer_waiters(Flights::iterator flight, const std::vector<std::vector<std::byte>>& chunks,
                                       DispatchContext& context, bool with_leader) {
    Flight f = std::move(flight->second);
    flights_.erase(flight);
    if (with_leader) f.waiters.insert(f.waiters.begin(), f.leader);
    for (const std::uint64_t t : f.waiters) {
        context.with_request(t, [&](PendingRequest& r) {
            if (with_leader && t != f.leader) context.count(shm::Counter::cache_hits_redis);
            context.answer(r, chunks);
        });
    }
}

void CachedReadHandler::restart_waiters(Flights::iterator flight, DispatchContext& context) {
    Flight f = std::move(flight->second);
    flights_.erase(flight);
    for (const std::uint64_t t : f.waiters)
        context.with_request(t, [&](PendingRequest& r) {
            r.cached.phase = CachedState::Phase::fresh;
            begin(r, context);
        });
}

}  // namespace regiond::daemon

// cached_read (API.md, issue 9): this host's hot cache, then the region's
// Redis, then the local replica, with one database read for all the
// concurrent misses of a key on this host.
//
//   client: lookup in the segment (no message) -- hit: cache:local
//   daemon: hot cache again (a fill may have landed since) -- cache:local
//        -> a read of the same key and query in flight? wait for its answer
//           (coalesced: one database query for all of them)
//        -> the region's Redis (when vouched, see CacheService): a value for
//           this exact query, not expired, not older than the key's fence
//           -- cache:redis, and the hot cache is filled
//        -> the local replica (the read_local route), read-only as every
//           read, with a floor guard: the replica's replay LSN read right
//           before the read. When the key is fenced, the guard is also a
//           minimum (Job::min_lsn): a replica behind the fence is waited for
//           up to consistency.max_wait, then the primary answers.
//           The answer is stored (hot cache and Redis, with the ttl) only if
//           the fences admit it (Fences::admits).
//
// A flight is keyed by the key and the query bytes: a request for another
// query under the same key is not served rows it did not ask for.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/cache/cache_service.hpp"
#include "daemon/operation_handler.hpp"

namespace regiond::daemon {

class CachedReadHandler final : public OperationHandler {
public:
    explicit CachedReadHandler(cache::CacheService& service) : service_(service) {}

    void start(PendingRequest& request, DispatchContext& context) override;
    void on_failure(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) override;
    void on_wait_over(PendingRequest& request, DispatchContext& context) override;
    void on_answer(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) override;
    void on_job_cancelled(PendingRequest& request, DispatchContext& context) override;

    /// Flights in progress (tests, status).
    std::size_t flights() const noexcept { return flights_.size(); }

private:
    struct Flight {
        std::uint64_t leader = 0;            ///< ticket of the request whose job reads
        std::vector<std::uint64_t> waiters;  ///< tickets of the coalesced requests
        /// The fences when the flight began, then when its database read was
        /// sent: a request joins only while they are unchanged (an answer read
        /// before an invalidation is not for a request that came after it).
        cache::FillStart started;
        std::string key;
        std::string query;       ///< shm::encode_cache_query bytes
        std::string redis_note;  ///< why Redis did not answer (for route_reason)
    };
    using Flights = std::map<std::string, Flight>;

    static std::string flight_key(const PendingRequest& request);
    void begin(PendingRequest& request, DispatchContext& context);
    void on_redis(const std::string& fk, const cache::RegionStore::GetReply& reply, DispatchContext& context);
    /// The flight's read goes to the database, by its leader or, when the
    /// leader is gone, the first waiter still waiting.
    void lead_to_database(const std::string& fk, DispatchContext& context);
    void read_database(PendingRequest& request, DispatchContext& context, bool primary);
    /// Answers every waiter of the flight (and its leader, when it is held
    /// too) with `chunks` and ends the flight.
    void answer_waiters(Flights::iterator flight, const std::vector<std::vector<std::byte>>& chunks,
                        DispatchContext& context, bool with_leader);
    /// The flight ends without an answer for its waiters: each starts over.
    void restart_waiters(Flights::iterator flight, DispatchContext& context);
    void maybe_fill(const PendingRequest& request, const pg::Outcome& outcome, const Flight& flight,
                    DispatchContext& context);

    cache::CacheService& service_;
    Flights flights_;
    /// Redis callbacks check it: after the handler is gone they do nothing.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace regiond::daemon

// One handler per operation (shm::Op): how a request of that kind is routed,
// what job it becomes, and what happens when that job fails. The Dispatcher
// owns the request table, counting, cancel and streaming; a handler only
// decides: read_local/read_primary (ReadHandler), write (WriteHandler),
// read_consistent (ConsistentReadHandler: a wait for the replica's replay LSN),
// cached_read (CachedReadHandler: the cache tiers before the database).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/backends.hpp"
#include "daemon/client_session.hpp"
#include "daemon/consistent_plan.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/pg/endpoint.hpp"
#include "daemon/routing.hpp"
#include "shm/codec.hpp"
#include "shm/state_layout.hpp"

namespace regiond::daemon {

/// What the dispatcher and its handlers read from the configuration: a copy made
/// at start and at every reload (never a reference to the live Config).
struct DispatchSettings {
    RoutingSettings routing;
    std::chrono::nanoseconds request_timeout = std::chrono::seconds(30);            ///< timeout_ms 0
    std::chrono::nanoseconds max_request_timeout = std::chrono::minutes(5);         ///< caps timeout_ms
    std::uint64_t max_result = 0;                                                   ///< Job::max_result
    std::chrono::nanoseconds consistency_max_wait = std::chrono::milliseconds(50);  ///< read_consistent (next)
    std::chrono::nanoseconds cache_default_ttl = std::chrono::seconds(60);          ///< cached_read (next)

    static DispatchSettings from(const config::Config& config);
};

/// read_consistent's part of a request (ConsistentReadHandler).
struct ConsistentState {
    bool checked = false;        ///< the token was parsed and matched the cluster
    bool as_read_local = false;  ///< an empty token
    std::uint64_t token_lsn = 0;
    std::optional<std::chrono::steady_clock::time_point> waiting_since;  ///< first wait for the replica
    std::chrono::steady_clock::time_point released_at;                   ///< when that wait ended
    ConsistentKind kind = ConsistentKind::primary;                       ///< where it was sent last
    bool fresh_sample = false;  ///< a replay LSN polled after the request arrived was seen
};

/// cached_read's part of a request (CachedReadHandler).
struct CachedState {
    std::string key;
    std::chrono::nanoseconds ttl{0};  ///< the request's ttl, or cache.default_ttl
    std::string query;                ///< shm::encode_cache_query(sql, params): the flight's identity
    enum class Phase : std::uint8_t { fresh, redis, database, waited, primary } phase = Phase::fresh;
};

/// One request, from when the dispatcher received it until its last job ended.
struct PendingRequest {
    std::uint64_t ticket = 0;  ///< unique for the daemon's life
    ClientId client = 0;
    std::uint64_t request_id = 0;
    shm::Op op = shm::Op::read_local;
    std::chrono::steady_clock::time_point deadline;
    pg::Job job;        ///< what is sent (kept for a re-send)
    std::string token;  ///< read_consistent's token, as the client sent it
    ConsistentState consistent;
    CachedState cached;
    std::vector<std::string> invalidate_keys;  ///< write: the cache keys it invalidates
    std::vector<std::size_t> tried;            ///< endpoint indices, in order

    // The job now on an endpoint.
    bool job_running = false;
    std::size_t endpoint = 0;
    pg::JobId job_id = 0;
    bool paused = false;  ///< its partial found the client's window full

    bool resent = false;    ///< the request's one re-send is spent
    bool streamed = false;  ///< a chunk reached the client: never sent again
    bool answered = false;  ///< the client has its answer (or forgot the request)

    /// Its text is being classified off the loop (a long text: see
    /// ClassifierWorker); the handler starts when that is done.
    bool classifying = false;

    // Parked: waiting for an endpoint's first health verdict (Route::awaiting_verdict).
    bool parked = false;
    std::string parked_error;  ///< the answer if the deadline comes first
    TimerHandle parked_deadline;
    /// Parked on the LSN waiters of endpoint lsn_wait_endpoint until its replay
    /// LSN reaches lsn_wait (read_consistent); the timer then means "wait over".
    bool lsn_waiting = false;
    std::size_t lsn_wait_endpoint = 0;
    std::uint64_t lsn_wait = 0;
    std::uint64_t recheck_at_poll = 0;  ///< released at this poll number of that endpoint too (0: no)

    /// Held by its handler while something other than a job works for it (a
    /// Redis GET, a concurrent miss of the same key); the handler resumes it
    /// with DispatchContext::with_request. At its deadline it is answered
    /// with held_error.
    bool held = false;
    std::string held_error;
    TimerHandle held_deadline;
};

/// What a handler may ask of the dispatcher.
class DispatchContext {
public:
    virtual ~DispatchContext() = default;
    virtual const DispatchSettings& settings() const = 0;
    /// SIGTERM: nothing new is started (re-sends included).
    virtual bool draining() const = 0;
    virtual Route route(RouteKind kind, std::span<const std::size_t> exclude) = 0;
    virtual const BackendEndpoint& endpoint(std::size_t index) const = 0;
    /// Sends the request's job to endpoint `index`. `keep_job`: keep a copy for
    /// a re-send (reads); otherwise the job is handed over (writes).
    virtual void submit(PendingRequest& request, std::size_t index, bool keep_job) = 0;
    /// Answers at once with an error; the request ends when the handler returns.
    virtual void answer_error(PendingRequest& request, std::string_view message) = 0;
    /// No route yet, but one may appear with an endpoint's first verdict: the
    /// request waits, and start() runs again at the next health change; at the
    /// request's deadline it is answered with `error` instead.
    virtual void park(PendingRequest& request, std::string_view error) = 0;
    /// Parks the request until endpoint `index`'s polled replay LSN reaches
    /// `lsn` (start() runs again then) or `until` passes (on_wait_over runs).
    /// While anyone waits on an endpoint its replay LSN is polled back to back.
    /// `recheck`: start() also runs at the first LSN polled after now (a poll
    /// sent after this call), whatever its value.
    virtual void wait_for_lsn(PendingRequest& request, std::size_t index, std::uint64_t lsn,
                              std::chrono::steady_clock::time_point until, bool recheck) = 0;
    /// Answers at once with encoded chunks (head first; the last flagged last).
    virtual void answer(PendingRequest& request, std::vector<std::vector<std::byte>> chunks) = 0;
    /// The handler keeps the request waiting for something that is not a job
    /// (PendingRequest::held); at its deadline it is answered with `error`.
    virtual void hold(PendingRequest& request, std::string_view error) = 0;
    /// Runs `fn` on a held request that still waits for its answer (taking it
    /// off hold first); afterwards the request ends if nothing runs for it.
    /// False, without calling `fn`, when the request is gone, answered or not
    /// held. Not to be called on the request a handler callback is running for.
    virtual bool with_request(std::uint64_t ticket, const std::function<void(PendingRequest&)>& fn) = 0;
    /// The request has not ended: a job still runs for it, or it waits.
    virtual bool exists(std::uint64_t ticket) const = 0;
    /// Every endpoint's health, lag, RTT and replay LSN (index = endpoint index).
    virtual std::span<const EndpointState> endpoint_states() = 0;
    /// The cluster's system identifier (tokens carry it); 0 until an endpoint connected.
    virtual std::uint64_t system_identifier() = 0;
    virtual void count(shm::Counter counter) = 0;
    /// A read_consistent waited this long for the local replica and was served there.
    virtual void record_consistent_wait(std::chrono::nanoseconds waited) = 0;
    /// Parks the request when the route awaits a verdict, else answers its
    /// error. Precondition: !route.ok().
    void no_route(PendingRequest& request, const Route& route) {
        if (route.awaiting_verdict)
            park(request, route.error);
        else
            answer_error(request, route.error);
    }
};

class OperationHandler {
public:
    virtual ~OperationHandler() = default;
    /// The request is registered and counted, its deadline and job (SQL,
    /// parameters, deadline, max_result) filled in. Either submit a job or
    /// answer_error; otherwise the dispatcher answers "internal error".
    virtual void start(PendingRequest& request, DispatchContext& context) = 0;
    /// A job of the request failed (not cancelled, the client still waits). The
    /// handler may submit it again; if it does not, the outcome is the answer.
    virtual void on_failure(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
        (void)request;
        (void)outcome;
        (void)context;
    }
    /// A wait_for_lsn() ran out. Default: the request is answered with a timeout.
    virtual void on_wait_over(PendingRequest& request, DispatchContext& context) {
        context.answer_error(request, "timed out waiting for a replica");
    }
    /// The request's job ended cancelled (its client cancelled it or went
    /// away): nobody gets its outcome. A handler whose job worked for other
    /// requests too (a cache fill) hands the work on.
    virtual void on_job_cancelled(PendingRequest& request, DispatchContext& context) {
        (void)request;
        (void)context;
    }
    /// The final outcome of the request (not called for a cancelled one).
    virtual void on_answer(PendingRequest& request, const pg::Outcome& outcome, DispatchContext& context) {
        (void)request;
        (void)outcome;
        (void)context;
    }
};

}  // namespace regiond::daemon

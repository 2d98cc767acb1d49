// CONTRACT between the daemon core (client sessions, routing) and the PostgreSQL
// backend (daemon/pg/). The core only uses what is declared here; the backend
// implements it in daemon/pg/*.cpp.
//
// An Endpoint is one PostgreSQL server (the primary or one replica) with a pool
// of non-blocking libpq connections in pipeline mode, driven by the daemon's
// EventLoop. Everything runs on the loop thread: no locks, and every callback is
// invoked on the loop thread, exactly once per submitted job, never re-entrantly
// from inside submit().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/event_loop.hpp"
#include "daemon/pg/lag_tracker.hpp"
#include "shm/codec.hpp"

namespace regiond::daemon::pg {

class StatementClassifier;
struct Classification;

enum class Role : std::uint8_t { primary, replica };

struct EndpointOptions {
    std::string region;  ///< e.g. "eu-west-1"
    Role role = Role::replica;
    std::string conninfo;      ///< libpq conninfo or URI (may hold secrets: never log it)
    std::string display_name;  ///< safe for logs/status: "host:port", never the conninfo
    unsigned pool_size = 20;
    std::size_t max_queue = 4096;  ///< jobs waiting for a connection; beyond: immediate error
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds check_interval{500};  ///< health probe / RTT / LSN poll period
    std::chrono::milliseconds lag_poll_interval{100};
    unsigned down_after = 3;                ///< consecutive failures that mark the endpoint down
    unsigned up_after = 2;                  ///< consecutive successes that mark it up again
    std::size_t max_chunk_bytes = 1 << 19;  ///< response chunk size (ring max payload)
    /// Shared by every endpoint of a daemon (its cache is keyed by SQL text);
    /// null: the endpoint makes its own.
    std::shared_ptr<StatementClassifier> classifier;
};

/// A read or write to run. The SQL and parameters are sent with the extended
/// protocol (PQsendQueryParams/PQsendQueryPrepared): parameters are never
/// spliced into SQL text.
struct Job {
    enum class Kind : std::uint8_t { read, write } kind = Kind::read;
    std::string sql;
    std::vector<std::optional<std::string>> params;  ///< nullopt = SQL NULL
    std::chrono::steady_clock::time_point deadline;  ///< past it: error "timed out after N ms"
    /// Encoded response bytes (rows) beyond which the job fails with "... exceeds
    /// daemon.max_result (N)" and is cancelled on the server. 0: no limit.
    std::uint64_t max_result = 0;
    /// The request's one re-send (docs/design.md, "Retries") is still unused. The
    /// endpoint may spend it itself (the same read again on another connection
    /// when its connection was lost while the probe still answers); a job
    /// submitted with false is never sent twice once it may have executed.
    bool may_retry = true;
    /// Set when the job's text was classified already as its kind (by the
    /// dispatcher's ClassifierWorker, off the loop, for a long text); else
    /// the endpoint classifies it when it is submitted.
    std::shared_ptr<const Classification> classification;
    /// A read on a replica is answered only if the replica's replay LSN was at
    /// least this when the read ran; else Outcome::behind. 0: no condition.
    std::uint64_t min_lsn = 0;
    /// Written into the response head (rgd_route_reason).
    std::string route_reason;
};

/// Identifies a submitted job for resume() and cancel(); never reused.
using JobId = std::uint64_t;

/// The end of a job: the chunks of the response not yet handed out through
/// JobCallbacks::partial (at least the last one, flagged last), encoded with
/// shm::ResponseEncoder(max_chunk_bytes). served_by is "<region>/<primary|replica>".
/// For a write: affected rows and the token "SYSTEMID/LSN" (LSN read after the
/// commit, in the same round trip). Errors: status error, SQLSTATE for SQL
/// errors, a message that says what to do (never containing the conninfo).
struct Outcome {
    std::vector<std::vector<std::byte>> chunks;
    bool ok = false;
    /// The job failed because of its endpoint (marked down, unreachable, its
    /// connection lost and the probe confirmed it, queue full), it streamed
    /// nothing, and it is a read whose re-send was not spent: the dispatcher may
    /// send it to the next endpoint of its route. Never set for a write, a SQL
    /// error, a timeout, or a statement that ended its own backend.
    bool retry_elsewhere = false;
    /// The job ended because cancel() was called (its chunks hold an error).
    bool cancelled = false;
    /// A read with Job::min_lsn found the replica behind it: nothing was delivered.
    bool behind = false;
    /// The LSN of the answer's token (0: none).
    std::uint64_t lsn = 0;
};

using Completion = std::function<void(Outcome&&)>;

/// How a job's answer leaves the endpoint.
struct JobCallbacks {
    /// Rows streamed while the result is still arriving (single-row mode):
    /// chunks not flagged last, in order, head chunk first. Once it has been
    /// called, the job is never sent again. Returns false when the receiver
    /// cannot take more now (the client's window is full): the endpoint stops
    /// reading that job's result (PostgreSQL waits, the job keeps its
    /// connection) until resume(id). Empty: the response is buffered whole and
    /// delivered by `done` (tests; bounded by Job::max_result).
    std::function<bool(std::vector<std::byte>&&)> partial;
    /// Exactly once, on the loop, never from inside submit(): the job has ended
    /// on the server (answered, failed, or cancelled and stopped there).
    Completion done;
};

/// A snapshot for the router, the state segment and regionctl.
struct Health {
    bool healthy = false;  ///< after hysteresis
    bool ever_connected = false;
    std::uint32_t rtt_us = 0;      ///< smoothed round trip of the probe
    std::uint64_t replay_lsn = 0;  ///< replica: pg_last_wal_replay_lsn(); primary: current WAL LSN
    std::uint64_t lag_bytes = 0;   ///< replica only (needs the primary's LSN: see LagTracker)
    std::uint64_t lag_ms = 0;      ///< replica only; 0 when caught up, even on an idle primary
    std::uint32_t pool_in_use = 0;
    std::uint32_t pool_size = 0;
    std::uint64_t system_identifier = 0;  ///< primary: pg_control_system(); 0 until known
    double replay_rate = 0;               ///< replica: bytes per second replayed, smoothed; 0 unknown
    std::string last_error;               ///< "" when none; safe to show (no secrets)
};

class Endpoint {
public:
    static std::unique_ptr<Endpoint> create(EventLoop& loop, EndpointOptions options);
    virtual ~Endpoint() = default;

    /// Opens the pool's connections and starts the health probe.
    virtual void start() = 0;
    /// Queues a job. `callbacks.done` runs exactly once (on the loop, later).
    virtual JobId submit(Job job, JobCallbacks callbacks) = 0;
    JobId submit(Job job, Completion done) { return submit(std::move(job), JobCallbacks{{}, std::move(done)}); }
    /// The receiver of a paused job's partial chunks has room again.
    /// No-op for an unknown or finished job.
    virtual void resume(JobId id) = 0;
    /// Stops a job whose answer nobody wants any more (the client cancelled it,
    /// went away, or its deadline passed on the client's side). A queued job is
    /// answered at once; a job sent to the server is cancelled there, and
    /// `done` runs (with Outcome::cancelled) when the server has stopped
    /// working on it, so whoever counts in-flight work counts it until then.
    /// No-op for an unknown or finished job.
    virtual void cancel(JobId id) = 0;
    virtual const Health& health() const = 0;
    virtual const EndpointOptions& options() const = 0;
    /// Called after each probe or state change (the core republishes the state segment).
    virtual void on_health_change(std::function<void()> fn) = 0;
    /// Replica lag (DESIGN.md "Lag"): the core gives the primary and every replica
    /// the same tracker. The primary endpoint records (time, pg_current_wal_lsn())
    /// samples every lag_poll_interval; each replica reads its replay LSN every
    /// lag_poll_interval and asks the tracker for its lag.
    virtual void set_lag_tracker(std::shared_ptr<LagTracker> tracker) = 0;
    /// Stops accepting jobs; jobs in flight finish; queued jobs are answered with
    /// `reason` as an error. `drained` runs once nothing is in flight.
    virtual void drain(std::string reason, std::function<void()> drained) = 0;
    virtual std::size_t in_flight() const = 0;
    /// SIGHUP: new health settings (EndpointOptions' connect_timeout,
    /// check_interval, down_after, up_after), in effect from the next probe tick
    /// and the next connect of every connection.
    virtual void update_health(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds check_interval,
                               unsigned down_after, unsigned up_after) = 0;
    /// While fast, the replay LSN is polled back to back (read_consistent waiters).
    virtual void set_lsn_watch(bool fast) = 0;
    /// Called on the loop after every replay-LSN poll of a replica.
    virtual void on_replay_lsn(std::function<void(std::uint64_t lsn)> fn) = 0;
};

/// LSN text ("16/B374D848") <-> integer. parse_lsn returns nullopt on bad input.
std::optional<std::uint64_t> parse_lsn(std::string_view text);
std::string format_lsn(std::uint64_t lsn);

}  // namespace regiond::daemon::pg

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
    /// read_consistent: on a replica, the read's result is delivered only if
    /// the replica had replayed at least this LSN when the read ran (a guard
    /// `select pg_last_wal_replay_lsn()` runs right before it, in the same
    /// pipeline segment and implicit transaction, on the same connection).
    /// Below it: no row is streamed, Outcome::behind, ok=false,
    /// retry_elsewhere=false, error "replica at <lsn> is behind token <lsn>".
    /// Such reads are never batched. 0: none. Ignored on the primary.
    std::uint64_t min_lsn = 0;
    /// The cache's fence check: Outcome::floor_lsn of a successful read is a
    /// LOWER bound of the snapshot the read saw. On a replica the guard
    /// `select pg_last_wal_replay_lsn()` runs right before the read (as for
    /// min_lsn, without a threshold when min_lsn is 0); on the primary
    /// `select pg_current_wal_insert_lsn()` does, and the floor is that value
    /// minus one (see Outcome::floor_lsn). Each in its own implicit transaction
    /// right before the read's, in the same flush, on the same connection.
    /// Such reads are never batched. Ignored for writes.
    bool want_floor = false;
    /// A write whose cache keys these are: `INSERT INTO regiond.invalidations
    /// (keys, origin) VALUES ($1, $2)` is appended to the write's own implicit
    /// transaction (same round trip), after its statements. If that insert
    /// fails (the table is missing: scripts/schema.sql creates it), the whole
    /// write is rolled back and the answer says so: a write that asked for
    /// invalidation never commits without its durable record. A key must not
    /// contain a NUL byte and must be valid UTF-8 (PostgreSQL text), or the
    /// write is refused before anything is sent. Empty: no row. Ignored for reads.
    std::vector<std::string> invalidate_keys;
    /// The row's `origin` column ("<region>/<host id>"); only with invalidate_keys.
    std::string origin;
    /// Why the request went to this endpoint; written into the response
    /// head's route_reason (success and error answers alike). "" when none.
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
    /// A replica read with Job::min_lsn found the replica's replay LSN below
    /// it (its chunks hold the error; nothing was streamed). Not retried here.
    bool behind = false;
    /// The token LSN of a successful answer (0 otherwise): a write's LSN read
    /// after its commit; a replica read's pg_last_wal_replay_lsn() read after
    /// the read in the same segment (an upper bound of what it saw); a primary
    /// read's pg_current_wal_insert_lsn() after the read in the same segment.
    /// The trailer's token is "SYSTEMID/LSN" whenever this is set and the
    /// system identifier is known.
    std::uint64_t lsn = 0;
    /// A successful read with Job::want_floor (or a replica read with
    /// min_lsn): a LOWER bound of the snapshot it read at, 0 when unknown.
    /// Replica: its replay LSN read right before the read (on the same
    /// connection, the replay LSN only moves forward; the read's snapshot is
    /// taken after the guard answered, so it holds every commit replayed up to
    /// there). Primary: pg_current_wal_insert_lsn() read right before the
    /// read, minus one. Why minus one: a writer's token T is the insert LSN
    /// read after its commit became visible, and the insert LSN only grows, so
    /// a value G > T read by the guard proves the guard ran after the commit
    /// was visible, hence before the read's snapshot: floor = G - 1 >= T. G == T
    /// proves nothing (no WAL between the commit record and the guard, which
    /// may have run before the commit's visibility). So `floor_lsn >= T` means
    /// the read saw that write, on either kind of endpoint.
    std::uint64_t floor_lsn = 0;
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
    /// Replica: replay progress in bytes per second, smoothed over the last
    /// ~1 s of LSN polls (for a catch-up prediction); 0 unknown (or idle).
    double replay_rate = 0;
    std::string last_error;  ///< "" when none; safe to show (no secrets)
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
    /// fast: the probe polls the replay LSN back to back (the next poll as soon
    /// as the previous one answered, at least 1 ms apart) instead of every
    /// lag_poll_interval; for read_consistent waiters. false: back to normal.
    virtual void set_lsn_watch(bool fast) = 0;
    /// Called on the loop after every successful LSN poll of a replica (not only
    /// on a change) with its replay LSN. A pure LSN poll (no health change, no
    /// check) does not run the on_health_change callbacks.
    virtual void on_replay_lsn(std::function<void(std::uint64_t lsn)> fn) = 0;
    /// Stops accepting jobs; jobs in flight finish; queued jobs are answered with
    /// `reason` as an error. `drained` runs once nothing is in flight.
    virtual void drain(std::string reason, std::function<void()> drained) = 0;
    virtual std::size_t in_flight() const = 0;
    /// SIGHUP: new health settings (EndpointOptions' connect_timeout,
    /// check_interval, down_after, up_after), in effect from the next probe tick
    /// and the next connect of every connection.
    virtual void update_health(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds check_interval,
                               unsigned down_after, unsigned up_after) = 0;
};

/// LSN text ("16/B374D848") <-> integer. parse_lsn returns nullopt on bad input.
std::optional<std::uint64_t> parse_lsn(std::string_view text);
std::string format_lsn(std::uint64_t lsn);

}  // namespace regiond::daemon::pg

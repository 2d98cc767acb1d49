// One non-blocking libpq connection in pipeline mode, driven by the EventLoop.
//
// Lifecycle: connect() starts PQconnectStartParams; PQconnectPoll is driven by
// the socket's readiness (EPOLLIN/EPOLLOUT as libpq asks) and bounded by a loop
// timer (connect_timeout: libpq's own connect_timeout only applies to blocking
// connects). The startup packet carries the configured session settings
// (ConnectionSettings::startup_options, merged with any `options` of the
// conninfo), so they are the session's reset values and DISCARD ALL keeps them.
// Once connected the connection is switched to non-blocking pipeline mode, the
// server-reported parameters are remembered, and a setup segment is queued
// (system identifier); Works may be sent right away, pipelined behind it.
//
// A Work is a unit the owner sends as a list of Steps (commands and syncs). Its
// results come back in order: on_result() for each result of its commands (one
// PGRES_SINGLE_TUPLE per row for a step in single-row mode, then a zero-row
// PGRES_TUPLES_OK), on_finished() after its last sync, or on_connection_closed()
// if the connection closes first. Several Works may be in flight at once
// (pipelining); results of a Work that was abandon()ed are read and dropped, so
// they never reach the next Work.
//
// After every sync the connection checks that the session is as it was opened
// (docs/design.md, "Session isolation"): no transaction block left open (the
// command tags BEGIN/START TRANSACTION/SAVEPOINT, and PQtransactionStatus when
// the pipeline is empty: libpq reports ACTIVE while commands are queued), and
// the server-reported parameters (TimeZone, DateStyle, ...) unchanged. If not,
// the connection is closed (CloseCause::reset) once the Work that owns the sync
// has its results; the Works behind it were not at fault.
//
// A result status the daemon does not handle (COPY in any direction, or
// anything unknown) is handed to its Work and the connection is closed at once
// (CloseCause::reset, culprit that Work): libpq would return COPY_OUT forever.
//
// Reading is bounded per loop pass (kRowsPerPass rows or kBytesPerPass bytes of
// single-row results): beyond it the socket is taken off EPOLLIN and a deferred
// continuation parses what libpq has buffered, so one large result never
// stalls the loop and libpq never buffers more than one socket read ahead.
// pause() stops reading altogether (PostgreSQL then waits on a full socket)
// until resume().
//
// Commands go through a per-connection prepared-statement cache (LRU,
// StatementCache): first use sends Parse (PQsendPrepare) and Execute
// (PQsendQueryPrepared) in the same pipeline, later uses Execute only.
//
// Callbacks (Work and Listener) may call back into this Connection (send,
// abandon, pause, close) but must not destroy it: the owner destroys
// connections from a deferred call.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/event_loop.hpp"
#include "daemon/pg/statement_cache.hpp"

namespace regiond::daemon::pg {

struct PgResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

class Work;

enum class CloseCause : std::uint8_t {
    lost,   ///< the network or the server ended it (or a connect failed)
    reset,  ///< the daemon closed it on purpose (a cancel, a guard, an unhandled result)
};

/// Why a connection closed under a Work.
struct CloseInfo {
    std::string why;  ///< names the endpoint, safe to show
    CloseCause cause = CloseCause::lost;
    /// reset: the Work whose own result or statement caused it (nullptr: none).
    const Work* culprit = nullptr;
    /// The first live Work in the pipeline at the close (it may have been
    /// executing); the Works behind it had not started.
    const Work* head = nullptr;
    /// This Work's results were all in (a batched Work waiting for its batch's
    /// shared sync).
    bool complete = false;
    /// Closed because the batch's sync showed changed session state: a batched
    /// Work should be sent again on its own (not in a batch).
    bool batch_violation = false;
};

class Work {
public:
    virtual ~Work() = default;
    /// A result (not PGRES_PIPELINE_SYNC, never null) of the command sent with
    /// `tag`; the Work may keep it. For a command whose Parse failed, the Parse's
    /// error comes first, then the command's PGRES_PIPELINE_ABORTED. An
    /// unhandled status (PGRES_COPY_*, ...) is delivered too, and the connection
    /// closes right after with this Work as culprit.
    virtual void on_result(std::size_t tag, PgResultPtr result) = 0;
    /// The Work's last sync arrived (for a batched Work: the batch's sync):
    /// every result has been delivered.
    virtual void on_finished() = 0;
    /// The connection closed before on_finished.
    virtual void on_connection_closed(const CloseInfo& info) = 0;
    /// A batched Work: the result of the batch's shared trailer command
    /// (ConnectionSettings::batch_trailer_sql), read after every Work of the
    /// batch, before its sync; given to each Work whose results were all in.
    /// The Work records what it needs (it must not call into the connection).
    virtual void on_batch_result(const PGresult&) {}
};

struct Step {
    enum class Kind : std::uint8_t { command, sync } kind = Kind::command;
    std::string_view sql;
    /// Parameter values as text; nullptr = SQL NULL. Copied by libpq when sent.
    std::span<const char* const> values;
    /// Empty (all inferred by the server) or one type OID per value (0 = inferred).
    std::span<const Oid> types;
    std::size_t tag = 0;
    bool cacheable = true;
    /// Rows arrive one PGresult each (PQsetSingleRowMode), so a large result is
    /// never held whole by libpq.
    bool single_row = false;

    static Step command(std::string_view sql, std::span<const char* const> values, std::size_t tag,
                        std::span<const Oid> types = {}) {
        Step s;
        s.sql = sql;
        s.values = values;
        s.types = types;
        s.tag = tag;
        return s;
    }
    static Step sync() {
        Step s;
        s.kind = Kind::sync;
        return s;
    }
};

struct ConnectionSettings {
    std::string conninfo;      ///< may hold secrets: never logged or shown
    std::string display_name;  ///< "host:port", safe to show
    std::chrono::milliseconds connect_timeout{2000};
    std::size_t statement_cache_capacity = 256;
    /// Session settings for the startup packet, as `-c name=value` words (no
    /// spaces in values). Appended to the conninfo's own `options`, so these
    /// win for the settings they name.
    std::vector<std::pair<std::string, std::string>> startup_settings;
    /// "" or a command sent at the end of every batch, before its sync (a
    /// replica's `select pg_last_wal_replay_lsn()`: one token for the batch).
    std::string batch_trailer_sql;
};

/// The startup `options` value: the conninfo's own options (if any) followed by
/// `-c name=value` for each setting. nullopt when libpq cannot parse the
/// conninfo (its message may quote the conninfo: it is not passed on).
std::optional<std::string> merged_startup_options(const ConnectionSettings& settings);

/// Per loop pass, one connection parses at most this many single-row results
/// or this many bytes of their values before yielding to the other descriptors.
inline constexpr std::size_t kRowsPerPass = 256;
inline constexpr std::size_t kBytesPerPass = 64 * 1024;

class Connection {
public:
    enum class State : std::uint8_t { closed, connecting, ready };

    class Listener {
    public:
        virtual ~Listener() = default;
        virtual void on_connected(Connection& c) = 0;
        /// Connecting failed, or a ready connection was closed (its Works were
        /// told first). `why` names the endpoint and is safe to show.
        virtual void on_closed(Connection& c, const CloseInfo& info, bool was_ready) = 0;
        /// A Work finished (after its on_finished): the connection may take more.
        virtual void on_work_done(Connection& c) = 0;
    };

    Connection(EventLoop& loop, const ConnectionSettings& settings, Listener& listener);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Starts connecting (no-op unless closed). Results come through the Listener,
    /// never from inside this call.
    void connect();
    /// Sends a Work (state must be ready). A send failure closes the connection
    /// from a deferred call (the Work then gets on_connection_closed).
    /// `reset_after`: `DISCARD ALL` and a sync follow in the same flush (the
    /// Work leaves session state behind); the statement cache is cleared then.
    void send(Work& work, std::span<const Step> steps, bool reset_after = false);
    /// Adds a Work of commands only (no sync) to the open batch: every Work added
    /// until end_batch() shares one sync, so the server reads them in one go,
    /// answers them in one write, and the whole batch costs one send and one
    /// receive on each side instead of one per Work. Each Work finishes when the
    /// batch's sync arrives (so the session checks cover it). The batch is one
    /// implicit transaction: if one command fails, the Works after it get
    /// PGRES_PIPELINE_ABORTED (and nothing else) and must be sent again. Only for
    /// plain reads that change nothing.
    void send_batched(Work& work, std::span<const Step> steps);
    /// Ends the open batch (its sync) and flushes; a no-op without one.
    void end_batch();
    /// Stops delivering results to `work` (they are read and dropped; the Work's
    /// commands still count in depth() until they are). Returns true when no
    /// live Work is ahead of it in the pipeline (only internal segments or
    /// abandoned Works): it may be running on the server now.
    bool abandon(Work& work);
    /// True when no live Work is ahead of `work` (it may be running).
    bool at_head(const Work& work) const;
    /// Stops reading the socket (results stay in the kernel; the server blocks
    /// when its socket buffer is full) until resume().
    void pause();
    void resume();
    bool paused() const { return paused_; }
    /// Closes now: in-flight Works get on_connection_closed (unless abandoned),
    /// then the Listener gets on_closed (unless notify is false).
    void close(const std::string& why, CloseCause cause = CloseCause::lost, const Work* culprit = nullptr,
               bool notify = true);
    /// A cancel request object for the current session (PQgetCancel), owned by
    /// the caller (PQfreeCancel); nullptr when not ready.
    PGcancel* make_cancel() const;

    State state() const { return state_; }
    bool ready() const { return state_ == State::ready; }
    /// Works in flight (sent, not finished), abandoned ones included until
    /// their results have been read: the server still runs them.
    std::size_t depth() const { return depth_; }
    /// From pg_control_system() at connect; 0 until known (or if not readable).
    std::uint64_t system_identifier() const { return system_identifier_; }
    const std::string& setup_error() const { return setup_error_; }
    const ConnectionSettings& settings() const { return settings_; }
    /// For the next connect (SIGHUP).
    void set_connect_timeout(std::chrono::milliseconds timeout) { settings_.connect_timeout = timeout; }
    std::uint64_t generation() const { return generation_; }
    const StatementCache& statement_cache() const { return cache_; }
    /// When the server last sent anything on this connection (or it became
    /// ready): how long it has been silent.
    std::chrono::steady_clock::time_point last_input() const { return last_input_; }

private:
    struct Expect {
        enum class Kind : std::uint8_t { prepare, command, sync, internal_command, internal_sync };
        Kind kind;
        Work* work;  ///< nullptr: internal or abandoned
        std::size_t tag;
        std::uint64_t cache_id;  ///< prepare/command: the cached statement (0 = unnamed)
        /// sync: the Work's final one. command: the final command of a Work sent
        /// in a batch (it has no sync of its own: the batch's sync is shared).
        bool last = false;
        bool single_row = false;
        /// internal_sync: the shared sync of a batch.
        bool batch = false;
        /// sync: DISCARD ALL follows this Work: its session changes are expected
        /// and reset there (the parameter check runs at the DISCARD's sync).
        bool reset_follows = false;
        /// internal_command: the DISCARD ALL that resets the session.
        bool discard = false;
        /// Counts in depth_ (a Work's final expect, abandoned or not).
        bool counted = false;
    };

    void on_socket(std::uint32_t events);
    void watch_socket(std::uint32_t events);
    void poll_connect();
    void connect_failed(const std::string& why);
    void became_ready();
    /// "" when the session is UTF-8 with standard_conforming_strings on (what
    /// the statement classifier assumes), else why not.
    std::string wrong_session_basics() const;
    void remember_parameters();
    std::string changed_parameter() const;
    void send_setup();
    void send_deallocations();
    bool send_command(Work* work, const Step& step, Expect::Kind kind);
    bool flush();
    void update_interest();
    void read_results();
    void continue_reading();
    void on_sync(const Expect& e);
    void close_with(CloseInfo info, bool notify);
    void handle_result(const Expect& e, PgResultPtr r);
    void fail_deferred(const std::string& why);
    std::string describe_libpq_error(const char* what) const;

    EventLoop& loop_;
    ConnectionSettings settings_;
    Listener& listener_;
    PGconn* conn_ = nullptr;
    Watch watch_;  ///< declared after conn_: removed before PQfinish closes the fd
    TimerHandle connect_timer_;
    State state_ = State::closed;
    std::deque<Expect> expects_;
    /// Batched Works whose results are all in, waiting for the batch's sync.
    std::vector<Work*> batch_complete_;
    std::size_t depth_ = 0;
    StatementCache cache_;
    std::vector<std::uint64_t> to_deallocate_;
    std::vector<std::pair<const char*, std::string>> parameters_;  ///< reported at connect
    std::uint64_t system_identifier_ = 0;
    std::string setup_error_;
    /// Bumped on every close: a deferred call or a callback that finds another
    /// generation knows its connection is gone.
    std::uint64_t generation_ = 0;
    bool flush_pending_ = false;
    bool reading_ = false;
    bool batch_open_ = false;  ///< send_batched() since the last end_batch()
    bool paused_ = false;
    /// The per-pass budget ran out with results left in libpq's buffer: the
    /// socket is off EPOLLIN and a deferred continuation parses them.
    bool backlogged_ = false;
    bool continuation_pending_ = false;
    bool single_row_armed_ = false;  ///< PQsetSingleRowMode tried for the head command
    /// A command of the current segment reported BEGIN/START TRANSACTION/SAVEPOINT.
    bool transaction_tag_seen_ = false;
    /// A sync inside a Work (a write's first) showed changed session
    /// parameters: close (reset) once that Work has finished.
    bool reset_pending_ = false;
    std::string reset_pending_why_;
    std::chrono::steady_clock::time_point last_input_{};
    LoopScope scope_;  ///< last: deferred calls die with the connection
};

/// The first line of a libpq message, without the "FATAL:"-style prefixes and
/// without trailing newlines.
std::string clean_libpq_message(const char* message);

}  // namespace regiond::daemon::pg

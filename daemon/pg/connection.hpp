// One non-blocking libpq connection in pipeline mode, driven by the EventLoop.
//
// Lifecycle: connect() starts PQconnectStartParams; PQconnectPoll is driven by
// the socket's readiness (EPOLLIN/EPOLLOUT as libpq asks) and bounded by a loop
// timer (connect_timeout: libpq's own connect_timeout only applies to blocking
// connects). Once connected the connection is switched to non-blocking pipeline
// mode and a setup segment is queued (system identifier, server-side disconnect
// checks); Works may be sent right away, pipelined behind it.
//
// A Work is a unit the owner sends as a list of Steps (commands and syncs). Its
// results come back in order: on_result() for each result of its commands,
// on_finished() after its last sync, or on_connection_closed() if the connection
// dies first. Several Works may be in flight at once (pipelining); results of a
// Work that was abandon()ed are read and dropped, so they never reach the next
// Work.
//
// Commands go through a per-connection prepared-statement cache (LRU,
// StatementCache): first use sends Parse (PQsendPrepare) and Execute
// (PQsendQueryPrepared) in the same pipeline, later uses Execute only.
//
// Callbacks (Work and Listener) may call back into this Connection (send,
// abandon, close) but must not destroy it: the owner destroys connections from
// a deferred call.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/event_loop.hpp"
#include "daemon/pg/statement_cache.hpp"

namespace regiond::daemon::pg {

struct PgResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

class Work {
public:
    virtual ~Work() = default;
    /// A result (not PGRES_PIPELINE_SYNC, never null) of the command sent with
    /// `tag`; the Work may keep it. For a command whose Parse failed, the Parse's
    /// error comes first, then the command's PGRES_PIPELINE_ABORTED.
    virtual void on_result(std::size_t tag, PgResultPtr result) = 0;
    /// The Work's last sync arrived: every result has been delivered.
    virtual void on_finished() = 0;
    /// The connection closed before on_finished (`why` is safe to show).
    virtual void on_connection_closed(const std::string& why) = 0;
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
};

class Connection {
public:
    enum class State : std::uint8_t { closed, connecting, ready };

    class Listener {
    public:
        virtual ~Listener() = default;
        virtual void on_connected(Connection& c) = 0;
        /// Connecting failed, or a ready connection was lost (its Works were told
        /// first). `why` names the endpoint and is safe to show.
        virtual void on_closed(Connection& c, const std::string& why, bool was_ready) = 0;
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
    /// Sends a Work (state must be ready). The steps must end with a sync. A send
    /// failure closes the connection from a deferred call (the Work then gets
    /// on_connection_closed).
    void send(Work& work, std::span<const Step> steps);
    /// Adds a Work of commands only (no sync) to the open batch: every Work added
    /// until end_batch() shares one sync, so the server reads them in one go,
    /// answers them in one write, and the whole batch costs one send and one
    /// receive on each side instead of one per Work. The Work finishes when its
    /// last command's results are in. The batch is one implicit transaction: if
    /// one command fails, the Works after it get PGRES_PIPELINE_ABORTED (and
    /// nothing else) and must be sent again. Only for reads that change nothing.
    void send_batched(Work& work, std::span<const Step> steps);
    /// Ends the open batch (its sync) and flushes; a no-op without one.
    void end_batch();
    /// Stops delivering results to `work` (they are read and dropped). Returns
    /// true when no live Work is ahead of it in the pipeline (only internal
    /// segments or abandoned Works): it may be running on the server now, and
    /// only closing the connection stops it (and frees the connection).
    bool abandon(Work& work);
    /// Closes now: in-flight Works get on_connection_closed(why) (unless
    /// abandoned), then the Listener gets on_closed (unless notify is false).
    void close(const std::string& why, bool notify = true);

    State state() const { return state_; }
    bool ready() const { return state_ == State::ready; }
    /// Works in flight (sent, not finished, not abandoned).
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
        bool last;
    };

    void on_socket(std::uint32_t events);
    void poll_connect();
    void connect_failed(const std::string& why);
    void became_ready();
    void send_setup();
    void send_deallocations();
    bool send_command(Work* work, const Step& step, Expect::Kind kind);
    bool flush();
    void update_interest();
    void read_results();
    void handle_result(const Expect& e, PgResultPtr r);
    void fail_deferred(const std::string& why);
    std::string describe_libpq_error(const char* what) const;

    EventLoop& loop_;
    ConnectionSettings settings_;
    Listener& listener_;
    PGconn* conn_ = nullptr;
    int fd_ = -1;
    std::uint32_t interest_ = 0;
    State state_ = State::closed;
    EventLoop::TimerId connect_timer_ = 0;
    std::deque<Expect> expects_;
    std::size_t depth_ = 0;
    StatementCache cache_;
    std::vector<std::uint64_t> to_deallocate_;
    std::uint64_t system_identifier_ = 0;
    std::string setup_error_;
    /// Bumped on every close: a deferred call or a callback that finds another
    /// generation knows its connection is gone.
    std::uint64_t generation_ = 0;
    bool flush_pending_ = false;
    bool reading_ = false;
    bool batch_open_ = false;  ///< send_batched() since the last end_batch()
    std::chrono::steady_clock::time_point last_input_{};
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/// The first line of a libpq message, without the "FATAL:"-style prefixes and
/// without trailing newlines.
std::string clean_libpq_message(const char* message);

}  // namespace regiond::daemon::pg

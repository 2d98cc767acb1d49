// The pool of one Endpoint: up to pool_size connections (Slots), opened when
// jobs wait for one, reopened at once after the loss of an open connection and
// with exponential backoff (100 ms ... 5 s) after failed connects; and the
// choice of a connection for a job (pick). What runs on the connections is the
// scheduler's business (scheduler.hpp); the pool only reports connects, closes
// and finished work to its PoolListener.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "daemon/pg/connection.hpp"
#include "daemon/pg/endpoint_context.hpp"

namespace regiond::daemon::pg {

struct JobState;
class Pool;

/// Reads pipelined on one connection at most (writes are never pipelined).
inline constexpr std::size_t kMaxPipelineDepth = 8;
/// Reads that arrive in one loop pass share a batch on one connection up to
/// this many before another idle connection is used (see Pool::pick).
inline constexpr unsigned kBatchTarget = 4;

/// A pool connection with what the endpoint knows about it.
struct Slot final : Connection::Listener {
    Slot(Pool& p, EndpointContext& ctx);

    Pool& pool;
    Connection conn;
    std::vector<JobState*> jobs;   ///< live jobs on it, in send order
    bool has_write = false;        ///< a write is in flight: nothing goes behind it
    unsigned batched_in_pass = 0;  ///< reads added to its open batch in this dispatch pass
    Clock::duration backoff{0};
    Clock::time_point next_attempt{};
    /// A PQcancel is out for this job (0: none). No new work goes to the
    /// connection until the cancel returned (cancel_returned) and the job ended.
    std::uint64_t cancel_job = 0;
    bool cancel_returned = false;
    TimerHandle cancel_fallback;  ///< closes the connection if the job outlives its cancel
    Clock::time_point last_cancel{};

    /// Ready for a new job: open, not carrying a write, not waiting for a cancel,
    /// not paused by a streaming receiver.
    bool usable() const { return conn.ready() && !has_write && cancel_job == 0 && !conn.paused(); }

    void on_connected(Connection&) override;
    void on_closed(Connection&, const CloseInfo& info, bool was_ready) override;
    void on_work_done(Connection&) override;
};

class PoolListener {
public:
    virtual ~PoolListener() = default;
    virtual void slot_connected(Slot& slot) = 0;
    /// The slot's jobs were told first (Work::on_connection_closed).
    virtual void slot_closed(Slot& slot, const CloseInfo& info, bool was_ready) = 0;
    virtual void slot_work_done(Slot& slot) = 0;
};

class Pool {
public:
    Pool(EndpointContext& ctx, PoolListener& listener);
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    /// Opens connections: at least one, and one more per job waiting for one
    /// (`waiting`), up to pool_size, respecting each slot's backoff. When a slot
    /// is held back by its backoff, `retry` runs once it has passed.
    void ensure(std::size_t waiting, std::function<void()> retry);
    /// A connection for a job, or nullptr (the job waits in the queue): an open
    /// batch (batchable reads of this pass), an idle connection, or, when the
    /// pool cannot grow, the least loaded connection to pipeline a read on.
    Slot* pick(bool write, bool batchable, Clock::time_point now);
    void end_batches();
    bool any_ready() const;
    bool can_grow(Clock::time_point now) const;
    std::uint32_t in_use() const;
    void close_all();
    void set_connect_timeout(std::chrono::milliseconds timeout);
    const std::vector<std::unique_ptr<Slot>>& slots() const { return slots_; }
    PoolListener& listener() { return listener_; }

private:
    EndpointContext& ctx_;
    PoolListener& listener_;
    /// Never shrinks: a Slot's address is stable for the Pool's life.
    std::vector<std::unique_ptr<Slot>> slots_;
    TimerHandle retry_timer_;
};

}  // namespace regiond::daemon::pg

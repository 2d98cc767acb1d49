// The job side of one Endpoint: the queue, dispatch to the pool (pipelining,
// replica batches), deadlines, streaming hand-off and flow control, retries,
// cancellation on the server, and completion. See daemon/pg/README.md.
//
// Retries (docs/design.md, "Retries"): a read is sent again at most once in
// total, and Job::may_retry is that budget. A re-send is free when the read
// was never executed (queued; pipelined behind another live job; skipped by a
// batch-mate's error; behind a connection reset it did not cause; hit by a
// cancel meant for another job). It is counted when the read may have run (its
// connection was lost while it was at the head): the probe decides where, on
// this endpoint when it still answers, elsewhere (Outcome::retry_elsewhere,
// the dispatcher) when the endpoint failed. A read that streamed a chunk is
// never sent again; writes never are.
//
// Stopping a job (cancel(), its deadline, max_result): queued, it is answered
// at once; behind another live job on its connection it has not started: it
// is abandoned (its results are read and dropped) and answered. At the head it
// may be running: the jobs behind it go elsewhere (free), PQcancel runs on the
// Canceller's thread, and nothing new goes to that connection until the cancel
// returned and the job ended; `done` runs then. If the cancel fails, or the job
// has not ended one check_interval after it (rows still arriving extend that,
// up to ten intervals: a statement blocked sending sees the cancel only once
// the rows in flight are read), the connection is closed (the server stops at
// its next client_connection_check_interval).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "daemon/pg/canceller.hpp"
#include "daemon/pg/endpoint_context.hpp"
#include "daemon/pg/job.hpp"
#include "daemon/pg/pool.hpp"
#include "daemon/pg/probe.hpp"

namespace regiond::daemon::pg {

class Scheduler final : public PoolListener {
public:
    Scheduler(EndpointContext& ctx, Probe& probe, Canceller& canceller);
    ~Scheduler() override;
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    void start();
    JobId submit(Job job, JobCallbacks callbacks);
    void resume(JobId id);
    void cancel(JobId id);
    void drain(std::string reason, std::function<void()> drained);
    std::size_t in_flight() const { return jobs_.size(); }
    Pool& pool() { return pool_; }
    const Pool& pool() const { return pool_; }

    /// The probe marked the endpoint down (and again at every tick while down).
    void endpoint_down(const std::string& why);

    // From JobState (Work callbacks).
    void job_result(JobState& job, std::size_t tag, PgResultPtr result);
    void job_finished(JobState& job);
    void job_closed(JobState& job, const CloseInfo& info);

    // PoolListener
    void slot_connected(Slot& slot) override;
    void slot_closed(Slot& slot, const CloseInfo& info, bool was_ready) override;
    void slot_work_done(Slot& slot) override;

private:
    JobState* find(JobId id);
    void answer_later(Completion done, Outcome outcome);
    void schedule_dispatch();
    void dispatch();
    void send(JobState& job, Slot& slot);
    void ensure_connections();
    void detach(JobState& job);
    void requeue(JobState& job, bool counted);
    void requeue_behind(Slot& slot, const JobState& job);
    void deliver_chunks(JobState& job);
    void pause(JobState& job);
    void stop(JobState& job, JobState::Stop reason, std::string message, std::string sqlstate);
    void cancel_on_server(Slot& slot, JobState& job);
    void arm_cancel_fallback(Slot& slot, std::uint64_t generation, JobId id, Clock::time_point since);
    void cancel_returned(Slot& slot, std::uint64_t generation, JobId id, bool ok, const std::string& error);
    void confirmed(JobId id, bool answered, const std::string& why);
    void connection_checked(bool answered, const std::string& why);
    void finish(JobState& job, Slot* slot);
    Outcome stopped_outcome(JobState& job, bool closed, Slot* slot);
    Outcome write_outcome(JobState& job, Slot* slot);
    Outcome read_outcome(JobState& job);
    Outcome behind_outcome(JobState& job);
    Outcome endpoint_failure(const JobState& job, const std::string& why) const;
    void complete(JobState& job, Outcome outcome);
    void fail_queue(const std::string& why);
    void check_drained();

    EndpointContext& ctx_;
    Probe& probe_;
    Canceller& canceller_;
    std::unordered_map<JobId, std::unique_ptr<JobState>> jobs_;
    std::deque<JobState*> queue_;
    Pool pool_;  ///< after jobs_: destroyed first (its connections point to jobs)
    JobId next_id_ = 1;
    bool started_ = false;
    bool dispatching_ = false;
    bool redispatch_ = false;
    bool dispatch_scheduled_ = false;
    bool draining_ = false;
    std::string drain_reason_;
    std::function<void()> drained_cb_;
    LoopScope scope_;
};

}  // namespace regiond::daemon::pg

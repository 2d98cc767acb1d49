#include "daemon/pg/scheduler.hpp"

#include <algorithm>
#include <cmath>

#include "daemon/text.hpp"

namespace regiond::daemon::pg {
namespace {

using namespace std::chrono_literals;

/// A job submitted without a deadline gets the client API's default timeout.
constexpr auto kDefaultTimeout = 30s;
/// Reconnect backoff after failed connects.
constexpr auto kBackoffMin = 100ms;
constexpr auto kBackoffMax = 5s;
/// A cancelled statement still sending rows gets this many check intervals to
/// stop before its connection is closed.
constexpr int kCancelPatience = 10;


}  // namespace

Scheduler::Scheduler(EndpointContext& ctx, Probe& probe, Canceller& canceller)
    : ctx_(ctx), probe_(probe), canceller_(canceller), pool_(ctx, *this), scope_(ctx.loop) {}

Scheduler::~Scheduler() = default;  // outstanding completions are dropped (drain() first)

JobState* Scheduler::find(JobId id) {
    auto it = jobs_.find(id);
    return it == jobs_.end() ? nullptr : it->second.get();
}

void Scheduler::answer_later(Completion done, Outcome outcome) {
    scope_.defer([done = std::move(done), outcome = std::move(outcome)]() mutable { done(std::move(outcome)); });
}

void Scheduler::start() {
    if (started_ || draining_) return;
    started_ = true;
    ensure_connections();
}

JobId Scheduler::submit(Job job, JobCallbacks callbacks) {
    const JobId id = next_id_++;  // ids of refused jobs are used up too: never reused
    const auto now = Clock::now();
    if (job.deadline == Clock::time_point{}) job.deadline = now + kDefaultTimeout;
    const std::int64_t total_ms = round_ms(job.deadline - now);
    const bool write = job.kind == Job::Kind::write;
    if (draining_) {
        answer_later(std::move(callbacks.done), ctx_.error(drain_reason_, "", false, job.route_reason));
        return id;
    }
    if (write && !ctx_.primary()) {
        answer_later(std::move(callbacks.done),
                     ctx_.error("write sent to " + ctx_.options.display_name +
                                    ", a replica: writes must go to the primary (routing bug in the daemon)",
                                "", false, job.route_reason));
        return id;
    }
    if (queue_.size() >= ctx_.options.max_queue) {
        answer_later(std::move(callbacks.done),
                     ctx_.error("endpoint " + ctx_.options.display_name + " queue full (" +
                                    std::to_string(queue_.size()) + " jobs waiting): retry later",
                                "", !write && job.may_retry, job.route_reason));
        return id;
    }
    auto state = std::make_unique<JobState>(*this, id, std::move(job), std::move(callbacks), ctx_.encoders,
                                            ctx_.served_by, ctx_.options.max_chunk_bytes);
    state->total_ms = total_ms;
    // Classified before anything is sent: a refusal never reaches the server.
    const auto classification =
        state->job.classification
            ? state->job.classification
            : ctx_.classifier->classify(state->job.sql, write ? Operation::write : Operation::read);
    if (auto refusal = prepare_job(state->job, *classification, ctx_.options.role, state->prepared)) {
        answer_later(std::move(state->callbacks.done),
                     ctx_.error(refusal->message, refusal->sqlstate, false, state->job.route_reason));
        return id;
    }
    JobState& js = *state;
    js.deadline_timer = ctx_.loop.timer(js.job.deadline, [this, id] {
        if (JobState* j = find(id))
            stop(*j, JobState::Stop::deadline, "timed out after " + std::to_string(j->total_ms) + " ms", "");
    });
    jobs_.emplace(id, std::move(state));
    queue_.push_back(&js);
    // Idle (this is the only job): send at once, latency first. Busy: let
    // every request the loop reads in this pass queue up first; one deferred
    // dispatch then batches the reads per connection (fewer syscalls and
    // wake-ups on both sides, which is what throughput is made of here).
    if (jobs_.size() == 1) {
        dispatch();
    } else {
        schedule_dispatch();
    }
    return id;
}

void Scheduler::schedule_dispatch() {
    if (dispatch_scheduled_) return;
    dispatch_scheduled_ = true;
    scope_.defer([this] {
        dispatch_scheduled_ = false;
        dispatch();
    });
}

void Scheduler::dispatch() {
    if (dispatching_) {
        redispatch_ = true;
        return;
    }
    dispatching_ = true;
    do {
        redispatch_ = false;
        const auto now = Clock::now();
        while (!queue_.empty() && !draining_) {
            JobState* job = queue_.front();
            if (job->job.deadline <= now) {
                queue_.pop_front();
                job->where = JobState::Where::expired;
                continue;
            }
            Slot* slot = pool_.pick(job->is_write(), job->batchable(), now);
            if (slot == nullptr) break;
            queue_.pop_front();
            send(*job, *slot);
        }
    } while (redispatch_);
    pool_.end_batches();
    dispatching_ = false;
    ensure_connections();
}

void Scheduler::send(JobState& job, Slot& slot) {
    job.where = JobState::Where::sent;
    job.sent_at = Clock::now();
    job.slot = &slot;
    job.reset_attempt();
    slot.jobs.push_back(&job);
    if (job.is_write()) slot.has_write = true;
    if (job.batchable()) {
        // A batchable read is one command: the sync is the batch's (dispatch()
        // ends the batches).
        slot.conn.send_batched(job, job.prepared.batch_steps());
        ++slot.batched_in_pass;
    } else {
        slot.conn.send(job, job.prepared.steps, job.prepared.reset_after);
    }
}

void Scheduler::ensure_connections() {
    if (!started_ || draining_) return;
    pool_.ensure(queue_.size(), [this] { dispatch(); });
}

void Scheduler::detach(JobState& job) {
    Slot* slot = job.slot;
    if (slot == nullptr) return;
    auto it = std::find(slot->jobs.begin(), slot->jobs.end(), &job);
    if (it != slot->jobs.end()) slot->jobs.erase(it);
    if (job.is_write()) slot->has_write = false;
    job.slot = nullptr;
    job.paused = false;
    if (slot->cancel_job == job.id && slot->cancel_returned) {
        // The job ended and its cancel came back: the connection takes work again.
        slot->cancel_job = 0;
        slot->cancel_fallback.cancel();
        schedule_dispatch();
    }
}

void Scheduler::requeue(JobState& job, bool counted) {
    detach(job);
    if (counted) job.job.may_retry = false;
    if (draining_) {
        complete(job, endpoint_failure(job, drain_reason_));
        return;
    }
    job.where = JobState::Where::queued;
    job.reset_attempt();
    queue_.push_front(&job);  // first in line: it was sent before everything queued
    schedule_dispatch();
}

void Scheduler::requeue_behind(Slot& slot, const JobState& job) {
    // The jobs pipelined behind `job` have not started (the server runs a
    // pipeline in order): they are abandoned here (their results, if any, are
    // read and dropped) and go elsewhere in the pool, for free.
    auto it = std::find(slot.jobs.begin(), slot.jobs.end(), &job);
    if (it == slot.jobs.end()) return;
    const std::vector<JobState*> behind(it + 1, slot.jobs.end());
    for (auto rit = behind.rbegin(); rit != behind.rend(); ++rit) {  // push_front keeps their order
        JobState* other = *rit;
        slot.conn.abandon(*other);
        requeue(*other, false);
    }
}

// ---- streaming ----

void Scheduler::deliver_chunks(JobState& job) {
    if (!job.callbacks.partial) return;  // buffered whole (bounded by max_result)
    const JobId id = job.id;
    auto& ready = job.stream.ready();
    while (!job.paused && job.stop == JobState::Stop::none && !ready.empty()) {
        std::vector<std::byte> chunk = std::move(ready.front());
        ready.pop_front();
        job.streamed = true;
        const bool more = job.callbacks.partial(std::move(chunk));
        if (find(id) != &job) return;  // ended from inside the callback
        if (!more) pause(job);
    }
}

void Scheduler::pause(JobState& job) {
    job.paused = true;
    if (job.slot == nullptr) return;
    // The receiver is full: PostgreSQL waits on a full socket, the job keeps
    // its connection, and what was pipelined behind it goes elsewhere.
    job.slot->conn.pause();
    requeue_behind(*job.slot, job);
}

void Scheduler::resume(JobId id) {
    JobState* job = find(id);
    if (job == nullptr || !job->paused) return;
    job->paused = false;
    deliver_chunks(*job);
    job = find(id);
    if (job != nullptr && !job->paused && job->slot != nullptr) job->slot->conn.resume();
}

// ---- stopping ----

void Scheduler::cancel(JobId id) {
    if (JobState* job = find(id)) {
        job->cancelled = true;
        stop(*job, JobState::Stop::cancel, "cancelled", "57014");
    }
}

void Scheduler::stop(JobState& job, JobState::Stop reason, std::string message, std::string sqlstate) {
    if (job.stop != JobState::Stop::none) return;  // already stopping: the first reason is the answer
    job.stop = reason;
    job.stop_message = std::move(message);
    job.stop_sqlstate = std::move(sqlstate);
    switch (job.where) {
        case JobState::Where::queued:
            if (auto q = std::find(queue_.begin(), queue_.end(), &job); q != queue_.end()) queue_.erase(q);
            [[fallthrough]];
        case JobState::Where::expired:
        case JobState::Where::confirming: complete(job, stopped_outcome(job, false, nullptr)); return;
        case JobState::Where::sent: break;
    }
    Slot& slot = *job.slot;
    if (!slot.conn.at_head(job)) {
        // A live job is ahead of it: it has not started. Its commands stay in the
        // pipeline (the server runs them later, bounded by the pipeline depth)
        // and their results are dropped.
        slot.conn.abandon(job);
        detach(job);
        complete(job, stopped_outcome(job, false, nullptr));
        return;
    }
    // It may be running. Rows from now on are dropped; a paused result is read
    // again, or PostgreSQL, blocked writing it, would never see the cancel.
    if (job.paused) {
        job.paused = false;
        slot.conn.resume();
    }
    requeue_behind(slot, job);
    if (slot.cancel_job == 0) cancel_on_server(slot, job);
}

void Scheduler::cancel_on_server(Slot& slot, JobState& job) {
    slot.cancel_job = job.id;
    slot.cancel_returned = false;
    slot.last_cancel = Clock::now();
    const std::uint64_t generation = slot.conn.generation();
    Slot* s = &slot;  // slots live as long as the pool
    const JobId id = job.id;
    canceller_.request(slot.conn.make_cancel(), [this, s, generation, id](bool ok, const std::string& error) {
        cancel_returned(*s, generation, id, ok, error);
    });
}

void Scheduler::cancel_returned(Slot& slot, std::uint64_t generation, JobId id, bool ok, const std::string& error) {
    if (slot.conn.generation() != generation || slot.cancel_job != id) return;  // closed since
    slot.cancel_returned = true;
    slot.last_cancel = Clock::now();
    JobState* job = find(id);
    if (job == nullptr || job->slot != &slot) {
        // It ended before the cancel came back: the connection is free again.
        slot.cancel_job = 0;
        schedule_dispatch();
        return;
    }
    if (!ok) {
        slot.conn.close("connection to " + ctx_.options.display_name +
                            " closed to stop a statement (the cancel request failed: " + error + ")",
                        CloseCause::reset, job);
        return;
    }
    // The server accepted the cancel; the statement ends at its next interrupt
    // check. A statement blocked sending rows sees it only once the rows in
    // flight (socket buffers, the network) are read, so the fallback waits
    // while they still arrive, up to kCancelPatience intervals.
    arm_cancel_fallback(slot, generation, id, Clock::now());
}

void Scheduler::arm_cancel_fallback(Slot& slot, std::uint64_t generation, JobId id, Clock::time_point since) {
    const auto interval = ctx_.options.check_interval;
    slot.cancel_fallback = ctx_.loop.timer(interval, [this, s = &slot, generation, id, since, interval] {
        JobState* j = find(id);
        if (j == nullptr || j->slot != s || s->conn.generation() != generation) return;
        const auto now = Clock::now();
        if (now - s->conn.last_input() < interval && now - since < kCancelPatience * interval) {
            arm_cancel_fallback(*s, generation, id, since);
            return;
        }
        s->conn.close("connection to " + ctx_.options.display_name +
                          " closed: a cancelled statement did not stop within " +
                          std::to_string(round_ms(now - since)) + " ms",
                      CloseCause::reset, j);
    });
}

// ---- results ----

void Scheduler::job_result(JobState& job, std::size_t tag, PgResultPtr result) {
    if (job.stop == JobState::Stop::none && PQresultStatus(result.get()) == PGRES_FATAL_ERROR && job.slot != nullptr) {
        const char* state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
        // 57014 although nobody cancelled this job, right after a cancel for
        // another job on the same connection: that cancel hit it by mistake.
        if (state != nullptr && std::string_view(state) == "57014" &&
            Clock::now() - job.slot->last_cancel < ctx_.options.check_interval)
            job.stray_cancel = true;
    }
    switch (job.absorb(tag, std::move(result))) {
        case JobState::Absorbed::nothing: return;
        case JobState::Absorbed::chunks: deliver_chunks(job); return;
        case JobState::Absorbed::over_limit:
            // max_result (or a row too large for any chunk): the rest is not
            // wanted; the server stops producing it.
            stop(job, JobState::Stop::limit, job.stream.problem(), "54000");
            return;
        case JobState::Absorbed::behind_running:
            // Its guard failed and the read is still sending rows nobody will see.
            stop(job, JobState::Stop::behind, job.behind_message(), "");
            return;
    }
}

void Scheduler::job_finished(JobState& job) {
    Slot* slot = job.slot;
    detach(job);
    finish(job, slot);
}

void Scheduler::finish(JobState& job, Slot* slot) {
    if (job.stop != JobState::Stop::none) return complete(job, stopped_outcome(job, false, slot));
    // The guard's verdict first: whatever the read did, none of it is shown.
    if (job.behind) return complete(job, behind_outcome(job));
    if (!job.streamed && ((job.aborted_by_batch && !job.failed) || (job.stray_cancel && !job.is_write()))) {
        // Never executed (skipped for a batch-mate's error), or stopped by a
        // cancel meant for another job: not its fault, sent again for free (a
        // deadline that passed meanwhile answers it from the queue).
        requeue(job, false);
        return;
    }
    if (job.failed) {
        std::string message = job.error.message;
        if (job.is_write() && job.error_tag == kInvalidationTag) {
            message = invalidation_failure_message(job.error.sqlstate, job.error.message);
        } else if (job.is_write() && job.prepared.statements.size() > 1) {
            message = "statement " + std::to_string(job.error_tag + 1) + " of " +
                      std::to_string(job.prepared.statements.size()) + " failed, the write was rolled back: " + message;
        }
        Outcome out;
        out.chunks = job.stream.finish_error(message, job.error.sqlstate, job.streamed);
        return complete(job, std::move(out));
    }
    if (!job.is_write()) return complete(job, read_outcome(job));
    complete(job, write_outcome(job, slot));
}

Outcome Scheduler::read_outcome(JobState& job) {
    // Its token, when the LSN step answered and the connection's system
    // identifier is known; without them, the rows without a token (none is
    // better than a wrong one). The trailer carries it: the head may have
    // left already.
    Outcome out;
    out.ok = true;
    out.lsn = job.lsn.value_or(0);
    out.floor_lsn = job.floor_lsn();
    if (job.lsn && job.lsn_sysid != 0) {
        const std::string token = std::to_string(job.lsn_sysid) + "/" + format_lsn(*job.lsn);
        out.chunks = job.stream.finish_ok(token, -1, true);
    } else {
        out.chunks = job.stream.finish_ok("", -1, false);
    }
    return out;
}

Outcome Scheduler::behind_outcome(JobState& job) {
    Outcome out;
    out.behind = true;
    out.chunks = job.stream.finish_error(job.behind_message(), "", job.streamed);
    return out;
}

Outcome Scheduler::write_outcome(JobState& job, Slot* slot) {
    const std::uint64_t sysid = job.lsn_sysid;
    if (!job.lsn || sysid == 0) {
        const std::string why =
            !job.lsn ? job.lsn_error
                     : (slot != nullptr && !slot->conn.setup_error().empty() ? slot->conn.setup_error()
                                                                             : "system identifier unknown");
        Outcome out;
        out.chunks = job.stream.finish_error("the write committed on " + ctx_.options.display_name +
                                                 " but its consistency token could not be read (" + why +
                                                 "): do not retry it blindly",
                                             "", job.streamed);
        return out;
    }
    if (ctx_.health.system_identifier == 0) ctx_.health.system_identifier = sysid;
    if (job.kept_rows && !job.stream.begun()) job.stream.add(*job.kept_rows);
    const std::string token = std::to_string(sysid) + "/" + format_lsn(*job.lsn);
    Outcome out;
    out.ok = true;
    out.lsn = *job.lsn;
    out.chunks = job.stream.finish_ok(token, job.affected, true);
    return out;
}

Outcome Scheduler::stopped_outcome(JobState& job, bool closed, Slot* slot) {
    std::string text = job.stop_message;
    std::string sqlstate = job.stop_sqlstate;
    if (job.is_write() && job.where != JobState::Where::queued && job.where != JobState::Where::expired) {
        // Report exactly what is known about the commit.
        if (closed) {
            text += "; the write may or may not have committed";
        } else if (!job.failed && job.lsn) {
            return write_outcome(job, slot);  // it committed before the cancel hit
        } else if (job.failed && job.error.sqlstate == "57014") {
            text += "; cancelled before commit, the write was rolled back";
            sqlstate = "57014";
        } else if (job.failed) {
            text += "; the write failed and was rolled back: " + job.error.message;
        } else {
            text += "; the write may or may not have committed";
        }
    }
    Outcome out;
    out.chunks = job.stream.finish_error(text, sqlstate, job.streamed);
    out.cancelled = job.cancelled;
    out.behind = job.stop == JobState::Stop::behind;
    return out;
}

Outcome Scheduler::endpoint_failure(const JobState& job, const std::string& why) const {
    // The dispatcher may send it to the next endpoint: a read that streamed
    // nothing and whose one re-send is unspent.
    return ctx_.error(why, "", !job.is_write() && job.job.may_retry && !job.streamed, job.job.route_reason);
}

void Scheduler::job_closed(JobState& job, const CloseInfo& info) {
    Slot* slot = job.slot;
    detach(job);
    if (job.stop != JobState::Stop::none) return complete(job, stopped_outcome(job, !info.complete, slot));
    if (job.behind) return complete(job, behind_outcome(job));  // known: what the read did no longer matters
    if (info.complete) {
        // Its results were all in; only the batch's sync was missing, or it
        // showed a batch-mate's session change (which may have affected it).
        if (info.batch_violation && !job.streamed && !job.failed) {
            job.no_batch = true;
            requeue(job, false);
            return;
        }
        return finish(job, slot);
    }
    if (info.cause == CloseCause::reset && info.culprit == &job) {
        // Its own result or statement made the connection unusable (COPY, an
        // unknown result status, a transaction block left open).
        std::string message = job.failed ? job.error.message : info.why;
        if (job.is_write()) message += "; the write was not committed";
        Outcome out;
        out.chunks = job.stream.finish_error(message, job.failed ? job.error.sqlstate : "", job.streamed);
        return complete(job, std::move(out));
    }
    const bool may_have_run = info.head == &job && info.cause == CloseCause::lost;
    if (!may_have_run) {
        // Never started, or reset by the daemon for another job's sake.
        if (job.is_write()) {
            const bool started = info.head == &job;
            return complete(job, ctx_.error(info.why + (started ? "; the write may or may not have committed"
                                                                : "; the write was not executed"),
                                            "", false, job.job.route_reason));
        }
        if (job.streamed) {
            Outcome out;
            out.chunks = job.stream.finish_error(info.why, "", true);
            return complete(job, std::move(out));
        }
        requeue(job, false);
        return;
    }
    if (job.is_write()) {
        if (job.failed && backend_ended(job.error.sqlstate)) {
            // Its statement failed (the backend ended under it): not committed.
            return complete(job, ctx_.error(job.error.message + "; the write was rolled back", job.error.sqlstate,
                                            false, job.job.route_reason));
        }
        return complete(
            job, ctx_.error(info.why + "; the write may or may not have committed", "", false, job.job.route_reason));
    }
    // A read that may have run: whether the server is still there decides.
    job.where = JobState::Where::confirming;
    job.lost_why = info.why;
    const JobId id = job.id;
    probe_.confirm([this, id](bool answered, const std::string& why) { confirmed(id, answered, why); });
}

void Scheduler::confirmed(JobId id, bool answered, const std::string& why) {
    JobState* job = find(id);
    if (job == nullptr || job->where != JobState::Where::confirming) return;
    if (answered) {
        if (job->failed && backend_ended(job->error.sqlstate)) {
            // The server is there: its own statement ended its backend (e.g.
            // pg_terminate_backend(pg_backend_pid())). Its error alone.
            Outcome out;
            out.chunks = job->stream.finish_error(job->error.message, job->error.sqlstate, job->streamed);
            return complete(*job, std::move(out));
        }
        if (job->job.may_retry && !job->streamed && Clock::now() < job->job.deadline) {
            requeue(*job, true);  // this endpoint, its one re-send
            return;
        }
        Outcome out;
        out.chunks = job->stream.finish_error(job->lost_why, "", job->streamed);
        return complete(*job, std::move(out));
    }
    std::string message = job->lost_why;
    if (!why.empty()) message += " (" + why + ")";
    Outcome out = endpoint_failure(*job, message);
    if (job->streamed) out.chunks = job->stream.finish_error(message, "", true);
    complete(*job, std::move(out));
}

// ---- pool events ----

void Scheduler::slot_connected(Slot& slot) {
    slot.backoff = Clock::duration{0};
    ctx_.health.ever_connected = true;
    dispatch();
}

void Scheduler::slot_closed(Slot& slot, const CloseInfo& info, bool was_ready) {
    slot.has_write = false;
    slot.batched_in_pass = 0;
    slot.cancel_job = 0;
    slot.cancel_returned = false;
    slot.cancel_fallback.cancel();
    const auto now = Clock::now();
    if (info.cause == CloseCause::reset) {
        slot.next_attempt = now;
    } else {
        if (!was_ready) {
            slot.backoff = std::clamp<Clock::duration>(slot.backoff * 2, kBackoffMin, kBackoffMax);
            slot.next_attempt = now + slot.backoff;
        } else {
            slot.next_attempt = now;  // lost while open: try again at once, once
            slot.backoff = kBackoffMin / 2;
        }
        // Health is the probe's: a lost or refused connection only asks it.
        if (!draining_) {
            probe_.confirm(
                [this, why = info.why](bool answered, const std::string&) { connection_checked(answered, why); });
        }
    }
    schedule_dispatch();
}

void Scheduler::connection_checked(bool answered, const std::string& why) {
    // The server did not answer the probe either and nothing is open: the
    // queue is answered at once (the router can go elsewhere) instead of
    // waiting for its deadlines.
    if (!answered && !pool_.any_ready()) fail_queue(why);
}

void Scheduler::slot_work_done(Slot&) {
    schedule_dispatch();
}

// While the endpoint is down (called when it is marked down and at every
// probe tick after): jobs queued or sent on it would wait for their
// deadlines, and on a stalled link (packets vanish, no RST) nothing else
// ever ends them. The queue is answered as an endpoint failure. When the
// server itself has gone silent (the health probe has had no answer for a
// check interval plus its round trip), so is every job on a connection that
// owes an answer and has been silent for a whole check interval (since its
// last input or the job's send, whichever is later); such a connection is
// closed (its state is unknown; the pool reconnects with backoff). While the
// probe still gets answers, the jobs sent stay: a long query is no stalled
// link, and a write there must not be cut off. Idle connections stay.
void Scheduler::endpoint_down(const std::string& why) {
    if (draining_) return;
    const std::string message = ctx_.options.display_name + " was marked down (" + why + ")";
    fail_queue(message);
    const auto now = Clock::now();
    const auto rtt = std::chrono::microseconds(static_cast<std::int64_t>(probe_.rtt_us()));
    if (now - probe_.last_answer() < ctx_.options.check_interval + 2 * rtt + probe_.period()) return;
    for (const auto& s : pool_.slots()) {
        Slot& slot = *s;
        if (slot.jobs.empty()) continue;
        Clock::time_point silent_since = slot.conn.last_input();
        for (const JobState* job : slot.jobs) silent_since = std::max(silent_since, job->sent_at);
        if (now - silent_since < ctx_.options.check_interval) continue;
        const std::vector<JobState*> jobs = slot.jobs;
        for (JobState* job : jobs) {
            slot.conn.abandon(*job);
            detach(*job);
            std::string text = message;
            if (job->is_write()) text += "; the write may or may not have committed";
            Outcome out = endpoint_failure(*job, text);
            if (job->streamed) out.chunks = job->stream.finish_error(text, "", true);
            complete(*job, std::move(out));
        }
        slot.conn.close("connection to " + ctx_.options.display_name + " closed: the endpoint was marked down",
                        CloseCause::reset);
    }
}

// ---- completion ----

void Scheduler::complete(JobState& job, Outcome outcome) {
    detach(job);
    auto it = jobs_.find(job.id);
    std::unique_ptr<JobState> holder = std::move(it->second);
    jobs_.erase(it);
    Completion done = std::move(holder->callbacks.done);
    holder.reset();
    if (done) done(std::move(outcome));
    check_drained();
}

void Scheduler::fail_queue(const std::string& why) {
    std::deque<JobState*> failing;
    failing.swap(queue_);
    for (JobState* job : failing) complete(*job, endpoint_failure(*job, why));
}

void Scheduler::drain(std::string reason, std::function<void()> drained) {
    draining_ = true;
    drain_reason_ = reason.empty() ? "endpoint " + ctx_.options.display_name + " is shutting down" : std::move(reason);
    drained_cb_ = std::move(drained);
    // Queued jobs are answered from the loop, not from inside drain().
    scope_.defer([this] {
        while (!queue_.empty()) {
            JobState* job = queue_.front();
            queue_.pop_front();
            complete(*job, ctx_.error(drain_reason_, "", false, job->job.route_reason));
        }
        check_drained();
    });
}

void Scheduler::check_drained() {
    if (!draining_ || !jobs_.empty() || !drained_cb_) return;
    auto cb = std::move(drained_cb_);
    drained_cb_ = nullptr;
    pool_.close_all();
    scope_.defer(std::move(cb));
}

}  // namespace regiond::daemon::pg

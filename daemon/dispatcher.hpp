// Turns decoded requests into jobs on the PostgreSQL endpoints and their outcomes
// into answers (the RequestHandler of ClientServer; request_flow.hpp).
//
//   request -> reused id? drop the client -> shutting down? answer at once
//           -> deadline = now + min(timeout_ms or daemon.request_timeout,
//                                   daemon.max_request_timeout)
//           -> the operation's handler (operation_handler.hpp: read_handler,
//              write_handler, ...): route and submit a job, or answer at once
//   partial -> the client still waits? stream the chunk (false: the job pauses
//              until the client's queue drains: on_window_open -> resume)
//   done    -> the client forgot it (cancel, gone)? nothing to answer
//           -> failed? the handler may send it again (the retry rule is in
//              read_handler.hpp)
//           -> answer with the outcome's chunks
//   and in every case, once the last job ended: Responder::release, so the
//   request counts against its client until the server finished it.
//
// Cancel record: the request is forgotten (no answer; its id may be used again
// at once) and Endpoint::cancel(job) asks the server to stop; it still counts
// until done. Client gone: the same for each of its requests (orphans).
//
// Requests are kept by a ticket unique for the daemon's life; the index by
// (client id, request id) holds only the requests still to be answered, so a
// late completion can never answer a newer request that reuses the id, nor
// reach a client that is gone.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/backends.hpp"
#include "daemon/cache/cache_service.hpp"
#include "daemon/classifier_worker.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/operation_handler.hpp"
#include "daemon/request_flow.hpp"
#include "daemon/stats.hpp"

namespace regiond::daemon {

class Dispatcher final : public RequestHandler, private DispatchContext {
public:
    /// Texts longer than this that the classifier's cache does not know are
    /// classified off the loop (ClassifierWorker). At the parser's worst
    /// (~2 us per byte, deeply nested) a text this long holds the loop ~8 ms;
    /// a typical one ~0.4 ms, about what the hand-off itself would save.
    static constexpr std::size_t kClassifyOnLoopBytes = 4096;

    Dispatcher(EventLoop& loop, DispatchSettings settings, Backends& backends, Responder& responder, Stats& stats,
               cache::CacheService& cache);
    ~Dispatcher() override;
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    /// SIGHUP: the new settings apply to requests received from now on.
    void update(DispatchSettings settings) { settings_ = std::move(settings); }

    void on_request(ClientId client, std::uint64_t request_id, const shm::RequestView& request) override;
    void on_cancel(ClientId client, std::uint64_t request_id) override;
    void on_client_gone(ClientId client) override;
    void on_window_open(ClientId client) override;
    /// An endpoint's health changed: parked requests try their route again.
    void on_backends_changed();

    /// SIGTERM: new requests are answered "regiond is shutting down".
    void begin_drain();
    /// Answers every request still waiting with `message` and cancels its job.
    void abandon_all(const std::string& message);
    /// Requests whose job has not ended (answered or not).
    std::size_t pending() const noexcept { return requests_.size(); }

private:
    using Key = std::pair<ClientId, std::uint64_t>;
    using Requests = std::map<std::uint64_t, PendingRequest>;  ///< by ticket

    // DispatchContext
    const DispatchSettings& settings() const override { return settings_; }
    bool draining() const override { return draining_; }
    Route route(RouteKind kind, std::span<const std::size_t> exclude) override;
    const BackendEndpoint& endpoint(std::size_t index) const override { return backends_.at(index); }
    void submit(PendingRequest& request, std::size_t index, bool keep_job) override;
    void answer_error(PendingRequest& request, std::string_view message) override;
    void answer(PendingRequest& request, std::vector<std::vector<std::byte>> chunks) override;
    void hold(PendingRequest& request, std::string_view error) override;
    bool with_request(std::uint64_t ticket, const std::function<void(PendingRequest&)>& fn) override;
    bool exists(std::uint64_t ticket) const override { return requests_.count(ticket) != 0; }
    void park(PendingRequest& request, std::string_view error) override;
    void wait_for_lsn(PendingRequest& request, std::size_t index, std::uint64_t lsn,
                      std::chrono::steady_clock::time_point until, bool recheck) override;
    std::span<const EndpointState> endpoint_states() override { return backends_.routing_states(); }
    std::uint64_t system_identifier() override;
    void count(shm::Counter counter) override { stats_.add(counter); }
    void record_consistent_wait(std::chrono::nanoseconds waited) override { stats_.record_consistent_wait(waited); }

    /// An endpoint's replay LSN was polled: releases the waiters it reached.
    void on_replay_lsn(std::size_t index, std::uint64_t lsn);
    /// Takes a parked request off the parked state (and the LSN waiters).
    void unpark(PendingRequest& request);
    /// Takes a held request off hold.
    void unhold(PendingRequest& request);
    /// Nothing runs for it and nobody will start anything: parked, held or
    /// being classified (it ends when those end).
    static bool waiting_without_job(const PendingRequest& request) {
        return request.parked || request.held || request.classifying;
    }

    OperationHandler& handler(shm::Op op);
    /// Runs the request's handler (or answers "internal error" when it took
    /// nothing on); the caller ends the request if it is idle after.
    void start(PendingRequest& request);
    /// The text arrived classified from the worker.
    void classified(std::uint64_t ticket, std::shared_ptr<const pg::Classification> classification);
    bool on_partial(std::uint64_t ticket, std::vector<std::byte>&& chunk);
    void on_done(std::uint64_t ticket, pg::Outcome&& outcome);
    /// The client will not get an answer: drop it from the index.
    void forget(PendingRequest& request);
    /// Ends the request if it has no job running: release its count.
    void finish_if_idle(Requests::iterator it);
    void cancel_jobs(std::vector<std::pair<std::size_t, pg::JobId>> jobs);
    /// Ends parked requests that nothing runs for (cancelled, client gone, drain).
    void end_parked(const std::vector<std::uint64_t>& tickets);

    DispatchSettings settings_;
    Backends& backends_;
    Responder& responder_;
    Stats& stats_;
    EventLoop& loop_;
    Requests requests_;
    std::map<Key, std::uint64_t> waiting_;  ///< (client, request id) -> ticket, until answered or forgotten
    std::array<std::unique_ptr<OperationHandler>, 6> handlers_;  ///< by shm::Op (1..5)
    ClassifierWorker classifier_worker_;
    std::vector<std::uint64_t> parked_;  ///< tickets; a ticket no longer parked is skipped
    /// Per endpoint: LSN -> ticket of the read_consistent requests waiting for it.
    std::vector<std::multimap<std::uint64_t, std::uint64_t>> lsn_waiters_;
    /// Per endpoint: replay-LSN polls seen, and the tickets that wait for a poll
    /// number rather than an LSN (recheck), in arrival order.
    std::vector<std::uint64_t> lsn_polls_;
    std::vector<std::vector<std::uint64_t>> rechecks_;
    std::uint64_t next_ticket_ = 1;
    bool draining_ = false;
    /// Callbacks handed to endpoints check it: after the dispatcher is gone
    /// (daemon exit), a backend that still calls back does nothing.
    LoopScope scope_;
};

}  // namespace regiond::daemon

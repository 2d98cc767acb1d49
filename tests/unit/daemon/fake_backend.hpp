// Fake PostgreSQL endpoints for embedding the daemon core in unit tests: jobs
// are recorded, and the test answers them when it wants (on the loop thread, as
// the real backend does). Health is set by the test.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/backends.hpp"
#include "daemon/pg/endpoint.hpp"

namespace regiond::daemon::test {

class FakeEndpoint final : public pg::Endpoint {
public:
    struct Submitted {
        pg::Job job;
        pg::JobCallbacks callbacks;
        pg::JobId id = 0;
    };

    FakeEndpoint(EventLoop& loop, pg::EndpointOptions options);

    void start() override { started = true; }
    using pg::Endpoint::submit;
    pg::JobId submit(pg::Job job, pg::JobCallbacks callbacks) override;
    /// Records the id (the test streams more through the job's partial).
    void resume(pg::JobId id) override { resumed.push_back(id); }
    /// Records the id; the job stays until the test completes it, unless
    /// cancel_answers_at_once (a queued job: `done` runs inside cancel()).
    void cancel(pg::JobId id) override;
    const pg::Health& health() const override { return health_; }
    const pg::EndpointOptions& options() const override { return options_; }
    void on_health_change(std::function<void()> fn) override { callbacks_.push_back(std::move(fn)); }
    void set_lag_tracker(std::shared_ptr<pg::LagTracker>) override {}
    /// Records the mode (lsn_watch_fast, and every call in lsn_watch_calls).
    void set_lsn_watch(bool fast) override {
        lsn_watch_fast = fast;
        lsn_watch_calls.push_back(fast);
    }
    void on_replay_lsn(std::function<void(std::uint64_t)> fn) override { lsn_callbacks_.push_back(std::move(fn)); }
    void drain(std::string reason, std::function<void()> drained) override;
    std::size_t in_flight() const override { return jobs.size(); }
    void update_health(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds check_interval,
                       unsigned down_after, unsigned up_after) override {
        options_.connect_timeout = connect_timeout;
        options_.check_interval = check_interval;
        options_.down_after = down_after;
        options_.up_after = up_after;
    }

    void set_system_identifier(std::uint64_t id) { health_.system_identifier = id; }

    /// Sets health and runs the health callbacks.
    void set_health(bool healthy, std::uint64_t lag_ms = 0, std::uint32_t rtt_us = 1000);
    /// An LSN poll of the replica: sets health().replay_lsn and runs the
    /// on_replay_lsn callbacks (not the health callbacks, like the real one).
    void set_replay_lsn(std::uint64_t lsn);
    /// Sets health().replay_rate (bytes per second; no callbacks).
    void set_replay_rate(double bytes_per_second) { health_.replay_rate = bytes_per_second; }
    /// Answers the oldest job.
    void complete_next(pg::Outcome outcome);
    /// Answers the job `id`; false when there is none.
    bool complete(pg::JobId id, pg::Outcome outcome);
    /// The job `id` still running, or nullptr.
    Submitted* find(pg::JobId id);

    std::deque<Submitted> jobs;
    std::vector<pg::JobId> cancelled;
    std::vector<pg::JobId> resumed;
    bool cancel_answers_at_once = false;
    bool lsn_watch_fast = false;
    std::vector<bool> lsn_watch_calls;
    bool started = false;
    bool draining = false;
    std::string drain_reason;

private:
    EventLoop& loop_;
    pg::EndpointOptions options_;
    pg::Health health_;
    std::vector<std::function<void()>> callbacks_;
    std::vector<std::function<void(std::uint64_t)>> lsn_callbacks_;
    std::function<void()> drained_;
    pg::JobId next_id_ = 1;
};

/// Collects the endpoints a Backends creates, in creation order (the primary of
/// each region first, then its replicas, regions in config order).
struct FakeBackend {
    std::vector<FakeEndpoint*> endpoints;
    EndpointFactory factory();
};

/// A successful outcome: columns and rows of text, chunked at max_chunk.
pg::Outcome ok_outcome(const std::string& served_by, std::vector<std::string> columns,
                       std::vector<std::vector<std::string>> rows, std::size_t max_chunk);
/// A failed outcome (retry_elsewhere as given).
pg::Outcome error_outcome(const std::string& message, bool retry_elsewhere, std::size_t max_chunk);
/// What the endpoint answers a cancelled job with.
pg::Outcome cancelled_outcome(std::size_t max_chunk);

}  // namespace regiond::daemon::test

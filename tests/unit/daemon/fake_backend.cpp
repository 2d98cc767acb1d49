#include "fake_backend.hpp"

#include "shm/codec.hpp"

namespace regiond::daemon::test {

FakeEndpoint::FakeEndpoint(EventLoop& loop, pg::EndpointOptions options) : loop_(loop), options_(std::move(options)) {
    health_.pool_size = options_.pool_size;
}

pg::JobId FakeEndpoint::submit(pg::Job job, pg::JobCallbacks callbacks) {
    const pg::JobId id = next_id_++;
    if (draining) {
        // Like the real backend: a draining endpoint answers at once, later.
        const std::string reason = drain_reason;
        const std::size_t max = options_.max_chunk_bytes;
        loop_.defer([done = std::move(callbacks.done), reason, max] { done(error_outcome(reason, false, max)); });
        return id;
    }
    jobs.push_back({std::move(job), std::move(callbacks), id});
    return id;
}

void FakeEndpoint::cancel(pg::JobId id) {
    cancelled.push_back(id);
    if (cancel_answers_at_once) complete(id, cancelled_outcome(options_.max_chunk_bytes));
}

FakeEndpoint::Submitted* FakeEndpoint::find(pg::JobId id) {
    for (Submitted& s : jobs)
        if (s.id == id) return &s;
    return nullptr;
}

bool FakeEndpoint::complete(pg::JobId id, pg::Outcome outcome) {
    for (auto it = jobs.begin(); it != jobs.end(); ++it) {
        if (it->id != id) continue;
        Submitted s = std::move(*it);
        jobs.erase(it);
        s.callbacks.done(std::move(outcome));
        if (draining && jobs.empty() && drained_) loop_.defer(std::move(drained_));
        return true;
    }
    return false;
}

void FakeEndpoint::drain(std::string reason, std::function<void()> drained) {
    draining = true;
    drain_reason = std::move(reason);
    drained_ = std::move(drained);
    if (jobs.empty()) loop_.defer(std::move(drained_));
}

void FakeEndpoint::set_health(bool healthy, std::uint64_t lag_ms, std::uint32_t rtt_us) {
    health_.healthy = healthy;
    health_.ever_connected = health_.ever_connected || healthy;
    health_.last_error = healthy ? "" : "connection refused";
    health_.lag_ms = lag_ms;
    health_.rtt_us = rtt_us;
    for (auto& fn : callbacks_) fn();
}

void FakeEndpoint::set_replay_lsn(std::uint64_t lsn) {
    health_.replay_lsn = lsn;
    // A copy: a callback may register another one.
    const auto callbacks = lsn_callbacks_;
    for (auto& fn : callbacks) fn(lsn);
}

void FakeEndpoint::complete_next(pg::Outcome outcome) {
    Submitted s = std::move(jobs.front());
    jobs.pop_front();
    s.callbacks.done(std::move(outcome));
    if (draining && jobs.empty() && drained_) loop_.defer(std::move(drained_));
}

EndpointFactory FakeBackend::factory() {
    return [this](EventLoop& loop, pg::EndpointOptions options) -> std::unique_ptr<pg::Endpoint> {
        auto e = std::make_unique<FakeEndpoint>(loop, std::move(options));
        endpoints.push_back(e.get());
        return e;
    };
}

pg::Outcome ok_outcome(const std::string& served_by, std::vector<std::string> columns,
                       std::vector<std::vector<std::string>> rows, std::size_t max_chunk) {
    shm::Response response;
    response.status = shm::Status::ok;
    response.served_by = served_by;
    response.columns = std::move(columns);
    for (const auto& row : rows) {
        std::vector<std::optional<std::string_view>> values(row.begin(), row.end());
        response.add_row(values);
    }
    pg::Outcome outcome;
    outcome.ok = shm::encode_response(response, max_chunk, outcome.chunks) == shm::CodecError::ok;
    return outcome;
}

pg::Outcome error_outcome(const std::string& message, bool retry_elsewhere, std::size_t max_chunk) {
    shm::Response response;
    response.status = shm::Status::error;
    response.error = message;
    pg::Outcome outcome;
    (void)shm::encode_response(response, max_chunk, outcome.chunks);
    outcome.retry_elsewhere = retry_elsewhere;
    return outcome;
}

}  // namespace regiond::daemon::test

namespace regiond::daemon::test {

pg::Outcome cancelled_outcome(std::size_t max_chunk) {
    pg::Outcome outcome = error_outcome("cancelled", false, max_chunk);
    outcome.cancelled = true;
    return outcome;
}

}  // namespace regiond::daemon::test

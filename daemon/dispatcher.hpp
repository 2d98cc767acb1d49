// Turns decoded requests into jobs on the PostgreSQL endpoints and their outcomes
// into answers (the RequestHandler of ClientServer).
//
//   request -> count it -> not implemented / shutting down? answer at once
//           -> deadline = now + (timeout_ms or daemon.request_timeout)
//           -> plan_route() -> no candidate? answer with the route's reason
//           -> Endpoint::submit(job, completion)
//   completion -> the request still pending (client alive, not cancelled, same
//                 ticket)? else drop it
//              -> a read that failed on the endpoint (retry_elsewhere), not
//                 retried yet, deadline not passed, another candidate: retry
//                 there, once; a write is never retried
//              -> answer with the outcome's chunks
//
// Pending requests are keyed by (client id, request id) and carry a ticket that
// is unique for the daemon's life, so a late completion can never answer a
// newer request that reuses the id, nor reach a client that is gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "config/config.hpp"
#include "daemon/backends.hpp"
#include "daemon/client_server.hpp"
#include "daemon/stats.hpp"

namespace regiond::daemon {

class Dispatcher final : public RequestHandler {
public:
    /// `config` is the daemon's live configuration (SIGHUP updates it in place).
    Dispatcher(const config::Config& config, Backends& backends, Responder& responder, Stats& stats);
    ~Dispatcher() override;
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    void on_request(ClientId client, std::uint64_t request_id, const shm::RequestView& request) override;
    bool on_cancel(ClientId client, std::uint64_t request_id) override;
    void on_client_gone(ClientId client) override;

    /// SIGTERM: new requests are answered "regiond is shutting down".
    void begin_drain() noexcept { draining_ = true; }
    /// Answers every pending request with `message` and forgets them.
    void abandon_all(const std::string& message);
    std::size_t pending() const noexcept { return pending_.size(); }

private:
    using Key = std::pair<ClientId, std::uint64_t>;
    struct Pending {
        std::uint64_t ticket = 0;
        RouteKind kind = RouteKind::read_local;
        std::chrono::steady_clock::time_point deadline;
        std::vector<std::size_t> tried;  ///< endpoint indices
        pg::Job job;                     ///< kept for a retry (reads only)
    };

    void submit(const Key& key, Pending& pending, std::size_t endpoint);
    void complete(const Key& key, std::uint64_t ticket, pg::Outcome&& outcome);
    void answer_error(ClientId client, std::uint64_t request_id, std::string_view message);

    const config::Config& config_;
    Backends& backends_;
    Responder& responder_;
    Stats& stats_;
    std::map<Key, Pending> pending_;
    std::uint64_t next_ticket_ = 1;
    bool draining_ = false;
    /// Completions hold a weak reference: after the dispatcher is gone (daemon
    /// exit), a backend that still calls back finds it expired and does nothing.
    std::shared_ptr<Dispatcher*> self_;
};

}  // namespace regiond::daemon

// The event-loop interface of one rgd_client (rgd_start_*, rgd_event_fd,
// rgd_collect, rgd_calls_pending, rgd_cancel; the contract is in client.h).
//
// The descriptor
// --------------
// rgd_event_fd() is an epoll descriptor the library owns. Inside it:
//  * finished_  an eventfd, readable while finished calls wait to be collected
//               (or another thread asks the event loop to look: a blocking
//               leader that routed an answer of ours, or resigned);
//  * timer_     a timerfd for the next deadline or the next retry of queued
//               requests (ring full, or the daemon restarting);
//  * the current connection's client eventfd (the daemon writes it when it
//    answers and we asked: Connection::arm) and its socket (EPOLLRDHUP: the
//    daemon died).
// All are level-triggered and each is reset by collect() before it returns
// NULL, so a loop that collects until NULL never spins on the descriptor.
//
// A call's life: queued (its own copy of the request, waiting for ring space
// or for a connection) -> sent (registered in the Connection) -> finished
// (a result in finished_results_, waiting for collect). Every call reaches
// finished exactly once; cancel and timeouts finish it early and abandon it
// in the Connection (a late answer is dropped there).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "result.hpp"
#include "shm/codec.hpp"
#include "shm/unique_fd.hpp"

struct rgd_client;

namespace regiond::client {

/// A request that owns its text (the caller's buffers are theirs again as soon
/// as a start returns).
struct OwnedRequest {
    shm::Op op = shm::Op::read_local;
    std::uint32_t ttl_seconds = 0;
    std::string key;
    std::string token;
    std::string sql;
    std::vector<std::optional<std::string>> params;
    std::vector<std::string> invalidate_keys;

    static OwnedRequest copy_of(const shm::RequestView& view);
    /// A view into this object (valid while it lives and is not modified).
    shm::RequestView view() const;
};

class EventLoopCalls {
public:
    /// The descriptors, or nullptr and `error`.
    static std::unique_ptr<EventLoopCalls> create(std::string& error);
    ~EventLoopCalls();
    EventLoopCalls(const EventLoopCalls&) = delete;
    EventLoopCalls& operator=(const EventLoopCalls&) = delete;

    int fd() const noexcept { return epoll_.get(); }

    /// Starts a request (already checked by the C API). Never 0.
    std::uint64_t start(rgd_client& client, const shm::RequestView& request);
    /// A call that finished before it started (an argument error, a cache hit).
    std::uint64_t start_finished(rgd_client& client, ResultPtr result);
    /// One finished call, or nullptr (never blocks on the daemon).
    ResultPtr collect(rgd_client& client, std::uint64_t& id);
    std::size_t pending() const;
    bool cancel(std::uint64_t id);

private:
    using Clock = std::chrono::steady_clock;
    enum class Stage : std::uint8_t { queued, sent };
    struct Call {
        OwnedRequest request;
        std::optional<Clock::time_point> deadline;
        unsigned timeout_ms = 0;  ///< as set when it started, for the message
        Stage stage = Stage::queued;
        int resends = 0;
        std::optional<Clock::time_point> lost_since;  ///< first lost with its connection
        std::shared_ptr<Connection> connection;  ///< sent: where (abandon goes there)
    };

    EventLoopCalls(shm::UniqueFd epoll, shm::UniqueFd finished, shm::UniqueFd timer);

    // All below run with mu_ held.
    /// `woken`: called because the descriptor was readable (collect), so look
    /// at which signal fired and reset it; a start only sends and re-arms.
    void progress(rgd_client& client, bool woken);
    void follow_connection(rgd_client& client);
    void watch(const std::shared_ptr<Connection>& connection);
    void unwatch();
    void take_finished_from(Connection& connection);
    void send_queued(rgd_client& client);
    void expire(Clock::time_point now);
    void arm_timer(Clock::time_point now);
    void finish(std::uint64_t id, ResultPtr result);
    void forget_deadline(std::uint64_t id, const Call& call);
    void reset_finished_signal() noexcept;
    void raise_finished_signal() noexcept;

    shm::UniqueFd epoll_;
    shm::UniqueFd finished_;
    shm::UniqueFd timer_;

    mutable std::mutex mu_;
    std::unordered_map<std::uint64_t, Call> calls_;  ///< queued or sent, not finished
    std::deque<std::uint64_t> queue_;                ///< queued calls in the order to send them
    std::multimap<Clock::time_point, std::uint64_t> deadlines_;
    std::deque<std::pair<std::uint64_t, ResultPtr>> finished_results_;
    std::shared_ptr<Connection> watched_;  ///< whose descriptors are in the epoll set
    std::vector<std::pair<std::uint64_t, CallOutcome>> scratch_;
    Clock::time_point next_connect_{};  ///< no reconnect attempt before this (daemon down)
    Clock::time_point timer_at_ = Clock::time_point::max();
    /// We wrote finished_ since we last reset it: do not write again (a
    /// system call per result otherwise). Others (Connection) write it
    /// without telling us; a second write then is harmless.
    bool finished_raised_ = false;
};

}  // namespace regiond::client

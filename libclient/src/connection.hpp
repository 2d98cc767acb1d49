// One live connection to a daemon: the socket (kept open only for hang-up
// detection), the client segment's rings, the daemon's eventfd and the read-only
// state segment. Shared by every thread of an rgd_client; replaced as a whole
// when the daemon restarts (client.cpp).
//
// Threads and rings
// -----------------
// Sending: the request ring has exactly one producer, so pushes are serialised by
// produce_mu_. A push reports whether the daemon sleeps (need-wake-up flag); only
// then is the eventfd written. A full ring is waited out (bounded by the call's
// deadline) while helping to drain responses, since a daemon blocked on a full
// response ring may stop taking requests.
//
// Receiving: the response ring has exactly one consumer, the *leader*: whichever
// waiting thread finds no leader takes the role (under route_mu_). The leader pops
// records and routes each by request_id to that call's decoder (responses arrive
// in any order, chunked); it wakes a call's thread through the call's condition
// variable when the last chunk is in, and a record for an unknown id (its caller
// timed out) is dropped. While nothing is there the leader spins while an answer
// is expected soon (an ExpectedWaitSpinner: up to twice the recent average wait,
// never when answers take longer than 250 us; a sleeping hand-off costs ~20 us), then
// sleeps on the response ring's futex word with the need-wake-up protocol, in
// slices of 100 ms. When its own answer is complete (or its deadline passes) it
// resigns and wakes one other waiter, who becomes the next leader. Followers
// sleep on their condition variable. So at most one thread per client spins.
//
// Event-loop calls (rgd_start_*, event_loop_calls.cpp) share the rings and the
// leader role: start() pushes without waiting and registers the call as an
// event-loop call; whoever routes its answer (a blocking call's leader, or
// pump() when no thread leads) moves it to finished_event_calls_ and, unless
// that is pump() itself, writes the finished-notify eventfd so the event loop
// looks. Before the event loop goes back to sleep, arm() raises the response
// ring's need-wake-up flag with client_wake = futex_and_eventfd, so the daemon
// writes client_eventfd() as well as waking the futex. A blocking leader that
// resigns while event-loop calls are in flight writes the notify eventfd too:
// the event loop must take over draining and re-arm.
//
// Liveness: the daemon stamps the state segment's heartbeat at least every
// 100 ms. alive_fast() costs no system call while the heartbeat is fresh; when it
// is stale (> 1 s) it polls the socket for a hang-up. A leader whose futex slice
// times out polls the socket as well, so a daemon killed in the middle of a call
// is noticed within ~100 ms. A dead connection fails every call in flight as
// "lost", telling each whether the daemon had taken its request out of the ring.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "shm/client_segment.hpp"
#include "shm/codec.hpp"
#include "shm/error.hpp"
#include "shm/expected_wait_spinner.hpp"
#include "shm/state_segment.hpp"
#include "shm/unique_fd.hpp"
#include "shm/wakeup.hpp"

namespace regiond::client {

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;  ///< nullopt: no deadline

/// A heartbeat older than this makes the fast path look at the socket.
inline constexpr std::chrono::milliseconds kHeartbeatStale{1000};
/// How long the leader sleeps on the futex before it checks the socket.
inline constexpr std::chrono::milliseconds kLivenessProbe{100};

struct CallOutcome {
    enum class Kind : std::uint8_t {
        answered,   ///< `response` holds the daemon's answer (which may be an error)
        timed_out,  ///< the deadline passed (request abandoned, cancel sent)
        failed,     ///< `message` says why; nothing to retry
        lost,       ///< the connection died; see sent/consumed
    };
    Kind kind = Kind::failed;
    shm::Response response;
    std::string message;
    bool sent = false;      ///< the request was published in the request ring
    bool consumed = false;  ///< lost: the daemon had taken it out of the ring
};

class Connection {
public:
    /// Handshake (before `handshake_deadline`), attach the client segment, map
    /// the state segment read-only.
    static shm::Expected<std::shared_ptr<Connection>> open(const std::string& socket_path,
                                                           Clock::time_point handshake_deadline);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Sends `request` as `request_id` and waits for its complete answer.
    CallOutcome call(const shm::RequestView& request, std::uint64_t request_id, Deadline deadline);

    /// Known dead (a hang-up was seen, the rings broke, or it was closed).
    bool dead() const noexcept { return dead_.load(std::memory_order_acquire); }
    /// False if dead; without a system call while the heartbeat is fresh.
    bool alive_fast() noexcept;
    /// Marks the connection dead and fails every call in flight as lost.
    void mark_dead(const std::string& reason);

    const shm::StateView& state() const noexcept { return state_; }
    /// A hit in the hot cache for exactly this key and query (the value blob
    /// in `blob`), counted in this client's segment for the daemon to sum.
    /// Misses while the daemon's heartbeat is stale: nobody keeps the cache
    /// current then.
    bool cache_lookup(std::string_view key, std::string_view sql,
                      std::span<const std::optional<std::string_view>> params, std::vector<std::byte>& blob);
    const std::string& socket_path() const noexcept { return path_; }

    // ---- Event-loop calls (see the top of this file) ----
    enum class StartStatus : std::uint8_t {
        sent,       ///< registered and published in the request ring
        ring_full,  ///< nothing registered: try again once the daemon took requests out
        lost,       ///< the connection is dead: nothing registered
        failed,     ///< refused before sending (`message` says why): nothing registered
    };
    /// Registers `request_id` as an event-loop call and pushes it once, never waiting.
    StartStatus start(const shm::RequestView& request, std::uint64_t request_id, std::string& message);
    /// Moves the event-loop calls that finished (answered, failed or lost) into
    /// `out`, in the order they finished.
    void take_finished(std::vector<std::pair<std::uint64_t, CallOutcome>>& out);
    /// Drains the response ring if no thread leads (a blocking leader routes
    /// the answers itself otherwise).
    void pump();
    /// Asks the daemon to write client_eventfd() at its next answer. False when
    /// an answer is already there (pump again before sleeping); true when the
    /// event loop may sleep (also when a blocking leader is active: it routes,
    /// then notifies).
    bool arm();
    /// Forgets an event-loop call (timed out or cancelled): a late answer is
    /// dropped, and the daemon is told to stop working on it.
    void abandon(std::uint64_t request_id);
    /// The eventfd written when an event-loop call finished on another thread
    /// (or a blocking leader resigned with event-loop calls in flight); -1: none.
    void set_finished_notify(int fd);
    int client_eventfd() const noexcept { return client_eventfd_.get(); }
    int socket_fd() const noexcept { return socket_.get(); }
    /// A hang-up of the daemon's socket marks the connection dead; true if it was.
    bool check_hang_up();
    std::uint32_t max_request() const noexcept { return max_request_; }
    std::uint64_t client_id() const noexcept { return client_id_; }

private:
    struct Pending {
        explicit Pending(std::uint64_t id) : request_id(id) {}
        const std::uint64_t request_id;
        shm::ResponseDecoder decoder;  ///< fed by the leader only, read after `complete`
        std::condition_variable cv;    ///< waits with route_mu_
        bool complete = false;         ///< route_mu_: answered, failed or lost
        bool lost = false;             ///< route_mu_
        bool waiting = false;          ///< route_mu_: sleeping on cv (a candidate leader)
        std::string failure;           ///< route_mu_: a malformed answer
        bool event_call = false;       ///< started by start(): finishes into finished_event_calls_
        std::uint64_t sent_end = 0;    ///< event calls: the request ring's head after the push
    };
    enum class SendStatus : std::uint8_t { sent, timed_out, failed, lost };

    Connection(std::string path, shm::UniqueFd socket, shm::UniqueFd eventfd, shm::UniqueFd client_eventfd,
               shm::ClientSegment segment,
               shm::StateView state, const shm::RingControl* request_control, std::byte* probe_base,
               std::size_t probe_size);

    SendStatus send(const shm::RequestView& request, std::uint64_t request_id, std::size_t size, Deadline deadline,
                    std::uint64_t& sent_end);
    void send_cancel(std::uint64_t request_id) noexcept;
    void wake_daemon() noexcept;
    void wait_for(Pending& mine, Deadline deadline);
    void lead(Pending& mine, Deadline deadline);
    bool drain(const Pending* mine);
    bool route(std::uint64_t request_id, std::uint16_t flags, std::size_t size, const Pending* mine);
    void help_drain();
    void hand_off_locked(const Pending* skip);
    void finish_event_call_locked(const std::shared_ptr<Pending>& q);
    void notify_finished_locked() noexcept;
    std::optional<std::string> refuse_size(std::size_t size) const;
    bool socket_hung_up() const noexcept;
    std::uint64_t request_ring_tail() const noexcept;

    const std::string path_;
    shm::UniqueFd socket_;
    shm::UniqueFd eventfd_;
    shm::UniqueFd client_eventfd_;
    shm::ClientSegment segment_;
    shm::StateView state_;
    shm::CacheReader cache_reader_;  ///< over state_'s mapping (made once: it validates the header)
    shm::DaemonWake daemon_wake_;
    std::uint32_t max_request_;
    std::uint64_t client_id_;
    // A second, read-only mapping of the client segment: the request ring's
    // counters, to tell whether the daemon took a request before it died.
    // (RingProducer does not expose the consumer's tail.)
    const shm::RingControl* request_control_;
    std::byte* probe_base_;
    std::size_t probe_size_;

    std::atomic<bool> dead_{false};

    std::mutex produce_mu_;  ///< the request ring's single producer

    std::mutex route_mu_;  ///< pending_, leader_active_, Pending::complete/lost/failure, dead_reason_
    bool leader_active_ = false;
    std::unordered_map<std::uint64_t, std::shared_ptr<Pending>> pending_;
    std::string dead_reason_;
    // Event-loop calls (route_mu_):
    std::vector<std::shared_ptr<Pending>> finished_event_calls_;
    std::size_t event_calls_in_flight_ = 0;  ///< registered and not yet finished or abandoned
    bool event_pump_leads_ = false;          ///< pump() holds the leader role
    int finished_notify_fd_ = -1;

    // Leader only (whoever holds leader_active_):
    std::vector<std::byte> pop_buffer_;
    shm::ExpectedWaitSpinner spinner_;  // used by the leader only
};

/// The error of every call that lost its connection and could not be re-sent.
inline constexpr const char* kConnectionLost = "connection to regiond lost (daemon restarted?): retry";

}  // namespace regiond::client

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
    };
    enum class SendStatus : std::uint8_t { sent, timed_out, failed, lost };

    Connection(std::string path, shm::UniqueFd socket, shm::UniqueFd eventfd, shm::ClientSegment segment,
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
    bool socket_hung_up() const noexcept;
    std::uint64_t request_ring_tail() const noexcept;

    const std::string path_;
    shm::UniqueFd socket_;
    shm::UniqueFd eventfd_;
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

    // Leader only (whoever holds leader_active_):
    std::vector<std::byte> pop_buffer_;
    shm::ExpectedWaitSpinner spinner_;  // used by the leader only
};

/// The error of every call that lost its connection and could not be re-sent.
inline constexpr const char* kConnectionLost = "connection to regiond lost (daemon restarted?): retry";

}  // namespace regiond::client

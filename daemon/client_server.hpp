// The servicing of every client's rings (the handshake is the Acceptor's):
// taking requests out under the client's limits, sending answers and streamed
// chunks back with backpressure, spinning on hot rings, and dropping clients
// that break the protocol, stop reading, or are no longer admitted.
//
// Request flow. A client pushes a request record into its request ring and, only
// if the ring's need-wake-up flag is set, writes its eventfd. The eventfd wakes
// the loop; service() copies records out (never parsing in place), decodes them
// with shm::decode_request and hands each to the RequestHandler (the dispatcher).
// Answers come back through respond() and stream(): chunks go straight into the
// response ring, or into the client's OutputQueue when the ring is full; the
// client is woken (futex) only when its consumer_sleeping flag says it sleeps.
//
// Limits on what a client can make the daemon hold (request_flow.hpp,
// in_flight.hpp, backlog.hpp). A request is taken only while the client has
// fewer than max_in_flight_per_client in flight (counted until the dispatcher's
// release(), i.e. until the server finished the job), its uid has fewer orphans
// than that, and its queued output is within its window. Otherwise the request
// is parked (copied out, at most one per client) and the ring is not read
// further until a release or a drained queue lets it go; cancel records ahead
// of it are read, so a client at its cap can still cancel. A request record
// larger than max_request is answered with "request of N exceeds max_request
// (M)" and the client stays. Streamed chunks pause their job while the client's
// queue exceeds its window; all queues together are capped by max_backlog.
//
// Wake-ups and spinning. A client that was just serviced or answered is "hot":
// its need-wake-up flag is clear, so its next request costs it no system call,
// and before the loop blocks (EventLoop::before_block) the daemon spins briefly on
// the hot rings with an AdaptiveSpinner (shm/wakeup.hpp). When the spin finds
// nothing, every hot client goes through prepare_sleep() (set the flag, fence,
// re-check) and the loop blocks in epoll. Spinning is only allowed while no
// database work is in flight (the caller's spin_allowed()): on 2 cores a daemon
// spinning while PostgreSQL works steals its CPU, so under load the budget is 0.
// Whether the daemon and which clients may spin is decided for the whole host
// (daemon/waiting/wait_coordinator.hpp): the clients' permits are set through
// grant_spin_permits(). A wake-up a push asks for is owed, not done at once:
// flush_wakeups() performs them at the end of the loop pass, one per client
// however many answers it got in the pass, so a woken client does not take
// the core the daemon is still answering others on.
//
// A dead client. The socket stays registered for EPOLLRDHUP/EPOLLHUP; when it
// closes, the session is removed from the table, its in-flight count becomes
// orphans of its uid, the handler is told (deferred: it cancels the jobs), and
// the session object (segment, eventfd, socket) is destroyed after the current
// dispatch. Completions that arrive later look the client up by id (ids are
// never reused), find nothing and are dropped.
//
// Hostile clients. A corrupt ring, an undecodable request, an unknown record
// kind, a request id reused while in flight, data on the socket after the
// handshake, responses not read for max_stall, or the largest backlog when all
// of them pass max_backlog drop that client alone, with one log line naming its
// pid and uid and the reason.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/acceptor.hpp"
#include "daemon/client_session.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/in_flight.hpp"
#include "daemon/request_flow.hpp"
#include "daemon/stats.hpp"
#include "shm/wakeup.hpp"

namespace regiond::daemon {

/// What a client may make the daemon hold; every field is live (SIGHUP).
struct ClientLimits {
    std::uint64_t max_request = 256u << 10;  ///< capped by the ring's record limit
    std::size_t max_in_flight_per_client = 256;
    std::uint64_t max_backlog = 256u << 20;
    std::chrono::nanoseconds max_stall = std::chrono::seconds(30);
};

struct ClientServerSettings {
    AcceptorSettings acceptor;
    ClientLimits limits;
    std::uint32_t spin_max = 2048;  ///< AdaptiveSpinner ceiling when spinning is allowed
};

class ClientServer final : public Responder {
public:
    ClientServer(EventLoop& loop, ClientServerSettings settings, Stats& stats);
    ~ClientServer() override;
    ClientServer(const ClientServer&) = delete;
    ClientServer& operator=(const ClientServer&) = delete;

    void set_handler(RequestHandler* handler) { handler_ = handler; }
    /// Asked before each spin: may the loop burn CPU now?
    void set_spin_allowed(std::function<bool()> fn) { spin_allowed_ = std::move(fn); }
    void on_clients_changed(std::function<void()> fn) { clients_changed_ = std::move(fn); }

    /// Binds and listens (the path was cleared of a stale socket by the caller).
    shm::Expected<void> listen() { return acceptor_.listen(); }
    /// SIGTERM: close the listener and unlink the socket.
    void stop_accepting() { acceptor_.stop_accepting(); }
    /// SIGHUP. Connected clients that `access` no longer admits are dropped.
    void update(std::uint32_t max_clients, AccessPolicy access, ClientLimits limits);

    /// The EventLoop::before_block hook: spin on hot clients, then let them sleep.
    bool before_block();

    /// Performs the wake-ups owed to clients (the EventLoop's end-of-pass hook).
    void flush_wakeups();

    /// How the clients say they wait for answers now (their untrusted words).
    struct WaitCensus {
        std::uint32_t spinning = 0;
        std::uint32_t sleeping = 0;
    };
    WaitCensus wait_census() const noexcept;
    /// Requests taken from the rings since start (the waiting decision's
    /// activity signal).
    std::uint64_t requests_taken() const noexcept { return requests_taken_; }
    /// Gives up to `permits` clients that sent a request within
    /// kPermitActivity a spin permit of `permit_ns`, and every other client
    /// none. Holders keep theirs while the permits suffice; the others take
    /// turns from one decision to the next.
    void grant_spin_permits(std::uint32_t permits, std::uint32_t permit_ns, EventLoop::Clock::time_point now);
    static constexpr std::chrono::milliseconds kPermitActivity{50};

    /// Pushes what can be pushed of every queued output (at shutdown).
    void flush_all();
    /// Closes every client and pending handshake (at exit).
    void close_all();

    std::size_t client_count() const noexcept { return sessions_.size(); }
    /// Hot-cache hits the clients served themselves (their own counters, summed
    /// with saturation; those of clients gone are kept).
    std::uint64_t client_cache_hits() const noexcept;
    std::vector<ClientInfo> clients() const;
    /// Requests of clients that went away whose jobs have not ended yet.
    std::size_t orphaned_requests() const noexcept { return ledger_.orphans_total(); }
    std::size_t requests_in_flight() const noexcept { return ledger_.total(); }
    /// Response bytes queued beyond the rings, all clients.
    std::size_t backlog_bytes() const noexcept { return backlog_total_; }

    // Responder
    void respond(ClientId client, std::uint64_t request_id, std::vector<std::vector<std::byte>> chunks) override;
    void respond_error(ClientId client, std::uint64_t request_id, std::string_view message) override;
    bool stream(ClientId client, std::uint64_t request_id, std::vector<std::byte>&& chunk) override;
    void release(ClientId client) override;
    void drop_client(ClientId client, std::string_view reason) override;

private:
    void add_session(NewClient&& client);
    void on_socket_event(ClientId id);
    void on_eventfd(ClientId id);

    ClientSession* find(ClientId id);
    void service(ClientSession& session);
    /// Whether the client may have one more request in flight now; notes (and
    /// logs, see UidWait) why a uid's clients wait for its orphans.
    bool may_take(ClientSession& session);
    void note_uid_waits(uid_t uid);
    /// Counts, decodes and hands over one request; false when the client was dropped.
    bool take(ClientSession& session, std::uint64_t request_id, std::span<const std::byte> bytes);
    /// Spins (spinner_'s budget) until a hot, unpaused ring has data.
    bool spin_on_hot_rings();
    void mark_hot(ClientSession& session);

    /// Sends one record (ring or queue); false when the client was dropped.
    bool send(ClientSession& session, OutgoingRecord record, bool& wake);
    /// Moves queued records into the ring (and reacts to a drained queue).
    void flush(ClientSession& session);
    /// After records were sent or flushed: wake the client, apply the stall
    /// rule and the total cap, schedule the next flush.
    void after_output(ClientSession& session, bool wake);
    void enforce_backlog_cap();
    void on_retry(ClientId id);
    void maybe_resume(ClientSession& session);
    void resume_uid(uid_t uid);
    void remove(ClientSession& session, std::string_view reason, bool dropped);
    std::uint64_t effective_max_request() const noexcept;

    EventLoop& loop_;
    ClientServerSettings settings_;
    Stats& stats_;
    RequestHandler* handler_ = nullptr;
    std::function<bool()> spin_allowed_;
    std::function<void()> clients_changed_;

    Acceptor acceptor_;
    std::unordered_map<ClientId, std::shared_ptr<ClientSession>> sessions_;
    std::uint64_t departed_cache_hits_ = 0;  ///< client_cache_hits() of clients removed
    InFlightLedger ledger_;
    /// A uid whose sessions wait for its orphans. Logged at most once a minute
    /// per uid, however often a flood makes it wait and go on again.
    struct UidWait {
        bool waiting = false;
        bool announce_end = false;  ///< this wait was logged: log its end too
        std::size_t unlogged = 0;   ///< waits since the last log line
        EventLoop::Clock::time_point logged{};
    };
    std::unordered_map<uid_t, UidWait> uid_waits_;
    std::size_t backlog_total_ = 0;  ///< sum of every session's output().bytes()
    std::size_t window_;             ///< stream_window(ring_size)
    std::vector<ClientId> hot_;
    std::vector<ClientId> owed_wakeups_;  ///< clients with wake_pending, in order
    std::uint64_t requests_taken_ = 0;
    std::size_t permit_turn_ = 0;                 ///< where grant_spin_permits() starts next
    std::vector<ClientSession*> permit_scratch_;  ///< scratch of grant_spin_permits()
    std::vector<shm::RingConsumer*> spin_rings_;  // scratch for before_block()
    shm::AdaptiveSpinner spinner_;
    std::vector<std::byte> request_buffer_;  ///< effective_max_request() bytes
    LoopScope scope_;                        ///< deferred calls die with this object
};

}  // namespace regiond::daemon

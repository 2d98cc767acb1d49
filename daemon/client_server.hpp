// The client side of the daemon: the listening socket, the handshake, and the
// servicing of every client's rings.
//
// Request flow. A client pushes a request record into its request ring and, only
// if the ring's need-wake-up flag is set, writes its eventfd. The eventfd wakes
// the loop; service() copies records out (never parsing in place), decodes them
// with shm::decode_request and hands each to the RequestHandler (the dispatcher).
// Answers come back through respond(): chunks go straight into the response ring,
// or into the client's OutputQueue when the ring is full; the client is woken
// (futex) only when its consumer_sleeping flag says it sleeps.
//
// Wake-ups and spinning. A client that was just serviced or answered is "hot":
// its need-wake-up flag is clear, so its next request costs it no system call,
// and before the loop blocks (EventLoop::before_block) the daemon spins briefly on
// the hot rings with an AdaptiveSpinner (shm/wakeup.hpp). When the spin finds
// nothing, every hot client goes through prepare_sleep() (set the flag, fence,
// re-check) and the loop blocks in epoll. Spinning is only allowed while no
// database work is in flight (the caller's spin_allowed()): on 2 cores a daemon
// spinning while PostgreSQL works steals its CPU, so under load the budget is 0.
//
// A dead client. The socket stays registered for EPOLLRDHUP/EPOLLHUP; when it
// closes, the session is removed from the table, the handler discards its
// in-flight work (on_client_gone), and the session object (segment, eventfd,
// socket) is destroyed after the current dispatch. Completions that arrive later
// look the client up by id (ids are never reused), find nothing and are dropped.
//
// Hostile clients. A corrupt ring, an undecodable request, an unknown record
// kind, a request id reused while in flight, data on the socket after the
// handshake, or responses not read (OutputQueue limits) drop that client alone,
// with one log line naming its pid and uid and the reason.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/access_policy.hpp"
#include "daemon/client_session.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/instance_guard.hpp"
#include "daemon/stats.hpp"
#include "shm/codec.hpp"
#include "shm/wakeup.hpp"

namespace regiond::daemon {

/// Receives decoded requests (the dispatcher).
class RequestHandler {
public:
    virtual ~RequestHandler() = default;
    /// The request's strings point into a buffer valid only during the call.
    virtual void on_request(ClientId client, std::uint64_t request_id, const shm::RequestView& request) = 0;
    /// True if the request was still pending (the handler forgot it).
    virtual bool on_cancel(ClientId client, std::uint64_t request_id) = 0;
    virtual void on_client_gone(ClientId client) = 0;
};

/// Sends answers back (implemented by ClientServer).
class Responder {
public:
    virtual ~Responder() = default;
    /// The final answer to a request: encoded chunks, head first.
    virtual void respond(ClientId client, std::uint64_t request_id, std::vector<std::vector<std::byte>> chunks) = 0;
    virtual void respond_error(ClientId client, std::uint64_t request_id, std::string_view message) = 0;
    /// Drops a client that broke the protocol (deferred destruction: safe from
    /// inside any callback).
    virtual void drop_client(ClientId client, std::string_view reason) = 0;
};

struct ClientServerSettings {
    std::string socket_path;
    std::optional<gid_t> group;
    mode_t mode = 0660;
    std::uint32_t ring_size = 1u << 20;  ///< both rings of every client; fixed for the daemon's life
    std::uint32_t max_clients = 256;
    std::uint64_t max_request = 8u << 20;
    std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(2);
    OutputLimits output_limits;
    std::string state_segment;
    std::uint64_t generation = 0;
    AccessPolicy access;
    std::size_t max_in_flight_per_client = 256;
    std::size_t max_pending_handshakes = 64;
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
    shm::Expected<void> listen();
    /// SIGTERM: close the listener and unlink the socket; handshakes still in
    /// progress are answered shutting_down.
    void stop_accepting();
    /// Live-changeable settings (SIGHUP).
    void update(std::uint32_t max_clients, std::uint64_t max_request, AccessPolicy access,
                std::chrono::nanoseconds output_stall);

    /// The EventLoop::before_block hook: spin on hot clients, then let them sleep.
    bool before_block();

    /// Pushes what can be pushed of every queued output (at shutdown).
    void flush_all();
    /// Closes every client (at exit).
    void close_all();

    std::size_t client_count() const noexcept { return sessions_.size(); }
    std::vector<ClientInfo> clients() const;

    // Responder
    void respond(ClientId client, std::uint64_t request_id, std::vector<std::vector<std::byte>> chunks) override;
    void respond_error(ClientId client, std::uint64_t request_id, std::string_view message) override;
    void drop_client(ClientId client, std::string_view reason) override;

private:
    struct Handshake {
        shm::UniqueFd fd;
        std::array<std::byte, 64> buffer{};
        std::size_t received = 0;
        EventLoop::TimerId timer = 0;
    };

    void on_listener_readable();
    void on_handshake_readable(int fd);
    void finish_handshake(int fd);
    void end_handshake(int fd);
    void send_refusal(int fd, std::uint32_t status, const std::string& message);
    void on_socket_event(ClientId id);
    void on_eventfd(ClientId id);

    ClientSession* find(ClientId id);
    void service(ClientSession& session);
    /// Spins (spinner_'s budget) until a hot, unpaused ring has data.
    bool spin_on_hot_rings();
    void mark_hot(ClientSession& session);
    void after_output(ClientSession& session, bool wake);
    void arm_retry(ClientSession& session);
    void on_retry(ClientId id);
    void maybe_resume(ClientSession& session);
    void remove(ClientSession& session, std::string_view reason, bool dropped);
    void pause_listener();
    std::uint32_t max_payload() const noexcept;

    EventLoop& loop_;
    ClientServerSettings settings_;
    Stats& stats_;
    RequestHandler* handler_ = nullptr;
    std::function<bool()> spin_allowed_;
    std::function<void()> clients_changed_;

    UnixListener listener_;
    bool accepting_ = false;
    std::unordered_map<int, Handshake> handshakes_;
    std::unordered_map<ClientId, std::shared_ptr<ClientSession>> sessions_;
    std::vector<ClientId> hot_;
    std::vector<shm::RingConsumer*> spin_rings_;  // scratch for before_block()
    ClientId next_id_ = 1;
    shm::AdaptiveSpinner spinner_;
    std::vector<std::byte> request_buffer_;
    EventLoop::Clock::time_point last_refusal_log_{};
};

}  // namespace regiond::daemon

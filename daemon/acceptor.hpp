// The client socket and the handshake (shm/handshake.hpp): accept, read the
// 64-byte hello within handshake_timeout, check the protocol version, the
// peer's credentials (SO_PEERCRED, access_policy.hpp) and daemon.max_clients,
// create the client's sealed segment and eventfd, and send the welcome with
// both fds. A refused peer gets a welcome that says why; a peer that sends
// no hello in time, or not a hello, is closed with one log line.
//
// What comes out is a NewClient for ClientServer, which services its rings.
// Bounded: at most max_pending_handshakes connections without a hello (more are
// closed at once, logged at most every 10 s); out of descriptors, the listener
// pauses for 100 ms instead of spinning the loop.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "daemon/access_policy.hpp"
#include "daemon/client_session.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/unix_listener.hpp"
#include "shm/client_segment.hpp"
#include "shm/error.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon {

struct AcceptorSettings {
    std::string socket_path;
    std::optional<gid_t> group;
    mode_t mode = 0660;
    std::uint32_t ring_size = 1u << 20;  ///< both rings of every client; fixed for the daemon's life
    std::uint32_t max_clients = 256;     ///< live (SIGHUP)
    std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(2);
    std::string state_segment;
    std::uint64_t generation = 0;
    AccessPolicy access;  ///< live (SIGHUP)
    /// Published in every client segment (ClientHeader::max_request); live.
    std::uint32_t max_request = 0;
    std::size_t max_pending_handshakes = 64;
};

/// A client that completed the handshake: the welcome with its fds was sent.
struct NewClient {
    ClientInfo info;
    PeerCredentials credentials;
    shm::UniqueFd socket;
    shm::UniqueFd eventfd;         ///< the client wakes the daemon through it
    shm::UniqueFd client_eventfd;  ///< the daemon wakes a client with an event loop through it
    shm::ClientSegmentOwner segment;
};

class Acceptor {
public:
    using Accepted = std::function<void(NewClient&&)>;
    using ClientCount = std::function<std::size_t()>;

    Acceptor(EventLoop& loop, AcceptorSettings settings, ClientCount clients, Accepted accepted);
    ~Acceptor();
    Acceptor(const Acceptor&) = delete;
    Acceptor& operator=(const Acceptor&) = delete;

    /// Binds and listens (the path was cleared of a stale socket by the caller).
    shm::Expected<void> listen();
    /// SIGTERM: close the listener and unlink the socket; handshakes still in
    /// progress are answered shutting_down.
    void stop_accepting();
    /// Closes every connection still in its handshake (at exit).
    void close_handshakes();
    void update(std::uint32_t max_clients, AccessPolicy access, std::uint32_t max_request);
    const AccessPolicy& access() const noexcept { return settings_.access; }

private:
    struct Handshake {
        shm::UniqueFd fd;
        std::array<std::byte, 64> buffer{};
        std::size_t received = 0;
        // After fd: removed from the loop before it closes.
        Watch watch;
        TimerHandle timer;
    };

    void watch_listener();
    void on_listener_readable();
    void pause_listener();
    void on_handshake_readable(int fd);
    void finish_handshake(int fd);
    void end_handshake(int fd);
    void send_refusal(int fd, std::uint32_t status, const std::string& message);

    EventLoop& loop_;
    AcceptorSettings settings_;
    ClientCount clients_;
    Accepted accepted_;
    UnixListener listener_;
    Watch listener_watch_;
    TimerHandle listener_pause_;
    bool accepting_ = false;
    std::unordered_map<int, Handshake> handshakes_;
    ClientId next_id_ = 1;  ///< never reused: late completions cannot reach a newer client
    EventLoop::Clock::time_point last_refusal_log_{};
};

}  // namespace regiond::daemon

// rgd_client: the socket path, the per-call timeout and the current connection,
// replaced by a new one when the daemon restarts.
//
// Reconnect and re-send
// ---------------------
// Every call starts by checking the current connection: known dead, or its
// heartbeat stale and its socket hung up (Connection::alive_fast, no system call
// while the heartbeat is fresh) means a new connection is made first, by one
// thread while the others wait for it. A call whose connection dies while it is in
// flight is re-sent on a new connection when that is safe:
//  * a request the daemon never took out of the request ring (its tail did not
//    pass the record) was never executed: any request may be re-sent;
//  * a read may always be re-sent: running it twice changes nothing;
//  * a write the daemon did take must NOT be re-sent: it may have committed on the
//    primary before the daemon died (only the answer was lost), and running it
//    again would apply it twice (a second INSERT, a double increment). The caller
//    gets "connection to regiond lost (daemon restarted?): retry" and decides,
//    e.g. after checking whether the write took effect.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "connection.hpp"
#include "event_loop_calls.hpp"
#include "result.hpp"
#include "shm/codec.hpp"

struct rgd_client {
    std::string socket_path;
    std::atomic<unsigned> timeout_ms{30000};
    std::atomic<std::uint64_t> next_request_id{1};
    std::mutex connection_mu;  ///< guards `connection`; held while reconnecting
    std::shared_ptr<regiond::client::Connection> connection;
    /// The event-loop interface, made at its first use (declared after
    /// `connection`: destroyed first, while the connection it watches lives).
    std::mutex event_calls_mu;
    std::unique_ptr<regiond::client::EventLoopCalls> event_calls;
};

namespace regiond::client {

inline constexpr unsigned kDefaultTimeoutMs = 30000;
inline constexpr const char* kDefaultSocket = "/run/regiond/regiond.sock";
/// The handshake of a (re)connect never takes longer than this, nor than the call's deadline.
inline constexpr std::chrono::milliseconds kHandshakeTimeout{10000};
/// A lost call is re-sent at most this many times (a daemon in a crash loop).
inline constexpr int kMaxResends = 2;

/// The deadline of a call starting now with this timeout (0: none).
Deadline deadline_for(unsigned timeout_ms);
/// The request's timeout_ms for what is left of `deadline` (0: none; at least 1).
std::uint32_t remaining_ms(Deadline deadline);

/// socket_path if given, else $REGIOND_SOCKET if set and not empty, else kDefaultSocket.
std::string resolve_socket_path(const char* socket_path);

/// Connects (rgd_connect). nullptr and `error` on failure.
std::unique_ptr<rgd_client> connect(const char* socket_path, std::string& error);

/// The client's connection, or a new one if it is dead (see above). nullptr and
/// `error` when the daemon cannot be reached.
std::shared_ptr<Connection> usable_connection(rgd_client& client, Deadline deadline, std::string& error);

/// Runs one request with the client's timeout, reconnecting and re-sending as
/// described above. Never returns nullptr (throws only std::bad_alloc).
ResultPtr execute(rgd_client& client, shm::RequestView& request);

/// rgd_health: the endpoint table of the state segment.
ResultPtr health(rgd_client& client);

/// A health result from a state segment (exposed for tests).
ResultPtr health_from(const shm::StateView& state);

}  // namespace regiond::client

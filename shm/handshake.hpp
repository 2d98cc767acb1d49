// The connection handshake on the daemon's client socket (API.md: rgd_connect).
//
//   client                                   daemon
//   connect(socket)                 ──►      accept; SO_PEERCRED + SO_PEERGROUPS
//   HelloMessage (64 bytes)         ──►      validate magic/version
//                                   ◄──      WelcomeMessage (512 bytes)
//                                            + SCM_RIGHTS [client memfd, daemon eventfd]
//                                              when status == ok, no fds otherwise
//
// After the welcome the socket carries no more data: it stays open only so the
// daemon learns (EPOLLHUP/EPOLLRDHUP) that the client process went away and can
// free its slot and discard its in-flight work. Requests and responses travel in
// the memfd's rings; the client wakes the daemon through the eventfd (only when
// the request ring's need-wake-up flag is set), the daemon wakes the client
// through the response ring's futex word.
//
// Both messages are fixed-size PODs (shared-memory ABI rules, shm/layout.hpp):
// a client and daemon of different builds agree on the bytes or refuse each
// other with a message naming both versions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace regiond::shm {

inline constexpr char kHelloMagic[8] = {'R', 'G', 'D', 'H', 'E', 'L', 'O', '\0'};
inline constexpr char kWelcomeMagic[8] = {'R', 'G', 'D', 'W', 'E', 'L', 'C', '\0'};
/// Bumped whenever the handshake, the client segment or the codec changes in a
/// way an older peer would misread.
inline constexpr std::uint32_t kProtocolVersion = 3;  // 2: response trailer, route_reason; 3: client eventfd

struct HelloMessage {
    char magic[8];                   ///< kHelloMagic
    std::uint32_t protocol_version;  ///< kProtocolVersion of the client library
    std::uint32_t client_pid;        ///< informational (logs); SO_PEERCRED is authoritative
    char client_name[48];            ///< NUL-terminated program name, for status/logs
};
static_assert(sizeof(HelloMessage) == 64);
static_assert(offsetof(HelloMessage, protocol_version) == 8);
static_assert(offsetof(HelloMessage, client_name) == 16);
static_assert(std::is_trivially_copyable_v<HelloMessage>);

/// WelcomeMessage::status
enum class WelcomeStatus : std::uint32_t {
    ok = 0,
    permission_denied = 1,  ///< peer uid/groups not allowed (client_group / allowed_uids)
    version_mismatch = 2,   ///< protocol versions differ; message names both
    too_many_clients = 3,   ///< daemon.max_clients reached
    shutting_down = 4,      ///< daemon is draining after SIGTERM
    internal_error = 5,     ///< memfd/eventfd creation failed etc.; message says what
};

struct WelcomeMessage {
    char magic[8];                    ///< kWelcomeMagic
    std::uint32_t protocol_version;   ///< the daemon's kProtocolVersion
    std::uint32_t status;             ///< WelcomeStatus
    std::uint64_t client_id;          ///< daemon-assigned id (logs, regionctl status)
    std::uint64_t daemon_generation;  ///< changes at every daemon start (reconnect detection)
    char state_segment[200];          ///< NUL-terminated name of the state segment to map read-only
    char message[280];                ///< NUL-terminated reason when status != ok
};
static_assert(sizeof(WelcomeMessage) == 512);
static_assert(offsetof(WelcomeMessage, status) == 12);
static_assert(offsetof(WelcomeMessage, client_id) == 16);
static_assert(offsetof(WelcomeMessage, daemon_generation) == 24);
static_assert(offsetof(WelcomeMessage, state_segment) == 32);
static_assert(offsetof(WelcomeMessage, message) == 232);
static_assert(std::is_trivially_copyable_v<WelcomeMessage>);

/// Number of fds attached to an ok WelcomeMessage: [client memfd, daemon
/// eventfd, client eventfd]. The daemon eventfd wakes the daemon (the client
/// writes it); the client eventfd wakes a client that asked for it
/// (ClientHeader::client_wake; the daemon writes it).
inline constexpr std::size_t kWelcomeFds = 3;

}  // namespace regiond::shm

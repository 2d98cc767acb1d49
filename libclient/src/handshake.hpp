// The client half of the connection handshake (shm/handshake.hpp is the
// protocol): connect, HelloMessage, WelcomeMessage + [memfd, eventfd].
#pragma once

#include <chrono>
#include <string>

#include "shm/error.hpp"
#include "shm/handshake.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::client {

struct Welcomed {
    shm::UniqueFd socket;   ///< stays open: its hang-up tells each side the other is gone
    shm::UniqueFd memfd;    ///< the client segment
    shm::UniqueFd eventfd;         ///< wakes the daemon
    shm::UniqueFd client_eventfd;  ///< the daemon wakes us through it when we ask (ClientHeader::client_wake)
    shm::WelcomeMessage welcome{};
};

/// Connects to the daemon's client socket at `path` and completes the handshake
/// before `deadline`. Errors carry the message rgd_connect reports, e.g.
/// "daemon not running at PATH", the daemon's own refusal ("permission denied
/// ..."), or a protocol version mismatch naming both versions.
shm::Expected<Welcomed> handshake(const std::string& path, std::chrono::steady_clock::time_point deadline);

/// The message for a client socket that does not answer: connect() failed with
/// ENOENT or ECONNREFUSED.
std::string not_running_message(const std::string& path);

}  // namespace regiond::client

// One connected client: its socket (kept only to learn when the process goes
// away), its segment with the two rings, the eventfd it wakes the daemon with,
// the responses waiting for room in its response ring, and the credentials it
// connected with (re-checked when a reload narrows the access policy).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/access_policy.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/output_queue.hpp"
#include "shm/client_segment.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon {

using ClientId = std::uint64_t;

struct ClientInfo {
    ClientId id = 0;
    pid_t pid = 0;
    uid_t uid = 0;
    std::string name;  ///< the program name from the hello, sanitized
};

/// A request taken from the ring while the client could not have another in
/// flight: the daemon copies it out (so that cancel records behind it are still
/// read) and stops reading the ring until it can start it. At most one per
/// client, at most max_request bytes.
struct ParkedRequest {
    std::uint64_t request_id = 0;
    std::vector<std::byte> bytes;
};

class ClientSession {
public:
    ClientSession(ClientInfo info, PeerCredentials credentials, shm::UniqueFd socket, shm::UniqueFd eventfd,
                  shm::UniqueFd client_eventfd, shm::ClientSegmentOwner segment, OutputLimits limits)
        : info_(std::move(info)),
          credentials_(std::move(credentials)),
          socket_(std::move(socket)),
          eventfd_(std::move(eventfd)),
          client_eventfd_(std::move(client_eventfd)),
          segment_(std::move(segment)),
          output_(limits) {}

    const ClientInfo& info() const noexcept { return info_; }
    const PeerCredentials& credentials() const noexcept { return credentials_; }
    ClientId id() const noexcept { return info_.id; }
    uid_t uid() const noexcept { return info_.uid; }
    int socket_fd() const noexcept { return socket_.get(); }
    int eventfd() const noexcept { return eventfd_.get(); }
    shm::RingConsumer& requests() noexcept { return segment_.requests(); }
    shm::RingProducer& responses() noexcept { return segment_.responses(); }
    OutputQueue& output() noexcept { return output_; }
    const OutputQueue& output() const noexcept { return output_; }
    /// Hot-cache hits the client counted in its own segment: its own word, so
    /// any number (a statistic, never used for a decision).
    std::uint64_t cache_hits() const noexcept { return segment_.cache_hits(); }
    /// SIGHUP: the client learns the new daemon.max_request (ClientHeader::max_request).
    void set_max_request(std::uint32_t bytes) noexcept { segment_.set_max_request(bytes); }
    /// Host-wide waiting (shm/wait_policy.hpp): the client's permit to spin,
    /// and its own (untrusted) word on how it waits.
    void set_spin_permit(std::uint32_t ns) noexcept { segment_.set_spin_permit(ns); }
    std::uint32_t spin_permit() const noexcept { return segment_.spin_permit(); }
    shm::ClientWaitState wait_state() const noexcept { return segment_.wait_state(); }

    /// Wakes the client after it raised its need-wake-up flag: the response
    /// ring's futex, and its eventfd too if it asked for that
    /// (ClientHeader::client_wake: an event loop watches the eventfd).
    void wake_client() noexcept;

    /// "client 7 (pid 1234 uid 1000 myapp)": for log lines.
    std::string describe() const;

    /// Sends one record: straight into the ring when nothing is queued ahead of
    /// it, else (or when the ring is full) into the output queue. Returns false
    /// when the ring is corrupt (drop the client). Sets `wake` when the client
    /// asked for a wake-up.
    bool send(OutgoingRecord record, OutputQueue::Clock::time_point now, bool& wake);
    /// Moves queued records into the ring; false when the ring is corrupt.
    /// `progress` tells whether anything moved.
    bool flush(OutputQueue::Clock::time_point now, bool& wake, bool& progress);

    // Bookkeeping owned by ClientServer.
    bool hot = false;      ///< serviced recently: its need-wake-up flag is clear, the loop polls it
    bool paused = false;   ///< not reading its ring: a request is parked until a limit allows it
    bool closing = false;  ///< removed; destroyed after the current dispatch
    OutputQueue::Clock::time_point last_request{};  ///< when the daemon last took a request of it
    bool permit_granted = false;                    ///< scratch of ClientServer::grant_spin_permits()
    bool wake_pending = false;  ///< a futex wake is owed at the end of this loop pass (ClientServer::flush_wakeups)
    bool window_full = false;   ///< a stream() found the queue over the window; tell the handler when it drains
    std::optional<ParkedRequest> parked;

private:
    ClientInfo info_;
    PeerCredentials credentials_;
    shm::UniqueFd socket_;
    shm::UniqueFd eventfd_;
    shm::UniqueFd client_eventfd_;
    shm::ClientSegmentOwner segment_;
    OutputQueue output_;

public:
    // Declared after the descriptors they watch, so they are removed from the
    // loop before those close.
    Watch socket_watch;
    Watch eventfd_watch;
    TimerHandle retry_timer;  ///< the next flush of the output queue
};

}  // namespace regiond::daemon

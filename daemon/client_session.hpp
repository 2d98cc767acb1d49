// One connected client: its socket (kept only to learn when the process goes
// away), its segment with the two rings, the eventfd it wakes the daemon with,
// and the responses waiting for room in its response ring.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

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

class ClientSession {
public:
    ClientSession(ClientInfo info, shm::UniqueFd socket, shm::UniqueFd eventfd, shm::ClientSegmentOwner segment,
                  OutputLimits limits)
        : info_(std::move(info)),
          socket_(std::move(socket)),
          eventfd_(std::move(eventfd)),
          segment_(std::move(segment)),
          output_(limits) {}

    const ClientInfo& info() const noexcept { return info_; }
    ClientId id() const noexcept { return info_.id; }
    int socket_fd() const noexcept { return socket_.get(); }
    int eventfd() const noexcept { return eventfd_.get(); }
    shm::RingConsumer& requests() noexcept { return segment_.requests(); }
    shm::RingProducer& responses() noexcept { return segment_.responses(); }
    OutputQueue& output() noexcept { return output_; }

    /// "client 7 (pid 1234 uid 1000 myapp)": for log lines.
    std::string describe() const;

    /// Sends one record: straight into the ring when nothing is queued ahead of
    /// it, else (or when the ring is full) into the output queue. Returns false
    /// when the ring is corrupt (drop the client). Sets `wake` when the client
    /// asked for a wake-up.
    bool send(OutgoingRecord record, OutputQueue::Clock::time_point now, bool& wake);
    /// Moves queued records into the ring; false when the ring is corrupt.
    bool flush(OutputQueue::Clock::time_point now, bool& wake);

    // Bookkeeping owned by ClientServer.
    bool hot = false;           ///< serviced recently: its need-wake-up flag is clear, the loop polls it
    bool paused = false;        ///< not consuming: too much in flight or too much output queued
    bool closing = false;       ///< removed; destroyed after the current dispatch
    std::size_t in_flight = 0;  ///< requests taken from the ring and not answered yet
    EventLoop::TimerId retry_timer = 0;

private:
    ClientInfo info_;
    shm::UniqueFd socket_;
    shm::UniqueFd eventfd_;
    shm::ClientSegmentOwner segment_;
    OutputQueue output_;
};

}  // namespace regiond::daemon

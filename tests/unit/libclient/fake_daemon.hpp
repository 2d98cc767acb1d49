// A minimal in-process stand-in for regiond's client side, built from the shm/
// building blocks (ClientSegmentOwner, StateSegment, the handshake), so the
// client library's waiting, threading, reconnect and re-send logic can be unit
// tested without PostgreSQL or the real daemon.
//
// What it answers (by the request's SQL):
//   "rows N"        N rows of columns (i, s): ("0", "row-0"), ...; chunked
//   "sleep MS"      an echo, MS milliseconds later (without blocking the loop)
//   "error"         a database error: SQLSTATE 42P01
//   "die"           takes the request, then the daemon "crashes" (stop())
//   anything else   an echo: columns (op, sql, timeout_ms, token, key, ttl,
//                   p1..pn, keys) and one row of those values (NULLs kept)
// served_by is "fake/replica" for reads, "fake/primary" for read_primary and
// writes; route_reason is "fake: OP echoed" ("fake: the nearest replica" for
// "error", "" for "rows N"); a write carries token "1234/0/ABC" and affected 1.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <time.h>

#include "shm/handshake.hpp"

namespace regiond::test {

struct FakeDaemonOptions {
    std::uint32_t request_capacity = 1u << 16;
    std::uint32_t response_capacity = 1u << 16;
    /// Refuse every client with this status (and message) instead of welcoming it.
    shm::WelcomeStatus refuse = shm::WelcomeStatus::ok;
    std::string refuse_message;
    std::uint32_t protocol_version = shm::kProtocolVersion;
    /// The spin permit every client gets (ClientHeader::spin_permit_ns).
    std::uint32_t spin_permit_ns = 250'000;
};

class FakeDaemon {
public:
    /// Listens on `socket_path` (replacing a stale socket file) and starts serving.
    FakeDaemon(std::string socket_path, FakeDaemonOptions options = {});
    ~FakeDaemon();
    FakeDaemon(const FakeDaemon&) = delete;
    FakeDaemon& operator=(const FakeDaemon&) = delete;

    /// Simulates a crash: the loop stops, every socket closes, the heartbeat stops
    /// and the state segment's name is removed. Idempotent.
    void stop();
    /// While paused the daemon takes nothing out of the request rings.
    void pause_requests(bool paused);

    const std::string& socket_path() const;
    std::uint64_t requests_seen() const;
    std::uint64_t cancels_seen() const;
    int clients_connected() const;
    std::uint64_t last_timeout_ms() const;
    /// The clients' own counts of waits that spun and that slept
    /// (ClientHeader::waits_spun/slept, summed at each loop turn).
    std::uint64_t waits_spun() const;
    std::uint64_t waits_slept() const;
    /// Loop turns so far; counts published at turn N include everything a
    /// client counted before turn N began.
    std::uint64_t loop_turns() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// A fresh private directory for sockets (removed by the destructor).
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

/// Polls `condition` until it holds or `timeout` passes (no fixed sleeps).
template <class Condition>
bool eventually(Condition&& condition, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        struct timespec ts {
            0, 1'000'000
        };
        ::nanosleep(&ts, nullptr);
    }
    return true;
}

}  // namespace regiond::test

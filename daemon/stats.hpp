// The daemon's counters: kept locally (for the admin socket) and mirrored into
// the state segment's counters section (for clients and regionctl), which the
// daemon alone writes.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "shm/state_layout.hpp"

namespace regiond::shm {
class StateSegment;
}

namespace regiond::daemon {

/// "requests_read_local", "errors", ... (the names status json uses).
const char* counter_name(shm::Counter counter) noexcept;

inline constexpr std::size_t kCounterCount = static_cast<std::size_t>(shm::Counter::kCount);

/// Cumulative buckets of a Prometheus histogram of durations.
struct WaitHistogram {
    static constexpr std::array<std::uint64_t, 10> kBoundsUs = {500,    1'000,  2'000,   5'000,   10'000,
                                                                20'000, 50'000, 100'000, 200'000, 500'000};
    std::array<std::uint64_t, kBoundsUs.size()> buckets{};  ///< observations <= bound (cumulative)
    std::uint64_t count = 0;
    std::uint64_t sum_us = 0;
};

class Stats {
public:
    /// Mirrors every later add() into `segment` (nullptr: local only). Copies the
    /// current values there first, so attaching late loses nothing.
    void attach(shm::StateSegment* segment) noexcept;
    void add(shm::Counter counter, std::uint64_t n = 1) noexcept;
    /// For a counter that is a sum kept elsewhere (client hits, evictions).
    void set(shm::Counter counter, std::uint64_t value) noexcept;
    std::uint64_t get(shm::Counter counter) const noexcept { return values_[static_cast<std::size_t>(counter)]; }

    /// read_consistent requests served by the local replica after waiting for it:
    /// how long they waited (a Prometheus histogram, kept here only).
    void record_consistent_wait(std::chrono::nanoseconds waited) noexcept;
    const WaitHistogram& consistent_wait() const noexcept { return consistent_wait_; }

private:
    std::array<std::uint64_t, kCounterCount> values_{};
    WaitHistogram consistent_wait_;
    shm::StateSegment* segment_ = nullptr;
};

}  // namespace regiond::daemon

// The daemon's counters: kept locally (for the admin socket) and mirrored into
// the state segment's counters section (for clients and regionctl), which the
// daemon alone writes.
#pragma once

#include <array>
#include <cstdint>

#include "shm/state_layout.hpp"

namespace regiond::shm {
class StateSegment;
}

namespace regiond::daemon {

/// "requests_read_local", "errors", ... (the names status json uses).
const char* counter_name(shm::Counter counter) noexcept;

inline constexpr std::size_t kCounterCount = static_cast<std::size_t>(shm::Counter::kCount);

class Stats {
public:
    /// Mirrors every later add() into `segment` (nullptr: local only). Copies the
    /// current values there first, so attaching late loses nothing.
    void attach(shm::StateSegment* segment) noexcept;
    void add(shm::Counter counter, std::uint64_t n = 1) noexcept;
    std::uint64_t get(shm::Counter counter) const noexcept { return values_[static_cast<std::size_t>(counter)]; }

private:
    std::array<std::uint64_t, kCounterCount> values_{};
    shm::StateSegment* segment_ = nullptr;
};

}  // namespace regiond::daemon

// Replication lag measured from LSNs on the daemon's own clock (DESIGN.md "Lag"):
//   bytes = primary LSN - replay LSN
//   ms    = age of the oldest primary WAL position the replica has not replayed,
//           i.e. now - (time the primary was first seen past the replay LSN);
//           zero when caught up, even on an idle primary (unlike
//           now() - pg_last_xact_replay_timestamp(), which grows while idle).
// Pure logic (no I/O): unit-tested in tests/unit/pg/.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

namespace regiond::daemon::pg {

class LagTracker {
public:
    using Clock = std::chrono::steady_clock;
    struct Lag {
        std::uint64_t bytes = 0;
        std::uint64_t ms = 0;
    };

    /// Records the primary's WAL position seen at `when`. Samples whose LSN does
    /// not advance are folded (only the first time a position was seen matters).
    /// Keeps a bounded history (max_samples); the oldest are dropped.
    void record_primary(Clock::time_point when, std::uint64_t lsn);
    /// Lag of a replica that has replayed up to replay_lsn, as of `now`.
    Lag lag_of(std::uint64_t replay_lsn, Clock::time_point now) const;
    std::uint64_t primary_lsn() const;
    bool has_primary() const { return !samples_.empty(); }

    explicit LagTracker(std::size_t max_samples = 100000) : max_samples_(max_samples) {}

private:
    struct Sample {
        Clock::time_point when;
        std::uint64_t lsn;
    };
    std::deque<Sample> samples_;  ///< strictly increasing lsn, increasing time
    std::size_t max_samples_;
};

}  // namespace regiond::daemon::pg

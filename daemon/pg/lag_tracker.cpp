// See lag_tracker.hpp. The history is a deque of (first time seen, LSN) with
// strictly increasing LSNs, so "the oldest position the replica has not
// replayed" is the first sample whose LSN is above the replay LSN: a binary
// search.
#include "daemon/pg/lag_tracker.hpp"

#include <algorithm>

namespace regiond::daemon::pg {

void LagTracker::record_primary(Clock::time_point when, std::uint64_t lsn) {
    // A position already seen keeps the time it was first seen; a primary that
    // went backwards (a restore, a different cluster) is not trusted to reorder
    // history either, so it is folded too until it passes the newest sample.
    if (!samples_.empty() && lsn <= samples_.back().lsn) return;
    // Time must not go backwards either (the caller's clock is steady, but keep
    // the invariant the search relies on even if a caller passes older times).
    if (!samples_.empty() && when < samples_.back().when) when = samples_.back().when;
    samples_.push_back(Sample{when, lsn});
    const std::size_t cap = std::max<std::size_t>(max_samples_, 1);
    while (samples_.size() > cap) samples_.pop_front();
}

LagTracker::Lag LagTracker::lag_of(std::uint64_t replay_lsn, Clock::time_point now) const {
    Lag lag;
    if (samples_.empty()) return lag;
    const std::uint64_t primary = samples_.back().lsn;
    if (replay_lsn >= primary) return lag;  // caught up: zero, however long the primary idles
    lag.bytes = primary - replay_lsn;
    // The first sample past the replay position. When the history was trimmed
    // and even the oldest kept sample is past it, that sample's time is the best
    // (lower) bound we have.
    auto it = std::upper_bound(samples_.begin(), samples_.end(), replay_lsn,
                               [](std::uint64_t lsn, const Sample& s) { return lsn < s.lsn; });
    if (it != samples_.end() && now > it->when) {
        lag.ms =
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - it->when).count());
    }
    return lag;
}

std::uint64_t LagTracker::primary_lsn() const {
    return samples_.empty() ? 0 : samples_.back().lsn;
}

}  // namespace regiond::daemon::pg

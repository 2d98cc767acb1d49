// The wait before the next connection attempt after consecutive failures:
// `first`, then doubling, never more than `cap`. reset() after a success.
// A plain value type, used on the loop's thread only.
#pragma once

#include <algorithm>
#include <chrono>

namespace regiond::daemon {

class ReconnectBackoff {
public:
    ReconnectBackoff(std::chrono::nanoseconds first, std::chrono::nanoseconds cap)
        : first_(std::max(first, std::chrono::nanoseconds(1))), cap_(std::max(cap, first_)) {}

    /// The wait after one more failure.
    std::chrono::nanoseconds next() noexcept {
        const unsigned doublings = std::min(failures_, 30u);
        ++failures_;
        if (first_.count() > (cap_.count() >> doublings)) return cap_;
        return std::min(cap_, std::chrono::nanoseconds(first_.count() << doublings));
    }
    void reset() noexcept { failures_ = 0; }
    /// Failures since the last reset().
    [[nodiscard]] unsigned failures() const noexcept { return failures_; }

private:
    std::chrono::nanoseconds first_;
    std::chrono::nanoseconds cap_;
    unsigned failures_ = 0;
};

}  // namespace regiond::daemon

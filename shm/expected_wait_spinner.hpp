// A spin whose length follows how long answers have been taking.
//
// Why not AdaptiveSpinner (an iteration budget that doubles on success and
// halves on failure) for a client waiting for its answer: the answer to a query
// comes after the database worked on it (~40-60 us for a primary-key SELECT on
// this class of machine), so a budget that starts below that never succeeds,
// halves down to its floor and stays there, and every call pays a futex sleep
// and wake-up (~20 us each way, shared/ENVIRONMENT.md). What matters is whether
// the answer is expected within the spin limit. This spinner keeps a moving
// average of observed waits and spins up to twice that, within [min, max]; when
// answers take longer than max (a loaded system, slow queries, many clients on
// two cores) it does not spin at all, and goes back to spinning as soon as the
// waits it observes (sleeping ones included) get short again.
//
// Not thread-safe: one per waiting thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>

#include "shm/wakeup.hpp"

namespace regiond::shm {

class ExpectedWaitSpinner {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::nanoseconds kDefaultMax{std::chrono::microseconds(250)};
    static constexpr std::chrono::nanoseconds kMin{std::chrono::microseconds(5)};

    explicit ExpectedWaitSpinner(std::chrono::nanoseconds max_spin = kDefaultMax) noexcept
        : max_ns_(max_spin.count()), average_ns_(max_spin.count() / 2) {}

    /// The spin the next wait gets: 0 when answers are expected later than max.
    std::chrono::nanoseconds budget() const noexcept {
        if (average_ns_ > max_ns_) return std::chrono::nanoseconds{0};
        return std::chrono::nanoseconds{
            std::clamp<std::int64_t>(2 * average_ns_, std::min(kMin.count(), max_ns_), max_ns_)};
    }

    /// Polls `ready()` with a pause between polls for up to budget(). Returns true
    /// as soon as ready() holds. Reads the clock only every few polls (a vDSO
    /// clock read costs about as much as a pause).
    template <class Ready>
    bool spin(Ready&& ready) {
        return spin_for(budget(), std::forward<Ready>(ready));
    }

    /// As spin(), for at most `limit` (the caller's cap on budget(), e.g. the
    /// host-wide spin permit of shm/wait_policy.hpp).
    template <class Ready>
    bool spin_for(std::chrono::nanoseconds limit, Ready&& ready) {
        if (ready()) return true;
        if (limit.count() == 0) return false;
        const auto end = Clock::now() + limit;
        for (;;) {
            for (int i = 0; i < 16; ++i) {
                cpu_relax();
                if (ready()) return true;
            }
            if (Clock::now() >= end) return ready();
        }
    }

    /// Reports how long a wait took in all (spin and sleep) until its answer
    /// came. A moving average with weight 1/8 (reacts within a few calls, and
    /// one slow query does not stop the spinning for long: a wait counts as at
    /// most 4 x max).
    void observe(std::chrono::nanoseconds waited) noexcept {
        const std::int64_t w = std::clamp<std::int64_t>(waited.count(), 0, 4 * max_ns_);
        average_ns_ += (w - average_ns_) / 8;
    }

    std::chrono::nanoseconds average() const noexcept { return std::chrono::nanoseconds{average_ns_}; }

private:
    std::int64_t max_ns_;
    std::int64_t average_ns_;
};

}  // namespace regiond::shm

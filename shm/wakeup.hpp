// Waiting and waking between processes: bounded adaptive spinning, process-shared
// futexes, and a pluggable wake action.
//
// Why spin at all: on this class of machine a hand-off to a sleeping process
// costs ~20 us (futex or socket), while two spinning processes exchange a word in
// ~0.15 us (docs/design-shm.md, shared/ENVIRONMENT.md). So a waiter spins a little
// before it sleeps. With only 2 cores, more spinners than idle cores starve
// PostgreSQL itself, so every spin is bounded and its budget adapts: it grows
// while spinning pays off and halves while it does not.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "shm/layout.hpp"

namespace regiond::shm {

/// One "pause" instruction: tells the CPU this is a spin-wait loop (saves power,
/// yields the core's resources to its hyper-thread sibling, avoids the memory-order
/// machine clear when the awaited line changes).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

/// Bounded spin whose budget adapts to whether spinning found work.
///
/// Not thread-safe: one spinner per waiting thread (it keeps that thread's budget).
class AdaptiveSpinner {
public:
    static constexpr std::uint32_t kDefaultMax =
        4096;                                    ///< ~200 us at ~50 ns per pause (measured on the 2-vCPU EPYC VMs)
    static constexpr std::uint32_t kFloor = 16;  ///< budget never drops below (unless max is lower)

    explicit AdaptiveSpinner(std::uint32_t max_iterations = kDefaultMax) noexcept
        : max_(max_iterations), budget_(max_iterations / 4 < kFloor ? floor() : max_iterations / 4) {}

    /// Polls `ready()` up to budget() times with a cpu_relax() between polls.
    /// Returns true as soon as ready() is true. Success doubles the budget (up to
    /// max), failure halves it (down to a floor of kFloor), so a waiter that keeps
    /// spinning in vain quickly stops burning a core.
    template <class Ready>
    bool spin(Ready&& ready) {
        const std::uint32_t budget = budget_;
        for (std::uint32_t i = 0; i < budget; ++i) {
            if (ready()) {
                grow();
                return true;
            }
            cpu_relax();
        }
        if (ready()) {  // one last look, no pause after it
            grow();
            return true;
        }
        shrink();
        return false;
    }

    std::uint32_t budget() const noexcept { return budget_; }
    std::uint32_t max() const noexcept { return max_; }
    /// Changes the ceiling (0 disables spinning entirely, e.g. under load).
    void set_max(std::uint32_t max_iterations) noexcept {
        max_ = max_iterations;
        if (budget_ > max_) budget_ = max_;
        if (budget_ < floor()) budget_ = floor();
    }

private:
    std::uint32_t floor() const noexcept { return max_ < kFloor ? max_ : kFloor; }
    void grow() noexcept {
        std::uint64_t next = budget_ == 0 ? kFloor : std::uint64_t{budget_} * 2;
        budget_ = static_cast<std::uint32_t>(next > max_ ? max_ : next);
    }
    void shrink() noexcept {
        budget_ /= 2;
        if (budget_ < floor()) budget_ = floor();
    }

    std::uint32_t max_;
    std::uint32_t budget_;
};

enum class FutexWaitResult : std::uint8_t {
    woken,          ///< FUTEX_WAKE (or a spurious wake-up: always re-check the condition)
    value_changed,  ///< the word no longer held `expected` when the kernel looked (EAGAIN)
    timed_out,
    interrupted,  ///< EINTR: a signal arrived
};

/// FUTEX_WAIT on a word in memory shared between processes. Deliberately without
/// FUTEX_PRIVATE_FLAG: private futexes are keyed by (mm, address) and would never
/// match a waker in another process; shared ones are keyed by the backing page.
/// Sleeps only if the word still equals `expected` (checked atomically by the
/// kernel). `timeout` is relative (CLOCK_MONOTONIC); nullopt waits forever.
FutexWaitResult futex_wait(const SharedU32& word, std::uint32_t expected,
                           std::optional<std::chrono::nanoseconds> timeout) noexcept;

/// FUTEX_WAKE (shared, see futex_wait) of up to `count` waiters. Returns how many
/// were woken, or -1 (errno set) on error.
int futex_wake(SharedU32& word, int count) noexcept;

/// Bumps a futex "sequence" word and wakes every waiter on it. The increment is
/// what makes a waker that runs between a waiter's read of the word and its
/// FUTEX_WAIT harmless: the kernel then sees a changed value and does not sleep.
void futex_bump_and_wake(SharedU32& word) noexcept;

/// A wake action chosen by the side that sleeps. A client sleeps on a futex word;
/// the daemon sleeps in epoll and gets woken through an eventfd (or any callback
/// the daemon provides). Cheap to copy; holds no ownership.
class Waker {
public:
    using Callback = void (*)(void* context) noexcept;

    static Waker none() noexcept { return Waker{}; }
    /// futex_bump_and_wake(word).
    static Waker futex(SharedU32& word) noexcept {
        Waker w;
        w.kind_ = Kind::futex;
        w.word_ = &word;
        return w;
    }
    /// write(fd, uint64_t{1}): the daemon's epoll loop wakes on the eventfd.
    static Waker eventfd(int fd) noexcept {
        Waker w;
        w.kind_ = Kind::eventfd;
        w.fd_ = fd;
        return w;
    }
    static Waker callback(Callback fn, void* context) noexcept {
        Waker w;
        w.kind_ = Kind::callback;
        w.fn_ = fn;
        w.context_ = context;
        return w;
    }

    /// Performs the wake. Errors are ignored on purpose: a failed wake (e.g. the
    /// daemon already closed the eventfd) is detected by the peer's timeout and the
    /// connection's own error path, and there is nothing better to do here.
    void wake() const noexcept;

private:
    enum class Kind : std::uint8_t { none, futex, eventfd, callback };
    Kind kind_ = Kind::none;
    SharedU32* word_ = nullptr;
    int fd_ = -1;
    Callback fn_ = nullptr;
    void* context_ = nullptr;
};

}  // namespace regiond::shm

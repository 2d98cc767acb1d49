#include "shm/wakeup.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace regiond::shm {

namespace {

long futex_syscall(const void* word, int op, std::uint32_t value, const timespec* timeout) noexcept {
    return ::syscall(SYS_futex, word, op, value, timeout, nullptr, 0);
}

}  // namespace

FutexWaitResult futex_wait(const SharedU32& word, std::uint32_t expected,
                           std::optional<std::chrono::nanoseconds> timeout) noexcept {
    timespec ts{};
    const timespec* tsp = nullptr;
    if (timeout) {
        const auto ns = timeout->count() < 0 ? 0 : timeout->count();
        ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        tsp = &ts;
    }
    // FUTEX_WAIT, not FUTEX_WAIT_PRIVATE: the word is shared between processes.
    if (futex_syscall(&word, FUTEX_WAIT, expected, tsp) == 0) return FutexWaitResult::woken;
    switch (errno) {
        case EAGAIN: return FutexWaitResult::value_changed;
        case ETIMEDOUT: return FutexWaitResult::timed_out;
        case EINTR: return FutexWaitResult::interrupted;
        default:
            return FutexWaitResult::
                woken;  // EFAULT/EINVAL cannot happen for a mapped, aligned word; let the caller re-check
    }
}

int futex_wake(SharedU32& word, int count) noexcept {
    return static_cast<int>(futex_syscall(&word, FUTEX_WAKE, static_cast<std::uint32_t>(count), nullptr));
}

void futex_bump_and_wake(SharedU32& word) noexcept {
    // SYNC POINT (futex sequence): this release increment pairs with the waiter's
    // acquire load of the word before it decides to sleep (RingConsumer::prepare_sleep).
    // Its only job is to change the value so that a FUTEX_WAIT issued with the old
    // value returns EAGAIN instead of sleeping through this wake-up.
    word.fetch_add(1, std::memory_order_release);
    futex_wake(word, INT_MAX);
}

void Waker::wake() const noexcept {
    switch (kind_) {
        case Kind::none: return;
        case Kind::futex: futex_bump_and_wake(*word_); return;
        case Kind::eventfd: {
            const std::uint64_t one = 1;
            ssize_t r;
            do {
                r = ::write(fd_, &one, sizeof one);
            } while (r < 0 && errno == EINTR);
            return;  // EAGAIN means the counter is already non-zero: the reader wakes anyway
        }
        case Kind::callback: fn_(context_); return;
    }
}

}  // namespace regiond::shm

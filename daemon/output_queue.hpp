// A client's response backlog: records that did not fit into its response ring.
//
// The client wakes nobody when it consumes (DESIGN.md: the daemon sleeps in
// epoll, and a futex/eventfd wake per consumed record would cost what the rings
// save), so the daemon retries on a short timer while records are queued: 1 ms,
// doubling while no space appears, up to 16 ms, back to 1 ms on progress; the
// next request the client sends (an eventfd wake) also retries at once.
//
// A client that stops reading must not hold the daemon's memory: it is dropped
// when nothing has moved for max_stall. Its size is bounded elsewhere: streaming
// pauses at the client's window and all queues together are capped by
// daemon.max_backlog (backlog.hpp).
// Pure (no I/O; the push is a callback, time is passed in): unit-tested.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "shm/ring.hpp"

namespace regiond::daemon {

struct OutgoingRecord {
    shm::RecordKind kind = shm::RecordKind::response;
    std::uint16_t flags = 0;
    std::uint64_t request_id = 0;
    std::vector<std::byte> payload;
};

struct OutputLimits {
    std::chrono::nanoseconds max_stall = std::chrono::seconds(30);
};

struct FlushResult {
    std::size_t pushed = 0;     ///< records moved into the ring
    bool needs_wakeup = false;  ///< some push reported the consumer asleep: wake it
    bool corrupt = false;       ///< the ring is corrupt: drop the client
};

class OutputQueue {
public:
    using Clock = std::chrono::steady_clock;
    enum class Verdict { ok, stalled };

    static constexpr std::chrono::milliseconds kFirstRetry{1};
    static constexpr std::chrono::milliseconds kMaxRetry{16};

    explicit OutputQueue(OutputLimits limits = {}) : limits_(limits) {}
    void set_limits(OutputLimits limits) noexcept { limits_ = limits; }

    bool empty() const noexcept { return records_.empty(); }
    std::size_t bytes() const noexcept { return bytes_; }
    std::size_t size() const noexcept { return records_.size(); }

    void push_back(OutgoingRecord record, Clock::time_point now);

    /// Pushes queued records in order with push(const OutgoingRecord&) ->
    /// shm::PushResult until one does not fit (or the ring is corrupt).
    template <class Push>
    FlushResult flush(Push&& push, Clock::time_point now) {
        FlushResult result;
        while (!records_.empty()) {
            const shm::PushResult pushed = push(records_.front());
            if (pushed.error == shm::RingError::full) break;
            if (pushed.error != shm::RingError::ok) {
                result.corrupt = true;
                break;
            }
            result.needs_wakeup = result.needs_wakeup || pushed.needs_wakeup;
            bytes_ -= records_.front().payload.size();
            records_.pop_front();
            ++result.pushed;
        }
        note_flush(result.pushed != 0, now);
        return result;
    }

    /// Whether the client has to be dropped, as of `now`.
    Verdict verdict(Clock::time_point now) const noexcept;
    /// When to try again after the last flush.
    std::chrono::milliseconds retry_delay() const noexcept { return retry_delay_; }
    void clear() noexcept;

private:
    void note_flush(bool progress, Clock::time_point now) noexcept;

    OutputLimits limits_;
    std::deque<OutgoingRecord> records_;
    std::size_t bytes_ = 0;
    Clock::time_point last_progress_{};
    std::chrono::milliseconds retry_delay_ = kFirstRetry;
};

}  // namespace regiond::daemon

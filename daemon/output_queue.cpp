#include "daemon/output_queue.hpp"

namespace regiond::daemon {

void OutputQueue::push_back(OutgoingRecord record, Clock::time_point now) {
    if (records_.empty()) {
        // The stall clock starts when the backlog does.
        last_progress_ = now;
        retry_delay_ = kFirstRetry;
    }
    bytes_ += record.payload.size();
    records_.push_back(std::move(record));
}

void OutputQueue::note_flush(bool progress, Clock::time_point now) noexcept {
    if (progress) {
        last_progress_ = now;
        retry_delay_ = kFirstRetry;
    } else if (retry_delay_ < kMaxRetry) {
        retry_delay_ *= 2;
    }
}

OutputQueue::Verdict OutputQueue::verdict(Clock::time_point now) const noexcept {
    if (records_.empty()) return Verdict::ok;
    if (now - last_progress_ > limits_.max_stall) return Verdict::stalled;
    return Verdict::ok;
}

void OutputQueue::clear() noexcept {
    records_.clear();
    bytes_ = 0;
    retry_delay_ = kFirstRetry;
}

}  // namespace regiond::daemon

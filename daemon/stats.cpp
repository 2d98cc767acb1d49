#include "daemon/stats.hpp"

#include <algorithm>

#include "shm/state_segment.hpp"

namespace regiond::daemon {

const char* counter_name(shm::Counter counter) noexcept {
    using shm::Counter;
    switch (counter) {
        case Counter::requests_read_local: return "requests_read_local";
        case Counter::requests_read_primary: return "requests_read_primary";
        case Counter::requests_write: return "requests_write";
        case Counter::requests_read_consistent: return "requests_read_consistent";
        case Counter::requests_cached_read: return "requests_cached_read";
        case Counter::cache_hits_local: return "cache_hits_local";
        case Counter::cache_hits_redis: return "cache_hits_redis";
        case Counter::cache_misses: return "cache_misses";
        case Counter::errors: return "errors";
        case Counter::timeouts: return "timeouts";
        case Counter::clients_connected: return "clients_connected";
        case Counter::clients_dropped: return "clients_dropped";
        case Counter::invalidations_sent: return "invalidations_sent";
        case Counter::invalidations_received: return "invalidations_received";
        case Counter::consistent_reads_waited: return "consistent_reads_waited";
        case Counter::consistent_reads_to_primary: return "consistent_reads_to_primary";
        case Counter::consistent_reads_local: return "consistent_reads_local";
        case Counter::consistent_reads_elsewhere: return "consistent_reads_elsewhere";
        case Counter::consistent_reads_failed: return "consistent_reads_failed";
        case Counter::cache_fills: return "cache_fills";
        case Counter::cache_fills_fenced: return "cache_fills_fenced";
        case Counter::cache_misses_coalesced: return "cache_misses_coalesced";
        case Counter::cache_evictions: return "cache_evictions";
        case Counter::invalidations_received_pubsub: return "invalidations_received_pubsub";
        case Counter::invalidations_received_durable: return "invalidations_received_durable";
        case Counter::invalidations_applied: return "invalidations_applied";
        case Counter::cache_flushes: return "cache_flushes";
        case Counter::cache_redis_errors: return "cache_redis_errors";
        case Counter::client_wakeups: return "client_wakeups";
        case Counter::daemon_wakeups: return "daemon_wakeups";
        case Counter::wait_decisions: return "wait_decisions";
        case Counter::kCount: break;
    }
    return "unknown";
}

void Stats::attach(shm::StateSegment* segment) noexcept {
    segment_ = segment;
    if (segment_ == nullptr) return;
    for (std::size_t i = 0; i < kCounterCount; ++i) segment_->set(static_cast<shm::Counter>(i), values_[i]);
}

void Stats::add(shm::Counter counter, std::uint64_t n) noexcept {
    values_[static_cast<std::size_t>(counter)] += n;
    if (segment_ != nullptr) segment_->add(counter, n);
}

void Stats::set(shm::Counter counter, std::uint64_t value) noexcept {
    values_[static_cast<std::size_t>(counter)] = value;
    if (segment_ != nullptr) segment_->set(counter, value);
}

void Stats::record_consistent_wait(std::chrono::nanoseconds waited) noexcept {
    const auto us = static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(waited).count()));
    for (std::size_t i = 0; i < WaitHistogram::kBoundsUs.size(); ++i)
        if (us <= WaitHistogram::kBoundsUs[i]) ++consistent_wait_.buckets[i];
    ++consistent_wait_.count;
    consistent_wait_.sum_us += us;
}

}  // namespace regiond::daemon

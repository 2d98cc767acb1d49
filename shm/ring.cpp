#include "shm/ring.hpp"

#include <cstring>
#include <stdexcept>

namespace regiond::shm {

namespace {

// The first 8 bytes of every record; all a padding record has.
struct RecordPrefix {
    std::uint32_t size;
    std::uint16_t kind;
    std::uint16_t flags;
};
static_assert(sizeof(RecordPrefix) == 8);

RingControl* control_of(std::span<std::byte> region, std::uint32_t capacity) {
    if (!ring_capacity_valid(capacity))
        throw std::invalid_argument("ring capacity must be a power of two in [256, 2^30]");
    if (region.size() < ring_region_size(capacity))
        throw std::invalid_argument("ring region smaller than ring_region_size(capacity)");
    if (reinterpret_cast<std::uintptr_t>(region.data()) % kCacheLine != 0)
        throw std::invalid_argument("ring region must be 64-byte aligned");
    return shared_at<RingControl>(region.data());
}

// Validates a counter read from the peer against our own: the peer's value must be
// 8-aligned and within `capacity` bytes of ours, in the right direction.
bool counter_distance_valid(std::uint64_t older, std::uint64_t newer, std::uint32_t capacity) noexcept {
    return newer >= older && newer - older <= capacity && (older | newer) % kRecordAlign == 0;
}

}  // namespace

const char* to_string(RingError error) noexcept {
    switch (error) {
        case RingError::ok: return "ok";
        case RingError::empty: return "ring empty";
        case RingError::full: return "ring full";
        case RingError::too_large: return "record too large";
        case RingError::invalid: return "invalid record kind";
        case RingError::corrupt: return "ring corrupt (peer broke the protocol)";
    }
    return "unknown ring error";
}

bool ring_initialize(std::span<std::byte> region, std::uint32_t capacity) noexcept {
    if (!ring_capacity_valid(capacity) || region.size() < ring_region_size(capacity) ||
        reinterpret_cast<std::uintptr_t>(region.data()) % kCacheLine != 0)
        return false;
    RingControl* control = construct_shared<RingControl>(region.data());
    control->capacity = capacity;
    return true;
}

// ---------------------------------------------------------------------------
// Producer

RingProducer::RingProducer(std::span<std::byte> region, std::uint32_t capacity)
    : control_(control_of(region, capacity)), data_(region.data() + sizeof(RingControl)), capacity_(capacity) {
    // Constructed by the owner of the ring before the peer can touch it, so these
    // reads see the creator's values (both zero for a fresh ring).
    head_ = control_->head.load(std::memory_order_acquire);
    cached_tail_ = control_->tail.load(std::memory_order_acquire);
    corrupt_ = !counter_distance_valid(cached_tail_, head_, capacity_);
}

RingError RingProducer::reserve_space(std::uint32_t payload, std::uint64_t& record_offset) noexcept {
    pending_ = false;
    if (corrupt_) return RingError::corrupt;
    if (payload > max_payload()) return RingError::too_large;

    const std::uint64_t footprint = record_footprint(payload);
    const std::uint64_t offset = head_ & (capacity_ - 1);
    const std::uint64_t to_end = capacity_ - offset;
    // A record never wraps: if it does not fit before the end, pad to the end.
    const std::uint64_t pad = footprint > to_end ? to_end : 0;
    const std::uint64_t needed = pad + footprint;

    if (head_ - cached_tail_ + needed > capacity_) {
        // SYNC POINT (tail): acquire pairs with the consumer's release store of tail
        // in RingConsumer::publish_tail(); it makes the consumer's reads of the bytes
        // we are about to overwrite happen-before our writes.
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        if (!counter_distance_valid(tail, head_, capacity_)) {
            corrupt_ = true;
            return RingError::corrupt;
        }
        cached_tail_ = tail;
        if (head_ - cached_tail_ + needed > capacity_) return RingError::full;
    }

    if (pad != 0) {
        const RecordPrefix padding{0, static_cast<std::uint16_t>(RecordKind::padding), 0};
        std::memcpy(data_ + offset, &padding, sizeof padding);
    }
    pending_pad_ = pad;
    pending_offset_ = pad != 0 ? 0 : offset;
    pending_size_ = payload;
    pending_ = true;
    record_offset = pending_offset_;
    return RingError::ok;
}

PushResult RingProducer::publish(RecordKind kind, std::uint16_t flags, std::uint64_t request_id,
                                 std::uint32_t payload_size) noexcept {
    const RecordHeader header{payload_size, static_cast<std::uint16_t>(kind), flags, request_id};
    std::memcpy(data_ + pending_offset_, &header, sizeof header);
    head_ += pending_pad_ + record_footprint(payload_size);
    pending_ = false;

    // SYNC POINT (head): release pairs with the consumer's acquire load of head in
    // RingConsumer::refresh_head(); the record bytes written above become visible
    // to the consumer no later than the new head.
    control_->head.store(head_, std::memory_order_release);

    // SYNC POINT (need-wake-up, producer half of the Dekker handshake): the seq_cst
    // fence orders our head store before the flag load. The consumer does
    // "store flag; seq_cst fence; load head" (RingConsumer::prepare_sleep). Two
    // seq_cst fences cannot both be passed with both loads seeing old values, so
    // either the consumer sees our head (and does not sleep) or we see its flag
    // (and wake it). The plain load first keeps the common case free of a locked
    // instruction on the consumer's line; exchange makes only one push per sleep
    // pay for a wake-up.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    PushResult result;
    result.needs_wakeup = control_->consumer_sleeping.load(std::memory_order_relaxed) != 0 &&
                          control_->consumer_sleeping.exchange(0, std::memory_order_relaxed) != 0;
    return result;
}

PushResult RingProducer::try_push(RecordKind kind, std::uint16_t flags, std::uint64_t request_id,
                                  std::span<const std::byte> payload) noexcept {
    return try_push(kind, flags, request_id, payload, {});
}

PushResult RingProducer::try_push(RecordKind kind, std::uint16_t flags, std::uint64_t request_id,
                                  std::span<const std::byte> first, std::span<const std::byte> second) noexcept {
    if (kind == RecordKind::padding || static_cast<std::uint16_t>(kind) > kMaxRecordKind)
        return PushResult{RingError::invalid, false};
    const std::uint64_t total = std::uint64_t{first.size()} + second.size();
    if (total > max_payload()) return PushResult{corrupt_ ? RingError::corrupt : RingError::too_large, false};
    const auto size = static_cast<std::uint32_t>(total);
    std::uint64_t offset = 0;
    if (const RingError e = reserve_space(size, offset); e != RingError::ok) return PushResult{e, false};
    std::byte* payload = data_ + offset + sizeof(RecordHeader);
    if (!first.empty()) std::memcpy(payload, first.data(), first.size());
    if (!second.empty()) std::memcpy(payload + first.size(), second.data(), second.size());
    return publish(kind, flags, request_id, size);
}

Reservation RingProducer::try_reserve(std::uint32_t payload_bytes) noexcept {
    std::uint64_t offset = 0;
    if (const RingError e = reserve_space(payload_bytes, offset); e != RingError::ok) return Reservation{e, {}};
    return Reservation{RingError::ok, std::span<std::byte>(data_ + offset + sizeof(RecordHeader), payload_bytes)};
}

PushResult RingProducer::commit(RecordKind kind, std::uint16_t flags, std::uint64_t request_id,
                                std::uint32_t used) noexcept {
    if (!pending_ || used > pending_size_ || kind == RecordKind::padding ||
        static_cast<std::uint16_t>(kind) > kMaxRecordKind)
        return PushResult{RingError::invalid, false};
    return publish(kind, flags, request_id, used);
}

void RingProducer::wake_consumer_futex() noexcept {
    futex_bump_and_wake(control_->futex_word);
}

Waker RingProducer::futex_waker() noexcept {
    return Waker::futex(control_->futex_word);
}

// ---------------------------------------------------------------------------
// Consumer

RingConsumer::RingConsumer(std::span<std::byte> region, std::uint32_t capacity)
    : control_(control_of(region, capacity)), data_(region.data() + sizeof(RingControl)), capacity_(capacity) {
    tail_ = control_->tail.load(std::memory_order_acquire);
    cached_head_ = control_->head.load(std::memory_order_acquire);
    corrupt_ = !counter_distance_valid(tail_, cached_head_, capacity_);
}

PopResult RingConsumer::fail() noexcept {
    corrupt_ = true;
    PopResult r;
    r.error = RingError::corrupt;
    return r;
}

bool RingConsumer::refresh_head() noexcept {
    // SYNC POINT (head): acquire pairs with the producer's release store of head
    // in RingProducer::publish(); every record byte below the loaded head is
    // visible after this load (for a well-behaved producer).
    const std::uint64_t head = control_->head.load(std::memory_order_acquire);
    if (!counter_distance_valid(tail_, head, capacity_)) return false;
    cached_head_ = head;
    return true;
}

void RingConsumer::publish_tail() noexcept {
    // SYNC POINT (tail): release pairs with the producer's acquire load of tail in
    // RingProducer::reserve_space(); our copy-out of the consumed bytes happens-
    // before the producer reuses them.
    control_->tail.store(tail_, std::memory_order_release);
}

bool RingConsumer::has_data() noexcept {
    if (corrupt_ || cached_head_ != tail_) return true;
    // SYNC POINT (head): same pairing as refresh_head(); the value is only a hint
    // here, try_pop() validates it.
    return control_->head.load(std::memory_order_acquire) != tail_;
}

PopResult RingConsumer::try_pop(std::span<std::byte> out) noexcept {
    if (corrupt_) return fail();
    const std::uint64_t mask = capacity_ - 1;
    // At most two steps: a padding record, then a real one. Two paddings in a row
    // are impossible (a padding at offset 0 is rejected), so this never spins.
    for (int step = 0; step < 2; ++step) {
        if (cached_head_ == tail_) {
            if (!refresh_head()) return fail();
            if (cached_head_ == tail_) return PopResult{};  // empty
        }
        const std::uint64_t available = cached_head_ - tail_;  // > 0, multiple of 8, <= capacity
        const std::uint64_t offset = tail_ & mask;
        const std::uint64_t to_end = capacity_ - offset;  // >= 8, multiple of 8

        // Copy the header out once and validate only the copy: the peer may be
        // changing the bytes under us, so each header byte is read exactly once.
        // Only 8 bytes may be left before the end, where just a padding record
        // (its 8-byte prefix) fits, so that is all that is copied there.
        static_assert(offsetof(RecordHeader, size) == offsetof(RecordPrefix, size) &&
                      offsetof(RecordHeader, kind) == offsetof(RecordPrefix, kind) &&
                      offsetof(RecordHeader, flags) == offsetof(RecordPrefix, flags));
        RecordHeader header{};
        std::memcpy(&header, data_ + offset, to_end < sizeof header ? sizeof(RecordPrefix) : sizeof header);
        if (header.kind == static_cast<std::uint16_t>(RecordKind::padding)) {
            // Legal only away from offset 0, with size/flags 0, and fully published.
            if (offset == 0 || header.size != 0 || header.flags != 0 || available < to_end) return fail();
            tail_ += to_end;
            publish_tail();
            continue;
        }
        if (to_end < sizeof(RecordHeader)) return fail();  // only padding fits there
        if (header.kind > kMaxRecordKind || header.size > max_payload()) return fail();
        const std::uint64_t footprint = record_footprint(header.size);
        if (footprint > to_end || footprint > available) return fail();

        PopResult result;
        result.kind = static_cast<RecordKind>(header.kind);
        result.flags = header.flags;
        result.request_id = header.request_id;
        result.size = header.size;
        if (header.size > out.size()) {
            result.error = RingError::too_large;  // consumed unread
        } else {
            if (header.size != 0) std::memcpy(out.data(), data_ + offset + sizeof header, header.size);
            result.error = RingError::ok;
        }
        tail_ += footprint;
        publish_tail();
        return result;
    }
    return fail();  // unreachable: the second step cannot be a padding record
}

SleepTicket RingConsumer::prepare_sleep() noexcept {
    SleepTicket ticket;
    // SYNC POINT (futex sequence): acquire pairs with the producer's release
    // fetch_add in futex_bump_and_wake(). Read *before* raising the flag: any wake
    // issued after the producer sees the flag changes the word, so FUTEX_WAIT with
    // this value returns at once instead of sleeping through it.
    ticket.futex_value = control_->futex_word.load(std::memory_order_acquire);
    // SYNC POINT (need-wake-up, consumer half of the Dekker handshake): store the
    // flag, seq_cst fence, then re-check head. Pairs with "store head; seq_cst
    // fence; load flag" in RingProducer::publish().
    control_->consumer_sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (has_data()) {
        end_sleep();
        ticket.may_sleep = false;
    } else {
        ticket.may_sleep = true;
    }
    return ticket;
}

void RingConsumer::end_sleep() noexcept {
    // Relaxed: the flag only gates whether the producer makes a system call; a
    // stale 1 seen by the producer costs one spurious wake-up, never a lost one.
    control_->consumer_sleeping.store(0, std::memory_order_relaxed);
}

WaitResult RingConsumer::wait(AdaptiveSpinner* spinner, std::optional<std::chrono::nanoseconds> timeout) noexcept {
    if (has_data()) return WaitResult::ready;
    if (spinner != nullptr && spinner->spin([this] { return has_data(); })) return WaitResult::ready;

    using Clock = std::chrono::steady_clock;
    const auto deadline = timeout ? Clock::now() + *timeout : Clock::time_point::max();
    for (;;) {
        const SleepTicket ticket = prepare_sleep();
        if (!ticket.may_sleep) return WaitResult::ready;
        std::optional<std::chrono::nanoseconds> remaining;
        if (timeout) {
            remaining = deadline - Clock::now();
            if (remaining->count() <= 0) {
                end_sleep();
                return has_data() ? WaitResult::ready : WaitResult::timed_out;
            }
        }
        (void)futex_wait(control_->futex_word, ticket.futex_value, remaining);
        end_sleep();
        if (has_data()) return WaitResult::ready;
        // Spurious wake-up, EINTR, or a changed word without data: go around; the
        // deadline check above bounds the loop.
    }
}

}  // namespace regiond::shm

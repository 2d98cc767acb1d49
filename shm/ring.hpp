// Single-producer single-consumer byte ring in a caller-provided memory region.
//
// Region layout (offsets from the start of the region, which must be 64-aligned):
//
//   [0, 192)               RingControl: head | tail | wake-up words (one cache line each)
//   [192, 192 + capacity)  data: 8-byte aligned records, capacity a power of two
//
// A record is a RecordHeader {u32 size, u16 kind, u16 flags, u64 request_id}
// followed by `size` payload bytes, padded to a multiple of 8. Records never wrap:
// when one would, the producer writes a padding record (kind 0, size 0; only its
// first 8 bytes, so it fits even when 8 bytes are left) that covers the rest of the
// data area, and puts the record at offset 0. The largest payload is
// max_payload() = capacity/2 - 16, which guarantees an empty ring accepts any
// record; bigger messages are the caller's job to chunk (see codec.hpp).
//
// head and tail are monotonic u64 byte counters (never reset, never wrap in
// practice: 2^64 bytes). head - tail is the number of bytes in use. The producer
// is the only writer of head, the consumer the only writer of tail; each side keeps
// its own counter locally and only ever *reads* the peer's counter (with acquire),
// caching it and re-reading only when the cached value says "full"/"empty"
// (rigtorp-style). See docs/design-shm.md for the protocol and its races.
//
// Hostile peer: either side may be a buggy or malicious process. Neither side ever
// reads back its own counter from shared memory, every value read from the peer is
// validated (counter distance <= capacity, 8-byte alignment, record size and kind),
// every record is copied out before it is interpreted, and any violation yields the
// sticky error RingError::corrupt (the daemon then drops that client alone). No
// operation reads outside the region or loops more than twice.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "shm/layout.hpp"
#include "shm/wakeup.hpp"

namespace regiond::shm {

/// Record kinds. Stored as u16 in the ring; the consumer rejects unknown kinds as
/// corruption, so adding a kind is a layout-version change (kClientLayoutVersion).
enum class RecordKind : std::uint16_t {
    padding = 0,   ///< internal: skip to the start of the data area
    request = 1,   ///< client -> daemon: an encoded request (codec.hpp)
    response = 2,  ///< daemon -> client: one chunk of an encoded response
    cancel = 3,    ///< client -> daemon: abandon request_id (empty payload)
};
inline constexpr std::uint16_t kMaxRecordKind = 3;

/// Record flag: the last record of a multi-record message (every single-record
/// message carries it too).
inline constexpr std::uint16_t kRecordFlagLast = 0x0001;

struct RecordHeader {
    std::uint32_t size;        ///< payload bytes (excludes this header and alignment)
    std::uint16_t kind;        ///< RecordKind
    std::uint16_t flags;       ///< kRecordFlag*
    std::uint64_t request_id;  ///< chosen by the client, echoed by the daemon
};
static_assert(sizeof(RecordHeader) == 16 && alignof(RecordHeader) == 8);
static_assert(offsetof(RecordHeader, size) == 0);
static_assert(offsetof(RecordHeader, kind) == 4);
static_assert(offsetof(RecordHeader, flags) == 6);
static_assert(offsetof(RecordHeader, request_id) == 8);

inline constexpr std::uint32_t kRecordAlign = 8;
inline constexpr std::uint32_t kMinRingCapacity = 256;
inline constexpr std::uint32_t kMaxRingCapacity = 1u << 30;

/// The control block at the start of a ring region. Three cache lines so that the
/// producer's counter, the consumer's counter and the rarely-written wake-up words
/// never share a line.
struct alignas(kCacheLine) RingControl {
    // ---- line 0: written by the producer only --------------------------------
    /// Bytes ever published. SYNC POINT: producer stores with release after writing
    /// the record bytes; consumer loads with acquire before copying them out.
    SharedU64 head;
    std::uint8_t pad0[56];
    // ---- line 1: written by the consumer only --------------------------------
    /// Bytes ever consumed. SYNC POINT: consumer stores with release after copying
    /// a record out; producer loads with acquire before overwriting that space.
    SharedU64 tail;
    std::uint8_t pad1[56];
    // ---- line 2: wake-up words, rarely written --------------------------------
    /// 1 while the consumer is (about to be) asleep and wants a wake-up. Consumer:
    /// store 1, seq_cst fence, re-check head. Producer: store head, seq_cst fence,
    /// read this flag (and clear it with exchange). The pair of fences is the
    /// Dekker handshake that closes the lost-wake-up race (docs/design-shm.md).
    SharedU32 consumer_sleeping;
    /// Futex sequence word the consumer sleeps on when it waits with a futex. The
    /// producer increments it (release) before FUTEX_WAKE; the consumer reads it
    /// (acquire) *before* setting consumer_sleeping and passes that value to
    /// FUTEX_WAIT, so a wake between its check and its sleep is not lost.
    SharedU32 futex_word;
    /// Capacity in bytes, written once at creation. Informational for the attaching
    /// side's validation; the daemon uses its own copy and never reads it back.
    std::uint32_t capacity;
    std::uint32_t reserved0;
    std::uint8_t pad2[48];
};
static_assert(sizeof(RingControl) == 192 && alignof(RingControl) == 64);
static_assert(offsetof(RingControl, head) == 0);
static_assert(offsetof(RingControl, tail) == 64);
static_assert(offsetof(RingControl, consumer_sleeping) == 128);
static_assert(offsetof(RingControl, futex_word) == 132);
static_assert(offsetof(RingControl, capacity) == 136);
static_assert(std::is_standard_layout_v<RingControl>);

constexpr bool ring_capacity_valid(std::uint64_t capacity) noexcept {
    return is_power_of_two(capacity) && capacity >= kMinRingCapacity && capacity <= kMaxRingCapacity;
}
/// Bytes a ring of `capacity` needs in its region (control block + data).
constexpr std::uint64_t ring_region_size(std::uint32_t capacity) noexcept {
    return sizeof(RingControl) + std::uint64_t{capacity};
}
/// Largest payload one record can carry in a ring of `capacity`.
constexpr std::uint32_t ring_max_payload(std::uint32_t capacity) noexcept {
    return capacity / 2 - static_cast<std::uint32_t>(sizeof(RecordHeader));
}
/// Bytes one record with `payload` bytes occupies in the data area.
constexpr std::uint64_t record_footprint(std::uint32_t payload) noexcept {
    return sizeof(RecordHeader) + align_up(payload, kRecordAlign);
}

/// Creator side: constructs a zeroed control block for a ring of `capacity` at the
/// start of `region`. Returns false (and does nothing) if the capacity is invalid
/// or the region is too small or not 64-byte aligned. The data area is not touched
/// (fresh shared memory is zero-filled and its content does not matter anyway).
bool ring_initialize(std::span<std::byte> region, std::uint32_t capacity) noexcept;

enum class RingError : std::uint8_t {
    ok = 0,
    empty,      ///< try_pop: nothing to read
    full,       ///< try_push: not enough free space now; retry after the consumer runs
    too_large,  ///< try_push: payload > max_payload(); try_pop: record > caller's buffer (record skipped)
    invalid,    ///< try_push: kind is padding or unknown (a caller bug)
    corrupt,    ///< the peer broke the protocol; sticky: every later call returns it
};
const char* to_string(RingError error) noexcept;

struct [[nodiscard]] PushResult {
    RingError error = RingError::ok;
    /// The consumer had asked for a wake-up (its flag is now cleared): the caller
    /// must perform the wake (Waker::wake(), futex_bump_and_wake, eventfd write).
    bool needs_wakeup = false;
    explicit operator bool() const noexcept { return error == RingError::ok; }
};

struct [[nodiscard]] PopResult {
    RingError error = RingError::empty;
    RecordKind kind = RecordKind::padding;
    std::uint16_t flags = 0;
    std::uint64_t request_id = 0;
    std::uint32_t size = 0;  ///< payload bytes copied (or, with too_large, the record's size)
    explicit operator bool() const noexcept { return error == RingError::ok; }
};

/// A reserved record whose payload the caller writes in place (zero-copy encode).
struct [[nodiscard]] Reservation {
    RingError error = RingError::ok;
    std::span<std::byte> payload;  ///< writable, exactly the reserved size
    explicit operator bool() const noexcept { return error == RingError::ok; }
};

/// The producing end. Exactly one RingProducer per ring, used by one thread at a
/// time. Holds a pointer into the region: the region must outlive it.
class RingProducer {
public:
    RingProducer() noexcept = default;
    /// `capacity` must come from a trusted source (the creator's own value), never
    /// from the shared memory of an untrusted peer. Throws std::invalid_argument if
    /// capacity or region are unusable (a programming error). Reads the current
    /// head and tail once: construct it before the peer can write to the region.
    RingProducer(std::span<std::byte> region, std::uint32_t capacity);

    /// Copies one record into the ring. ok, full, too_large, invalid or corrupt.
    PushResult try_push(RecordKind kind, std::uint16_t flags, std::uint64_t request_id,
                        std::span<const std::byte> payload) noexcept;
    /// Gather variant: payload = first ++ second (e.g. a header and a body) without
    /// an intermediate copy.
    PushResult try_push(RecordKind kind, std::uint16_t flags, std::uint64_t request_id,
                        std::span<const std::byte> first, std::span<const std::byte> second) noexcept;

    /// Reserves room for a payload of up to `payload_bytes` and returns it for the
    /// caller to fill in place; nothing is visible to the consumer until commit().
    /// At most one reservation is outstanding; a new reservation or try_push simply
    /// abandons an uncommitted one.
    Reservation try_reserve(std::uint32_t payload_bytes) noexcept;
    /// Publishes the reserved record with `used` <= reserved payload bytes.
    PushResult commit(RecordKind kind, std::uint16_t flags, std::uint64_t request_id, std::uint32_t used) noexcept;

    /// Wakes a consumer that sleeps on this ring's futex word (futex_bump_and_wake).
    void wake_consumer_futex() noexcept;
    /// A Waker bound to this ring's futex word.
    Waker futex_waker() noexcept;

    std::uint32_t capacity() const noexcept { return capacity_; }
    std::uint32_t max_payload() const noexcept { return ring_max_payload(capacity_); }
    bool is_corrupt() const noexcept { return corrupt_; }
    /// Free bytes as last known (may be stale-low: the consumer may have freed more).
    std::uint64_t free_bytes_hint() const noexcept { return capacity_ - (head_ - cached_tail_); }

private:
    RingError reserve_space(std::uint32_t payload, std::uint64_t& record_offset) noexcept;
    PushResult publish(RecordKind kind, std::uint16_t flags, std::uint64_t request_id,
                       std::uint32_t payload_size) noexcept;

    RingControl* control_ = nullptr;
    std::byte* data_ = nullptr;
    std::uint32_t capacity_ = 0;
    std::uint64_t head_ = 0;         // our own counter (authoritative, never read back)
    std::uint64_t cached_tail_ = 0;  // last validated tail seen from the consumer
    std::uint64_t pending_pad_ = 0;  // padding bytes in front of the reserved record
    std::uint64_t pending_offset_ = 0;
    std::uint32_t pending_size_ = 0;
    bool pending_ = false;
    bool corrupt_ = false;
};

enum class WaitResult : std::uint8_t { ready, timed_out };

/// Returned by RingConsumer::prepare_sleep().
struct SleepTicket {
    bool may_sleep = false;         ///< false: data arrived meanwhile, do not sleep
    std::uint32_t futex_value = 0;  ///< pass to futex_wait when sleeping on the futex word
};

/// The consuming end. Exactly one per ring, one thread at a time.
class RingConsumer {
public:
    RingConsumer() noexcept = default;
    /// See RingProducer: `capacity` must be trusted; throws std::invalid_argument.
    RingConsumer(std::span<std::byte> region, std::uint32_t capacity);

    /// Copies the next record's payload into `out` and consumes it. out.size() is
    /// the caller's maximum: a larger record is consumed unread and reported as
    /// too_large with its kind, request_id and size (so the daemon can answer with
    /// an error). empty when there is nothing; corrupt (sticky) on any violation.
    PopResult try_pop(std::span<std::byte> out) noexcept;

    /// True if a record may be available (also true once corrupt, so that the
    /// caller's next try_pop reports it). One acquire load; use it to spin.
    bool has_data() noexcept;

    /// Need-wake-up protocol, for consumers that sleep elsewhere (the daemon in
    /// epoll). Reads the futex word, sets consumer_sleeping, issues a seq_cst
    /// fence and re-checks the ring. If the ring is still empty it returns
    /// may_sleep = true and the caller may block until woken; it must call
    /// end_sleep() once awake. Otherwise the flag is already cleared again.
    SleepTicket prepare_sleep() noexcept;
    void end_sleep() noexcept;

    /// Waits until has_data(): spins with `spinner` (if given), then sleeps on the
    /// ring's futex word (producer must wake with wake_consumer_futex / futex_waker).
    /// `timeout` nullopt waits forever. Spurious wake-ups and EINTR are handled.
    WaitResult wait(AdaptiveSpinner* spinner, std::optional<std::chrono::nanoseconds> timeout) noexcept;

    std::uint32_t capacity() const noexcept { return capacity_; }
    std::uint32_t max_payload() const noexcept { return ring_max_payload(capacity_); }
    bool is_corrupt() const noexcept { return corrupt_; }

private:
    PopResult fail() noexcept;
    bool refresh_head() noexcept;  // false: corrupt
    void publish_tail() noexcept;

    RingControl* control_ = nullptr;
    const std::byte* data_ = nullptr;
    std::uint32_t capacity_ = 0;
    std::uint64_t tail_ = 0;         // our own counter (authoritative, never read back)
    std::uint64_t cached_head_ = 0;  // last validated head seen from the producer
    bool corrupt_ = false;
};

}  // namespace regiond::shm

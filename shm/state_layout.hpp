// Layout of the state segment: the named POSIX shared memory object the daemon
// creates (mode 0640, group = the client group) and every client maps read-only.
//
//   offset 0                  StateHeader (192 bytes)
//   regions.offset            EndpointSlot[max_regions * max_endpoints_per_region]
//   counters.offset           SharedU64[counter_count]
//   cache.offset              the hot cache: CacheHeader, index, value arena (cache_layout.hpp)
//
// All section offsets are 64-byte aligned and recorded in the header, so a reader
// locates sections only through the header and validates each against the size.
//
// Layout version rule: any change to a struct in this file, to a section's
// order or to the meaning of a field bumps kStateLayoutVersion; the layout test
// (tests/unit/shm/layout_test.cpp) pins every size and offset so a change cannot
// slip through. Appending a counter inside the reserved kCounterSlots does not
// change the layout (older readers ignore it) and needs no bump.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shm/cache_layout.hpp"
#include "shm/layout.hpp"
#include "shm/seqlock.hpp"

namespace regiond::shm {

inline constexpr char kStateMagic[8] = {'R', 'G', 'D', 'S', 'T', 'A', 'T', 'E'};
/// 1: the cache section was reserved (a 64-byte CacheHeader, format undefined).
/// 2: the hot cache's format (cache_layout.hpp): CacheHeader grows to 192 bytes
///    (geometry, hash seed, reclaimed counter, statistics), followed by the
///    seqlocked index and the value arena. A version-1 reader would take the
///    index for free space, so the version changes.
/// 3: the wait facts on the heartbeat's line (WaitFactsWords): the host-wide
///    decision of who spins (shm/wait_policy.hpp), for clients and regionctl.
inline constexpr std::uint32_t kStateLayoutVersion = 3;

inline constexpr std::uint32_t kMaxRegions = 16;
inline constexpr std::uint32_t kMaxEndpointsPerRegion = 8;
inline constexpr std::uint32_t kNameCapacity = 64;  ///< bytes incl. the terminating NUL
inline constexpr std::uint32_t kCounterSlots = 64;

/// A section of the segment: [offset, offset + length) from the segment start.
struct SectionRef {
    std::uint64_t offset;
    std::uint64_t length;
};
static_assert(sizeof(SectionRef) == 16 && alignof(SectionRef) == 8);

struct alignas(kCacheLine) StateHeader {
    // ---- line 0-1: written once at creation, before layout_version -----------
    char magic[8];  ///< kStateMagic, no NUL
    /// 0 while the daemon is still building the segment; kStateLayoutVersion once
    /// ready. SYNC POINT: the daemon stores it LAST with release after writing
    /// everything else in the header and the initial table; readers load it FIRST
    /// with acquire, so a non-zero value guarantees the rest is initialised.
    SharedU32 layout_version;
    std::uint32_t header_size;  ///< sizeof(StateHeader)
    std::uint64_t total_size;   ///< bytes of the whole segment
    std::uint64_t generation;   ///< random per daemon start; changes when the daemon restarts
    std::uint32_t daemon_pid;
    std::uint32_t reserved0;
    std::uint64_t started_unix_ns;  ///< wall clock at daemon start (for display)
    SectionRef regions;             ///< EndpointSlot table
    SectionRef counters;            ///< SharedU64[counter_count]
    SectionRef cache;               ///< CacheHeader + data
    std::uint32_t max_regions;
    std::uint32_t max_endpoints_per_region;
    std::uint32_t endpoint_slot_size;  ///< sizeof(EndpointSlot)
    std::uint32_t counter_count;
    std::uint8_t reserved1[16];
    // ---- line 2: written continuously by the daemon loop ---------------------
    /// CLOCK_MONOTONIC nanoseconds at the daemon loop's last iteration. Relaxed on
    /// both sides: it is a single self-contained word that publishes no other data;
    /// a reader only compares it with its own clock (same host, same clock) to
    /// judge whether the daemon is alive. On its own line so its constant writes do
    /// not invalidate the line readers use for the static fields.
    SharedU64 heartbeat_ns;
    /// The wait facts (shm/wait_policy.hpp), rewritten by the daemon loop at
    /// most every millisecond while it is busy. Each word is relaxed on both
    /// sides and stands alone: they are for display (regionctl status) and
    /// diagnosis, a reader may see one word of the next decision beside one of
    /// the last, and nothing is ever derived from two of them together. The
    /// decision that binds a client is its own spin permit (ClientHeader).
    SharedU32 usable_cores;      ///< cores the daemon may run on (affinity, cgroup quota)
    SharedU32 busy_cores;        ///< cores taken by work that produces answers
    SharedU32 spare_cores;       ///< usable - busy
    SharedU32 runnable;          ///< /proc/loadavg's running tasks at the last sample
    SharedU32 in_flight_milli;   ///< requests at the database, smoothed, x1000
    SharedU32 clients_spinning;  ///< clients that said they spin for an answer
    SharedU32 clients_sleeping;  ///< clients that said they sleep for an answer
    SharedU32 client_permits;    ///< how many clients may spin now
    SharedU32 daemon_may_spin;   ///< 1 if the daemon may spin on its request rings
    std::uint8_t pad2[20];
};
static_assert(sizeof(StateHeader) == 192 && alignof(StateHeader) == 64);
static_assert(offsetof(StateHeader, magic) == 0);
static_assert(offsetof(StateHeader, layout_version) == 8);
static_assert(offsetof(StateHeader, header_size) == 12);
static_assert(offsetof(StateHeader, total_size) == 16);
static_assert(offsetof(StateHeader, generation) == 24);
static_assert(offsetof(StateHeader, daemon_pid) == 32);
static_assert(offsetof(StateHeader, started_unix_ns) == 40);
static_assert(offsetof(StateHeader, regions) == 48);
static_assert(offsetof(StateHeader, counters) == 64);
static_assert(offsetof(StateHeader, cache) == 80);
static_assert(offsetof(StateHeader, max_regions) == 96);
static_assert(offsetof(StateHeader, max_endpoints_per_region) == 100);
static_assert(offsetof(StateHeader, endpoint_slot_size) == 104);
static_assert(offsetof(StateHeader, counter_count) == 108);
static_assert(offsetof(StateHeader, heartbeat_ns) == 128);
static_assert(offsetof(StateHeader, usable_cores) == 136);
static_assert(offsetof(StateHeader, daemon_may_spin) == 168);
static_assert(std::is_standard_layout_v<StateHeader>);

enum class EndpointRole : std::uint8_t { primary = 1, replica = 2 };

/// One endpoint's status, copied as a whole under its seqlock. Region-level facts
/// (region name, cache_healthy) are repeated in each endpoint of the region so one
/// seqlocked read yields one consistent health row.
struct EndpointStatus {
    char region[kNameCapacity];    ///< NUL-terminated, e.g. "eu-west-1"
    char endpoint[kNameCapacity];  ///< NUL-terminated display name, e.g. "replica-1" or "10.1.0.1:5432"
    std::uint8_t in_use;           ///< 1 if this slot describes an endpoint
    std::uint8_t role;             ///< EndpointRole
    std::uint8_t healthy;          ///< 1 healthy, 0 down (after hysteresis)
    std::uint8_t cache_healthy;    ///< the region's Redis reachable
    std::uint8_t alert;            ///< lag past alert_after
    std::uint8_t reserved0[3];
    std::uint32_t last_error;  ///< daemon error code of the last failure, 0 none
    std::uint32_t rtt_us;
    std::uint32_t pool_in_use;
    std::uint32_t pool_size;
    std::uint64_t lag_ms;
    std::uint64_t lag_bytes;
    std::uint64_t replay_lsn;  ///< PostgreSQL LSN as a 64-bit integer
    std::uint64_t updated_ns;  ///< CLOCK_MONOTONIC of this update
};
static_assert(sizeof(EndpointStatus) == 184 && alignof(EndpointStatus) == 8);
static_assert(offsetof(EndpointStatus, endpoint) == 64);
static_assert(offsetof(EndpointStatus, in_use) == 128);
static_assert(offsetof(EndpointStatus, role) == 129);
static_assert(offsetof(EndpointStatus, healthy) == 130);
static_assert(offsetof(EndpointStatus, cache_healthy) == 131);
static_assert(offsetof(EndpointStatus, alert) == 132);
static_assert(offsetof(EndpointStatus, last_error) == 136);
static_assert(offsetof(EndpointStatus, rtt_us) == 140);
static_assert(offsetof(EndpointStatus, pool_in_use) == 144);
static_assert(offsetof(EndpointStatus, pool_size) == 148);
static_assert(offsetof(EndpointStatus, lag_ms) == 152);
static_assert(offsetof(EndpointStatus, lag_bytes) == 160);
static_assert(offsetof(EndpointStatus, replay_lsn) == 168);
static_assert(offsetof(EndpointStatus, updated_ns) == 176);
static_assert(std::is_trivially_copyable_v<EndpointStatus>);

/// A seqlocked endpoint entry: 8 + 184 = 192 bytes, three whole cache lines, so
/// neighbouring entries never share a line.
using EndpointSlot = Seqlock<EndpointStatus>;
static_assert(sizeof(EndpointSlot) == 192 && alignof(EndpointSlot) == 8);
static_assert(offsetof(EndpointSlot, seq) == 0);
static_assert(offsetof(EndpointSlot, words) == 8);
static_assert(std::is_standard_layout_v<EndpointSlot>);

/// Counter indices into the counters section. Values are u64, monotonic, written
/// by the daemon only. Append only (before kCount); never renumber.
enum class Counter : std::uint32_t {
    requests_read_local = 0,
    requests_read_primary = 1,
    requests_write = 2,
    requests_read_consistent = 3,
    requests_cached_read = 4,
    cache_hits_local = 5,
    cache_hits_redis = 6,
    cache_misses = 7,
    errors = 8,
    timeouts = 9,
    clients_connected = 10,
    clients_dropped = 11,  ///< dropped for protocol violations (corrupt rings)
    invalidations_sent = 12,
    invalidations_received = 13,
    consistent_reads_waited = 14,
    consistent_reads_to_primary = 15,
    consistent_reads_local = 16,          ///< served by a local endpoint at once
    consistent_reads_elsewhere = 17,      ///< by a replica of another region that had the token
    consistent_reads_failed = 18,         ///< bad token, another cluster's, nobody reached it
    cache_fills = 19,                     ///< values stored in the hot cache after a database read or a Redis hit
    cache_fills_fenced = 20,              ///< values refused: older than an invalidation of their key (any source)
    cache_misses_coalesced = 21,          ///< misses that waited for another request's read of the same key
    cache_evictions = 22,                 ///< hot-cache entries overwritten to make room (FIFO)
    invalidations_received_pubsub = 23,   ///< invalidation messages from the region's Redis channel
    invalidations_received_durable = 24,  ///< invalidation rows tailed on the local database
    invalidations_applied = 25,           ///< keys evicted from this host's hot cache by an invalidation
    cache_flushes = 26,                   ///< whole hot-cache flushes (Redis or a path lost, admin)
    cache_redis_errors = 27,              ///< Redis commands of the cache tier that failed
    client_wakeups = 28,                  ///< futex wake-ups of sleeping clients (answers ready)
    daemon_wakeups = 29,                  ///< times a client woke the sleeping daemon (eventfd)
    wait_decisions = 30,                  ///< host-wide waiting decisions taken (shm/wait_policy.hpp)
    kCount = 31,
};
static_assert(static_cast<std::uint32_t>(Counter::kCount) <= kCounterSlots);

/// Where each section goes for a given cache size; the single source of truth
/// for both creation and the layout test.
/// The wait facts as one value (StateSegment::publish_wait_facts, StateView::wait_facts).
struct WaitFacts {
    std::uint32_t usable_cores = 0;
    std::uint32_t busy_cores = 0;
    std::uint32_t spare_cores = 0;
    std::uint32_t runnable = 0;
    std::uint32_t in_flight_milli = 0;
    std::uint32_t clients_spinning = 0;
    std::uint32_t clients_sleeping = 0;
    std::uint32_t client_permits = 0;
    bool daemon_may_spin = false;
};

struct StateGeometry {
    std::uint64_t regions_offset;
    std::uint64_t regions_length;
    std::uint64_t counters_offset;
    std::uint64_t counters_length;
    std::uint64_t cache_offset;
    std::uint64_t cache_length;
    std::uint64_t total_size;
};

constexpr StateGeometry state_geometry(std::uint64_t cache_bytes) noexcept {
    StateGeometry g{};
    g.regions_offset = align_up(sizeof(StateHeader), kCacheLine);
    g.regions_length = std::uint64_t{kMaxRegions} * kMaxEndpointsPerRegion * sizeof(EndpointSlot);
    g.counters_offset = align_up(g.regions_offset + g.regions_length, kCacheLine);
    g.counters_length = std::uint64_t{kCounterSlots} * sizeof(SharedU64);
    g.cache_offset = align_up(g.counters_offset + g.counters_length, kCacheLine);
    g.cache_length = sizeof(CacheHeader) + align_up(cache_bytes, kCacheLine);
    g.total_size = g.cache_offset + g.cache_length;
    return g;
}
static_assert(state_geometry(0).regions_offset == 192);
static_assert(state_geometry(0).counters_offset == 192 + 16 * 8 * 192);
static_assert(state_geometry(0).cache_offset == 192 + 16 * 8 * 192 + 64 * 8);
static_assert(state_geometry(0).total_size == 25280 + 192);

}  // namespace regiond::shm

// Layout of the hot cache: the cache section of the state segment
// (state_layout.hpp), written by the daemon (CacheWriter), read lock-free by
// every client through its read-only mapping (CacheReader).
//
//   section offset 0          CacheHeader (192 bytes)
//   index_offset (= 192)      CacheSlot[index_slots]          32 bytes each, seqlocked
//   arena_offset              the value arena: arena_capacity bytes, as SharedU64 words
//
// The index is open-addressed: a key lives in one of the probe_limit slots
// starting at cache_key_hash(seed, key) & (index_slots - 1) (wrapping), never
// anywhere else, so a lookup reads at most probe_limit slots, and at most one
// slot holds a given key. An insert whose window is full replaces the slot whose
// entry is oldest in the arena.
//
// The arena is a log. Positions are LOGICAL byte counters that only grow (u64:
// they never wrap in practice); byte p lives at physical offset p % capacity.
// Each entry is appended at `head` and never wraps: if it does not fit before the
// end of the arena, the rest of the arena becomes a gap (a CacheEntryHeader with
// key_len = kCacheGapMarker, when at least a header fits) and the entry starts at
// offset 0. Appending overwrites the oldest bytes: before it does, the writer
// evicts every entry it is about to overwrite (FIFO) and publishes
// `reclaimed`, a logical position below which nothing is valid any more.
//
// Why FIFO by overwrite (a log), not LRU or a slab allocator:
//  * appending is O(1) and needs no free list: no fragmentation, no compaction,
//    any mix of sizes fits until the arena is full;
//  * readers cannot write (their mapping is read-only), so they cannot mark
//    recency for LRU without a message to the daemon; FIFO needs no reader input;
//  * readers validate a copy with ONE monotonic counter: an entry at position p
//    that the writer has started to overwrite has p < reclaimed. With a
//    free-list allocator, a freed and reused block would need a per-block
//    generation and a second check.
// The cost: a hot entry is evicted as soon as the log wraps past it, like any
// other; it is refilled on its next miss (a daemon round trip). TTLs are short
// (seconds to minutes) and the arena is sized for the working set, so FIFO and
// LRU differ little here.
//
// Entry (8-byte aligned, at logical position pos):
//   CacheEntryHeader (24 bytes) | key bytes, zero-padded to 8 | value blob, zero-padded to 8
//
// Reader protocol (CacheReader::lookup), per candidate slot:
//   s1 = slot.seq (acquire); odd -> retry
//   copy the slot's words (relaxed); bounds-check pos and lengths against the arena
//   copy the entry's words out of the arena (relaxed)
//   acquire fence
//   s2 = slot.seq (relaxed); r = header.reclaimed (relaxed)
//   valid iff s1 == s2 and pos >= r; only then look at the copy (key, expiry, value).
// See cache_writer.cpp for the writer's side of each SYNC POINT, and
// docs/design-shm.md, "The hot cache", for the argument.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "shm/layout.hpp"
#include "shm/seqlock.hpp"

namespace regiond::shm {

/// CacheHeader::cache_format of this layout. 0 means "no cache" (cache.memory 0).
inline constexpr std::uint32_t kCacheFormat = 1;
/// Slots a lookup probes: bounds the work of every lookup and insert.
inline constexpr std::uint32_t kCacheProbeLimit = 8;
/// The index gets one slot per this many bytes of cache memory (an eighth of
/// it): with entries of ~500 bytes (a few rows) the index is under half full, so
/// probe windows rarely fill; smaller entries fill the index first, and then
/// displacement, not the log, decides what goes.
inline constexpr std::uint64_t kCacheBytesPerSlot = 256;
/// Cache memory below this is treated as no cache.
inline constexpr std::uint64_t kCacheMinDataBytes = 1024;
inline constexpr std::uint64_t kCacheMaxValueBytes = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kCacheMaxKeyBytes = 4096;
/// CacheEntryHeader::key_len of a gap: the rest of the arena is unused.
inline constexpr std::uint32_t kCacheGapMarker = 0xFFFFFFFFu;
/// A reader re-reads a slot a writer changed under it at most this many times,
/// then reports a miss (the daemon answers): readers never wait for the writer.
inline constexpr std::uint32_t kCacheReadRetries = 16;

/// Sub-header of the cache section.
///
/// Invariants (the writer keeps them; the reader checks the static ones once,
/// on construction, and never trusts the dynamic ones beyond bounds):
///  * line 0 is written once at creation, before the state segment's
///    layout_version is published with release, and never again;
///  * cache_format is 0 (no index, no arena) or kCacheFormat;
///  * index_slots is a power of two >= probe_limit, slot_size == sizeof(CacheSlot),
///    and [index_offset, + index_slots * slot_size) and
///    [arena_offset, + arena_capacity) are disjoint, 64-byte aligned and inside
///    [data_offset, data_offset + data_length) inside the section;
///  * arena_capacity is a multiple of 8;
///  * reclaimed only grows; every entry an index slot points to has
///    pos >= reclaimed, and head - reclaimed <= arena_capacity.
struct alignas(kCacheLine) CacheHeader {
    // ---- line 0: static, written at creation ----------------------------------
    std::uint32_t cache_format;  ///< 0: no cache; kCacheFormat
    std::uint32_t slot_size;     ///< sizeof(CacheSlot)
    std::uint64_t data_offset;   ///< from the section start: index + arena
    std::uint64_t data_length;
    /// Hash seed, random per segment (per daemon start): keys that collide are
    /// not predictable from outside, so nobody can aim keys at one probe window
    /// to evict someone else's entries.
    std::uint64_t seed;
    std::uint64_t index_offset;  ///< from the section start
    std::uint32_t index_slots;   ///< a power of two
    std::uint32_t probe_limit;   ///< kCacheProbeLimit
    std::uint64_t arena_offset;  ///< from the section start
    std::uint64_t arena_capacity;
    // ---- line 1: read by every lookup, written by inserts that wrap -----------
    /// Logical arena position below which bytes may have been overwritten.
    /// SYNC POINT: the writer stores it (relaxed) and then issues a release fence
    /// BEFORE overwriting any arena word; a reader that copied a word the writer
    /// stored after that fence, and then (after its acquire fence) loads this,
    /// sees the new value (fence-fence synchronisation), so it rejects its copy.
    SharedU64 reclaimed;
    /// Logical end of the log (the next append position). Relaxed: statistics only.
    SharedU64 head;
    std::uint8_t pad1[48];
    // ---- line 2: statistics (relaxed: independent counters, written by the
    // single writer, read for display; no snapshot across them) ---------------
    SharedU64 entries;     ///< live entries
    SharedU64 bytes_used;  ///< arena bytes of live entries (headers and padding included)
    SharedU64 inserts;
    SharedU64 evictions;  ///< live entries overwritten by the log wrapping (FIFO)
    SharedU64 displaced;  ///< live entries replaced because their probe window was full
    SharedU64 erased;     ///< erase() of a present key
    SharedU64 expired;    ///< removed by expire()
    SharedU64 reserved2;
};
static_assert(sizeof(CacheHeader) == 192 && alignof(CacheHeader) == 64);
static_assert(offsetof(CacheHeader, cache_format) == 0);
static_assert(offsetof(CacheHeader, slot_size) == 4);
static_assert(offsetof(CacheHeader, data_offset) == 8);
static_assert(offsetof(CacheHeader, data_length) == 16);
static_assert(offsetof(CacheHeader, seed) == 24);
static_assert(offsetof(CacheHeader, index_offset) == 32);
static_assert(offsetof(CacheHeader, index_slots) == 40);
static_assert(offsetof(CacheHeader, probe_limit) == 44);
static_assert(offsetof(CacheHeader, arena_offset) == 48);
static_assert(offsetof(CacheHeader, arena_capacity) == 56);
static_assert(offsetof(CacheHeader, reclaimed) == 64);
static_assert(offsetof(CacheHeader, head) == 72);
static_assert(offsetof(CacheHeader, entries) == 128);
static_assert(offsetof(CacheHeader, bytes_used) == 136);
static_assert(offsetof(CacheHeader, inserts) == 144);
static_assert(offsetof(CacheHeader, evictions) == 152);
static_assert(offsetof(CacheHeader, displaced) == 160);
static_assert(offsetof(CacheHeader, erased) == 168);
static_assert(offsetof(CacheHeader, expired) == 176);
static_assert(std::is_standard_layout_v<CacheHeader>);

/// What an index slot says, copied as a whole under the slot's seqlock.
/// Empty iff value_len == 0 (a valid value blob is never empty); an empty slot
/// has every field 0.
struct CacheSlotData {
    std::uint64_t hash;  ///< cache_key_hash(seed, key); readers skip slots whose hash differs
    std::uint64_t pos;   ///< logical arena position of the entry (8-aligned)
    std::uint32_t key_len;
    std::uint32_t value_len;
};
static_assert(sizeof(CacheSlotData) == 24 && alignof(CacheSlotData) == 8);
static_assert(offsetof(CacheSlotData, pos) == 8);
static_assert(offsetof(CacheSlotData, key_len) == 16);
static_assert(offsetof(CacheSlotData, value_len) == 20);

/// An index slot: seq (8) + 3 words = 32 bytes, two per cache line. The reader
/// extends the seqlock's read over the arena copy (see the header comment):
/// the slot's seq is re-checked after the entry's bytes were copied out.
using CacheSlot = Seqlock<CacheSlotData>;
static_assert(sizeof(CacheSlot) == 32 && alignof(CacheSlot) == 8);
static_assert(offsetof(CacheSlot, seq) == 0);
static_assert(offsetof(CacheSlot, words) == 8);
static_assert(std::is_standard_layout_v<CacheSlot>);
/// Word index of CacheSlotData::hash inside CacheSlot::words.
inline constexpr std::size_t kCacheSlotHashWord = 0;

/// The first 24 bytes of an arena entry (3 words), followed by the key and the
/// value, each zero-padded to 8 bytes.
struct CacheEntryHeader {
    std::uint64_t expires_mono_ns;  ///< CLOCK_MONOTONIC ns; a lookup at or after it misses
    std::uint32_t key_len;          ///< == the slot's; kCacheGapMarker for a gap
    std::uint32_t value_len;        ///< == the slot's
    std::uint32_t slot;             ///< the index slot written for it (the writer's eviction walk)
    std::uint32_t reserved;
};
static_assert(sizeof(CacheEntryHeader) == 24 && alignof(CacheEntryHeader) == 8);
static_assert(offsetof(CacheEntryHeader, key_len) == 8);
static_assert(offsetof(CacheEntryHeader, value_len) == 12);
static_assert(offsetof(CacheEntryHeader, slot) == 16);
static_assert(std::is_trivially_copyable_v<CacheEntryHeader>);
inline constexpr std::size_t kCacheEntryHeaderWords = sizeof(CacheEntryHeader) / 8;

/// Arena bytes of an entry: header, key and value, each padded to 8.
constexpr std::uint64_t cache_entry_bytes(std::uint64_t key_len, std::uint64_t value_len) noexcept {
    return sizeof(CacheEntryHeader) + align_up(key_len, 8) + align_up(value_len, 8);
}

/// Largest value blob an arena of `arena_capacity` bytes accepts: 1 MiB, or an
/// eighth of the arena, so that one entry never evicts more than an eighth of it.
constexpr std::uint64_t cache_max_value_bytes(std::uint64_t arena_capacity) noexcept {
    return arena_capacity / 8 < kCacheMaxValueBytes ? arena_capacity / 8 : kCacheMaxValueBytes;
}
/// Longest key: 4 KiB, or an eighth of the arena.
constexpr std::uint64_t cache_max_key_bytes(std::uint64_t arena_capacity) noexcept {
    return arena_capacity / 8 < kCacheMaxKeyBytes ? arena_capacity / 8 : kCacheMaxKeyBytes;
}

/// Where the index and the arena go inside a cache section whose data area
/// (after the CacheHeader) has `data_length` bytes: the single source of truth
/// for creation and the layout test.
struct CacheGeometry {
    bool enabled = false;            ///< false: too small, no index and no arena
    std::uint64_t index_offset = 0;  ///< from the section start
    std::uint32_t index_slots = 0;
    std::uint64_t arena_offset = 0;  ///< from the section start
    std::uint64_t arena_capacity = 0;
};

constexpr CacheGeometry cache_geometry(std::uint64_t data_length) noexcept {
    CacheGeometry g{};
    data_length &= ~std::uint64_t{kCacheLine - 1};
    if (data_length < kCacheMinDataBytes) return g;
    std::uint64_t slots = std::bit_floor(data_length / kCacheBytesPerSlot);
    if (slots < kCacheProbeLimit) slots = kCacheProbeLimit;
    if (slots > (std::uint64_t{1} << 30)) slots = std::uint64_t{1} << 30;
    g.enabled = true;
    g.index_offset = sizeof(CacheHeader);
    g.index_slots = static_cast<std::uint32_t>(slots);
    g.arena_offset = g.index_offset + slots * sizeof(CacheSlot);  // a multiple of 64: slots >= 8
    g.arena_capacity = data_length - slots * sizeof(CacheSlot);
    return g;
}
static_assert(!cache_geometry(0).enabled);
static_assert(!cache_geometry(960).enabled);
static_assert(cache_geometry(1024).index_slots == 8 && cache_geometry(1024).arena_capacity == 768);
static_assert(cache_geometry(64 << 20).index_slots == 262144);
static_assert(cache_geometry(64 << 20).arena_offset == 192 + 262144 * 32);

/// The index hash: a seeded 64-bit multiply-rotate hash over 8-byte words
/// (in the manner of xxHash64's single lane), finished with MurmurHash3's fmix64.
/// Fast for short keys, good avalanche, not cryptographic: the random per-segment
/// seed is what keeps collisions unpredictable from outside. Part of the shared
/// format: the writer and every reader must compute the same value.
inline std::uint64_t cache_key_hash(std::uint64_t seed, std::string_view key) noexcept {
    static_assert(std::endian::native == std::endian::little, "the cache hash reads words little-endian");
    constexpr std::uint64_t k1 = 0x9E3779B185EBCA87ull;
    constexpr std::uint64_t k2 = 0xC2B2AE3D27D4EB4Full;
    const char* p = key.data();
    std::size_t n = key.size();
    std::uint64_t h = seed ^ (static_cast<std::uint64_t>(n) * k1);
    auto round = [&](std::uint64_t w) {
        h ^= std::rotl(w * k2, 31) * k1;
        h = std::rotl(h, 27) * k1 + k2;
    };
    for (; n >= 8; n -= 8, p += 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        round(w);
    }
    if (n != 0) {
        std::uint64_t w = 0;
        std::memcpy(&w, p, n);
        round(w ^ (std::uint64_t{0xFF} << 56));  // the tail is distinct from a padded full word
    }
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

}  // namespace regiond::shm

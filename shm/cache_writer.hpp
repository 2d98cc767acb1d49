// The daemon's side of the hot cache: the only writer of the cache section
// (cache_layout.hpp). Not thread-safe: one thread (the daemon loop) calls it.
// Never blocks and never waits for readers; readers validate what they copy.
//
//     CacheWriter& cache = segment.cache();
//     cache.insert(key, encode_cache_value(v), monotonic_now_ns() + ttl_ns);
//     cache.erase(key);           // an invalidation
//     cache.clear();              // Redis lost: nothing can be vouched for
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "shm/cache_layout.hpp"
#include "shm/cache_stats.hpp"

namespace regiond::shm {

/// Builds an empty cache in `section` (a CacheHeader followed by the data area;
/// section.size() >= sizeof(CacheHeader), 64-byte aligned), whose bytes must all
/// be zero (a fresh shm object): the header is constructed, the index and the
/// arena are left as the kernel's zero pages (see cache_writer.cpp). With less
/// than kCacheMinDataBytes of data, cache_format is 0 (no cache). The caller
/// publishes the section to readers afterwards (StateSegment: layout_version,
/// release).
void cache_initialize(std::span<std::byte> section, std::uint64_t seed) noexcept;

class CacheWriter {
public:
    /// A writer with no cache: inserts are refused, erase finds nothing.
    CacheWriter() noexcept = default;
    /// Over a section that cache_initialize() built in this process (trusted: the
    /// writer never validates its own header).
    explicit CacheWriter(std::span<std::byte> section) noexcept;

    CacheWriter(const CacheWriter&) = delete;
    CacheWriter& operator=(const CacheWriter&) = delete;
    CacheWriter(CacheWriter&&) noexcept = default;
    CacheWriter& operator=(CacheWriter&&) noexcept = default;

    bool enabled() const noexcept { return capacity_ != 0; }
    /// Arena bytes (0: no cache).
    std::uint64_t capacity() const noexcept { return capacity_; }
    std::uint32_t index_slots() const noexcept { return index_slots_; }
    /// min(1 MiB, capacity / 8); 0 without a cache.
    std::uint64_t max_value_bytes() const noexcept { return cache_max_value_bytes(capacity_); }
    /// min(4 KiB, capacity / 8); 0 without a cache.
    std::uint64_t max_key_bytes() const noexcept { return cache_max_key_bytes(capacity_); }

    /// Stores `value_blob` under `key` until CLOCK_MONOTONIC `expires_mono_ns`,
    /// replacing the key's current entry. Evicts the oldest entries of the arena
    /// as needed (FIFO), or the oldest entry of the key's probe window when the
    /// window is full. false, and nothing changes, when there is no cache, the
    /// key or the value is too large (max_key_bytes, max_value_bytes), or the blob
    /// is not a valid cache value (parse_cache_value): the segment only ever
    /// holds values that parse.
    bool insert(std::string_view key, std::span<const std::byte> value_blob, std::uint64_t expires_mono_ns) noexcept;
    /// Removes `key`; false if it was not there.
    bool erase(std::string_view key) noexcept;
    /// Removes every entry (O(index slots)).
    void clear() noexcept;
    /// Removes every entry expired at `now_mono_ns` (O(index slots)); returns how
    /// many. Optional: lookups ignore expired entries anyway; this frees their
    /// accounting and slots early.
    std::uint64_t expire(std::uint64_t now_mono_ns) noexcept;
    /// The same for the next `max_slots` index slots only, continuing where the
    /// previous call stopped (a sweep spread over many calls: the daemon's loop
    /// is never held for a whole pass).
    std::uint64_t expire_some(std::uint64_t now_mono_ns, std::uint32_t max_slots) noexcept;

    CacheStats stats() const noexcept;

private:
    // Slot index of `key` in its probe window, or -1.
    std::int64_t find(std::uint64_t hash, std::string_view key) const noexcept;
    CacheSlotData slot_data(std::uint32_t slot) const noexcept;
    CacheEntryHeader entry_header(std::uint64_t pos) const noexcept;
    // Empties a slot (seqlocked) and takes its entry out of the accounting.
    void remove(std::uint32_t slot, const CacheSlotData& data) noexcept;
    // Evicts entries from the log's tail until it is at or past `target` (or
    // the log is empty; then the tail jumps to `next_start`), skipping the entry
    // of `skip_slot`; publishes reclaimed.
    void reclaim(std::uint64_t target, std::uint64_t next_start, std::uint32_t skip_slot) noexcept;
    SharedU64* word_at(std::uint64_t pos) const noexcept { return arena_ + (pos % capacity_) / 8; }

    CacheHeader* header_ = nullptr;
    CacheSlot* slots_ = nullptr;
    SharedU64* arena_ = nullptr;
    std::uint64_t capacity_ = 0;
    std::uint32_t index_slots_ = 0;    ///< a power of two (0: no cache)
    std::uint32_t expire_cursor_ = 0;  ///< where expire_some() goes on
    std::uint64_t seed_ = 0;
    // Writer-local copies of the published counters: the writer never reads them
    // back from shared memory.
    std::uint64_t head_ = 0;  ///< next append position
    std::uint64_t tail_ = 0;  ///< oldest entry (or gap) still in the log == reclaimed
};

}  // namespace regiond::shm

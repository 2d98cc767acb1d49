// The hot cache's statistics, as the writer publishes them in CacheHeader
// (line 2). Both the daemon (CacheWriter::stats) and any reader of the segment
// (CacheReader::stats, e.g. regionctl) read them from there.
#pragma once

#include <cstdint>

#include "shm/cache_layout.hpp"

namespace regiond::shm {

struct CacheStats {
    std::uint64_t entries = 0;     ///< live entries
    std::uint64_t bytes_used = 0;  ///< arena bytes of live entries
    std::uint64_t capacity = 0;    ///< arena bytes (0: no cache)
    std::uint64_t index_slots = 0;
    std::uint64_t inserts = 0;
    std::uint64_t evictions = 0;  ///< overwritten by the log wrapping (FIFO)
    std::uint64_t displaced = 0;  ///< replaced because their probe window was full
    std::uint64_t erased = 0;
    std::uint64_t expired = 0;
};

/// Relaxed loads: each counter is an independent statistic written by the single
/// writer; a reader sees each one whole, but no snapshot across them (entries and
/// bytes_used may be one insert apart).
inline CacheStats load_cache_stats(const CacheHeader& h, std::uint64_t capacity, std::uint64_t index_slots) noexcept {
    CacheStats s;
    s.entries = h.entries.load(std::memory_order_relaxed);
    s.bytes_used = h.bytes_used.load(std::memory_order_relaxed);
    s.capacity = capacity;
    s.index_slots = index_slots;
    s.inserts = h.inserts.load(std::memory_order_relaxed);
    s.evictions = h.evictions.load(std::memory_order_relaxed);
    s.displaced = h.displaced.load(std::memory_order_relaxed);
    s.erased = h.erased.load(std::memory_order_relaxed);
    s.expired = h.expired.load(std::memory_order_relaxed);
    return s;
}

}  // namespace regiond::shm

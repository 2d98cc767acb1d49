// Any process's side of the hot cache: lock-free lookups in the cache section of
// a read-only mapping (StateView::cache_reader()). Only loads; never writes a
// byte of the segment, never waits for the writer, and never faults or loops
// whatever bytes it finds there: the header's geometry is validated against the
// mapped section once, every slot and entry is bounds-checked before any arena
// access, and a slot the writer keeps changing is given up after
// kCacheReadRetries attempts (a miss).
//
// A CacheReader views memory it does not own: it must not outlive the StateView
// it came from. It is a small value type (copy it freely); const methods are safe
// to call from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "shm/cache_layout.hpp"
#include "shm/cache_stats.hpp"

namespace regiond::shm {

class CacheReader {
public:
    /// No cache: every lookup misses.
    CacheReader() noexcept = default;
    /// Over a cache section (CacheHeader + data). A section whose header is not a
    /// valid cache of this format (cache.memory 0, or anything malformed) gives a
    /// reader with no cache.
    explicit CacheReader(std::span<const std::byte> section) noexcept;

    bool enabled() const noexcept { return capacity_ != 0; }
    std::uint64_t capacity() const noexcept { return capacity_; }
    std::uint64_t max_value_bytes() const noexcept { return cache_max_value_bytes(capacity_); }
    std::uint64_t max_key_bytes() const noexcept { return cache_max_key_bytes(capacity_); }

    /// A hit: an entry for `key` (compared byte for byte) that was copied out
    /// whole and validated (its slot unchanged and its bytes not reclaimed while
    /// copying), not expired at `now_mono_ns` (CLOCK_MONOTONIC), whose blob
    /// parses (parse_cache_value) and whose query is exactly (sql, params)
    /// (cache_query_matches). On a hit `value_out` holds the whole blob; on a
    /// miss its contents are unspecified. Allocates only if value_out must grow.
    bool lookup(std::string_view key, std::string_view sql, std::span<const std::optional<std::string_view>> params,
                std::uint64_t now_mono_ns, std::vector<std::byte>& value_out) const;

    struct Entry {
        std::uint64_t expires_mono_ns = 0;
        std::size_t value_bytes = 0;
    };
    /// The validated entry of `key` whatever its query and expiry (for tests and
    /// regionctl); its blob in *value_out if given. The blob is not parsed.
    std::optional<Entry> peek(std::string_view key, std::vector<std::byte>* value_out = nullptr) const;

    /// The writer's published statistics (see load_cache_stats).
    CacheStats stats() const noexcept;

private:
    enum class Read { hit, miss, torn };
    Read read_slot(const CacheSlot& slot, std::uint64_t hash, std::string_view key, std::vector<std::byte>& value,
                   CacheEntryHeader& entry) const;
    // The key's validated entry, its blob in `value`.
    bool find(std::string_view key, std::vector<std::byte>& value, CacheEntryHeader& entry) const;

    const CacheHeader* header_ = nullptr;
    const CacheSlot* slots_ = nullptr;
    const SharedU64* arena_ = nullptr;
    std::uint64_t capacity_ = 0;  ///< arena bytes; 0: no cache
    std::uint32_t index_slots_ = 0;
    std::uint32_t probe_limit_ = 0;
    std::uint64_t seed_ = 0;
};

}  // namespace regiond::shm

// The hot cache of this host's state segment as the daemon's cache logic sees
// it (cache_tiers.hpp): shm::CacheWriter for changes, and a shm::CacheReader
// over the same memory for the daemon's own lookups (a fill may land between a
// client's miss and its request reaching the daemon).
#pragma once

#include "daemon/cache/cache_tiers.hpp"
#include "shm/cache_reader.hpp"
#include "shm/state_segment.hpp"

namespace regiond::daemon::cache {

class SegmentHotCache final : public HotCache {
public:
    /// `segment` outlives this object.
    explicit SegmentHotCache(shm::StateSegment& segment);

    bool lookup(std::string_view key, std::string_view sql, std::span<const std::optional<std::string_view>> params,
                std::vector<std::byte>& value) override;
    bool insert(std::string_view key, std::span<const std::byte> value, std::chrono::nanoseconds ttl) override;
    bool erase(std::string_view key) override;
    std::optional<std::uint64_t> floor_of(std::string_view key) override;
    void clear() override;
    std::size_t max_value_bytes() const override;
    HotCacheStats stats() const override;

private:
    shm::StateSegment& segment_;
    shm::CacheReader reader_;
};

}  // namespace regiond::daemon::cache

#include "daemon/cache/segment_hot_cache.hpp"

#include "shm/cache_value.hpp"

namespace regiond::daemon::cache {
namespace {

std::span<const std::byte> cache_section(const shm::StateSegment& segment) {
    // The header sits at the start of the mapping; its cache section is where
    // the segment built the cache (trusted: this process made it).
    const shm::StateHeader& header = segment.header();
    const auto* base = reinterpret_cast<const std::byte*>(&header);
    return {base + header.cache.offset, header.cache.length};
}

}  // namespace

SegmentHotCache::SegmentHotCache(shm::StateSegment& segment) : segment_(segment), reader_(cache_section(segment)) {}

bool SegmentHotCache::lookup(std::string_view key, std::string_view sql,
                             std::span<const std::optional<std::string_view>> params, std::vector<std::byte>& value) {
    return reader_.lookup(key, sql, params, shm::monotonic_now_ns(), value);
}

bool SegmentHotCache::insert(std::string_view key, std::span<const std::byte> value, std::chrono::nanoseconds ttl) {
    if (ttl <= std::chrono::nanoseconds::zero()) return false;
    return segment_.cache().insert(key, value, shm::monotonic_now_ns() + static_cast<std::uint64_t>(ttl.count()));
}

bool SegmentHotCache::erase(std::string_view key) {
    return segment_.cache().erase(key);
}

std::optional<std::uint64_t> SegmentHotCache::floor_of(std::string_view key) {
    std::vector<std::byte> blob;
    if (!reader_.peek(key, &blob)) return std::nullopt;
    const std::optional<shm::CacheValueView> value = shm::parse_cache_value(blob);
    if (!value) return std::nullopt;
    return value->floor_lsn;
}

void SegmentHotCache::clear() {
    segment_.cache().clear();
}

std::size_t SegmentHotCache::max_value_bytes() const {
    return static_cast<std::size_t>(segment_.cache().max_value_bytes());
}

HotCacheStats SegmentHotCache::stats() const {
    const shm::CacheStats s = segment_.cache().stats();
    HotCacheStats out;
    out.entries = s.entries;
    out.bytes_used = s.bytes_used;
    out.capacity = s.capacity;
    out.inserts = s.inserts;
    out.evictions = s.evictions + s.displaced;
    return out;
}

}  // namespace regiond::daemon::cache

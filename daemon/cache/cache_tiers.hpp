// The two cache tiers as the daemon's cache logic sees them: this host's hot
// cache (the state segment's, shm::CacheWriter behind it) and a region's Redis
// (RedisCacheTier behind it). Interfaces so the logic that decides what may be
// stored and served (CacheService, CachedReadHandler) is tested without a
// segment or a server, and so a daemon without Redis has no store at all.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::daemon::cache {

struct HotCacheStats {
    std::uint64_t entries = 0;
    std::uint64_t bytes_used = 0;
    std::uint64_t capacity = 0;
    std::uint64_t inserts = 0;
    std::uint64_t evictions = 0;  ///< overwritten to make room
};

/// This host's hot cache. The daemon is its only writer.
class HotCache {
public:
    virtual ~HotCache() = default;
    /// A stored value of `key` for exactly this query, not expired: its blob
    /// (shm/cache_value.hpp) in `value`.
    virtual bool lookup(std::string_view key, std::string_view sql,
                        std::span<const std::optional<std::string_view>> params, std::vector<std::byte>& value) = 0;
    /// False when the value is larger than max_value_bytes() or there is no cache.
    virtual bool insert(std::string_view key, std::span<const std::byte> value, std::chrono::nanoseconds ttl) = 0;
    virtual bool erase(std::string_view key) = 0;
    /// The floor LSN of the value held for `key` (any query), if any.
    virtual std::optional<std::uint64_t> floor_of(std::string_view key) = 0;
    virtual void clear() = 0;
    virtual std::size_t max_value_bytes() const = 0;
    virtual HotCacheStats stats() const = 0;
};

/// A region's Redis as a cache tier. Every call returns at once; outcomes
/// arrive on the loop.
class RegionStore {
public:
    struct GetReply {
        enum class Kind : std::uint8_t { value, nil, failed } kind = Kind::failed;
        std::string value;   ///< Kind::value: the bytes
        std::string reason;  ///< Kind::failed: why
    };
    virtual ~RegionStore() = default;
    virtual void get(std::string_view key, std::function<void(const GetReply&)> done) = 0;
    /// Fire and forget (a failure is counted by the store).
    virtual void set(std::string_view key, std::span<const std::byte> value, std::chrono::milliseconds ttl) = 0;
    /// DEL of every key, then PUBLISH of `payload` on the invalidation channel
    /// when it is not empty: pipelined, fire and forget.
    virtual void invalidate(std::span<const std::string> keys, std::string_view payload) = 0;
    /// Connected and its last command did not fail.
    virtual bool healthy() const = 0;
    /// "host:port" (never a password), for messages.
    virtual std::string display_name() const = 0;
};

}  // namespace regiond::daemon::cache

// A region's Redis as the cache's RegionStore (cache_tiers.hpp), on the
// daemon's RedisCacheTier (hiredis' async API on the daemon's loop).
#pragma once

#include <memory>

#include "daemon/cache/cache_tiers.hpp"
#include "daemon/redis/redis_cache_tier.hpp"

namespace regiond::daemon::cache {

class RedisRegionStore final : public RegionStore {
public:
    RedisRegionStore(EventLoop& loop, RedisCacheTierSettings settings);

    void start() { tier_.start(); }
    void get(std::string_view key, std::function<void(const GetReply&)> done) override;
    void set(std::string_view key, std::span<const std::byte> value, std::chrono::milliseconds ttl) override;
    void invalidate(std::span<const std::string> keys, std::string_view payload) override;
    bool healthy() const override { return tier_.healthy(); }
    std::string display_name() const override { return tier_.display_name(); }
    const RedisCacheTier& tier() const noexcept { return tier_; }

private:
    RedisCacheTier tier_;
};

}  // namespace regiond::daemon::cache

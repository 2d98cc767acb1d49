// Everything the cache needs at run time, built from the configuration: this
// host's hot cache (in the state segment), a Redis cache tier per region, the
// subscription to the own region's invalidation channel (the fast path), the
// tailer of invalidation rows on the local database (the durable path), and the
// CacheService that decides with them. Keeps daemon.cpp to the wiring.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/backends.hpp"
#include "daemon/cache/cache_service.hpp"
#include "daemon/cache/durable_path.hpp"
#include "daemon/cache/redis_region_store.hpp"
#include "daemon/cache/segment_hot_cache.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/redis/redis_subscriber.hpp"
#include "daemon/status_report.hpp"
#include "shm/error.hpp"
#include "shm/state_segment.hpp"

namespace regiond::daemon::cache {

struct CacheRuntimeOptions {
    std::size_t max_chunk_bytes = 1 << 19;
    /// Redis tiers, the subscription and the durable tailer (false: tests on
    /// fake endpoints; the hot cache is then never vouched for).
    bool servers = true;
    /// The durable invalidation path (none: the hot cache is never vouched for).
    DurablePathFactory durable_path;
};

class CacheRuntime {
public:
    static shm::Expected<std::unique_ptr<CacheRuntime>> create(EventLoop& loop, const config::Config& config,
                                                               Backends& backends, shm::StateSegment& segment,
                                                               Stats& stats, CacheRuntimeOptions options);
    ~CacheRuntime();
    CacheRuntime(const CacheRuntime&) = delete;
    CacheRuntime& operator=(const CacheRuntime&) = delete;

    void start();
    CacheService& service() noexcept { return *service_; }
    /// A backend's health changed (the own region's Redis among them).
    void on_backends_changed();
    /// Every 200 ms (and for status): a slice of the expiry sweep, counters refreshed.
    void tick(std::uint64_t client_hits);
    HotCacheReport report() const;
    /// regionctl cache flush [KEY...]: the reply's body.
    std::string flush(const std::vector<std::string>& keys);

private:
    CacheRuntime(Backends& backends, shm::StateSegment& segment) : backends_(backends), segment_(segment) {}

    static constexpr std::uint32_t kExpireSlotsPerTick = 4096;

    Backends& backends_;
    shm::StateSegment& segment_;
    std::size_t own_region_ = 0;
    std::unique_ptr<SegmentHotCache> hot_;
    std::vector<std::unique_ptr<RedisRegionStore>> stores_;
    std::unique_ptr<CacheService> service_;
    std::unique_ptr<RedisSubscriber> subscriber_;
    std::unique_ptr<DurablePath> tailer_;
};

}  // namespace regiond::daemon::cache

#include "daemon/cache/cache_runtime.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>

#include "config/redis_url.hpp"
#include "daemon/log.hpp"

namespace regiond::daemon::cache {
namespace {

std::string host_name() {
    char name[HOST_NAME_MAX + 1] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "unknown-host";
    return name;
}

}  // namespace

shm::Expected<std::unique_ptr<CacheRuntime>> CacheRuntime::create(EventLoop& loop, const config::Config& config,
                                                                  Backends& backends, shm::StateSegment& segment,
                                                                  Stats& stats, CacheRuntimeOptions options) {
    std::unique_ptr<CacheRuntime> rt(new CacheRuntime(backends, segment));
    const std::string& own = config.daemon.region;
    for (std::size_t r = 0; r < config.regions.size(); ++r)
        if (config.regions[r].name == own) rt->own_region_ = r;

    rt->hot_ = std::make_unique<SegmentHotCache>(segment);
    CacheServiceSettings settings;
    settings.own_region = rt->own_region_;
    settings.region = own;
    settings.origin = own + "/" + host_name() + ":" + std::to_string(::getpid());
    settings.max_chunk_bytes = options.max_chunk_bytes;
    rt->service_ = std::make_unique<CacheService>(*rt->hot_, stats, settings);
    if (!options.servers) return rt;

    CacheService* service = rt->service_.get();
    for (std::size_t r = 0; r < config.regions.size(); ++r) {
        const auto address = config::parse_redis_url(config.regions[r].redis);
        if (!address) return shm::Error::invalid("regions[" + std::to_string(r) + "].redis: " + address.error());
        RedisCacheTierSettings tier;
        tier.region = config.regions[r].name;
        tier.address = address.value();
        tier.connect_timeout = config.health.connect_timeout;
        // A cache that answers slower than this is no cache: the request goes
        // to the database instead (and the probe will judge the server).
        tier.command_timeout =
            std::min<std::chrono::nanoseconds>(config.health.connect_timeout, std::chrono::milliseconds(500));
        rt->stores_.push_back(std::make_unique<RedisRegionStore>(loop, std::move(tier)));
        service->set_store(r, rt->stores_.back().get());
        if (r == rt->own_region_) {
            RedisSubscriberSettings sub;
            sub.region = config.regions[r].name;
            sub.address = address.value();
            sub.connect_timeout = config.health.connect_timeout;
            RedisSubscriber::Hooks hooks;
            CacheRuntime* self = rt.get();
            hooks.on_subscribed = [service] { service->on_subscribed(); };
            hooks.on_message = [service, self](std::string_view payload) {
                service->on_message(payload, self->backends_.system_identifier());
            };
            hooks.on_lost = [service, self](const std::string& reason) {
                service->on_subscription_lost(reason);
                // Messages may have been lost with it: look at the durable
                // path now rather than at its next poll.
                if (self->tailer_) self->tailer_->poll_now();
            };
            rt->subscriber_ = std::make_unique<RedisSubscriber>(loop, std::move(sub), std::move(hooks));
        }
    }

    // The durable path tails the own region's database: its replica, or the
    // primary in the primary's region (which also cleans old rows up).
    const BackendEndpoint* local = nullptr;
    for (std::size_t i = 0; i < backends.size(); ++i) {
        const BackendEndpoint& e = backends.at(i);
        if (e.region_index != rt->own_region_) continue;
        if (local == nullptr || (local->role == pg::Role::primary && e.role == pg::Role::replica)) local = &e;
    }
    if (local == nullptr) {
        log::warning("cache: region " + own + " has no database to tail invalidations on; the hot cache stays off");
        return rt;
    }
    if (!options.durable_path) {
        log::warning("cache: no durable invalidation path in this build; the hot cache stays off");
        return rt;
    }
    DurablePath::Hooks hooks;
    hooks.on_invalidation = [service](std::vector<std::string> keys, std::uint64_t lsn) {
        service->on_durable(keys, lsn);
    };
    hooks.on_gap = [service](std::string reason) { service->on_durable_gap(reason); };
    hooks.on_caught_up = [service](std::uint64_t lsn) { service->on_durable_ready(lsn); };
    rt->tailer_ = options.durable_path(loop, local->options, local->role == pg::Role::primary, std::move(hooks));
    return rt;
}

CacheRuntime::~CacheRuntime() = default;

void CacheRuntime::start() {
    for (auto& store : stores_) store->start();
    if (subscriber_) subscriber_->start();
    if (tailer_) tailer_->start();
}

void CacheRuntime::on_backends_changed() {
    if (backends_.redis(own_region_) != nullptr) service_->on_own_redis_health(backends_.cache_healthy(own_region_));
}

void CacheRuntime::tick(std::uint64_t client_hits) {
    // Readers skip expired entries anyway; sweeping them frees their slots and
    // accounting. A whole pass visits every index slot (262,144 for 64 MiB,
    // ~2 ms on this machine), so each tick sweeps a bounded slice: a pass takes
    // about 13 s at 64 MiB and the loop is never held for more than ~30 us.
    segment_.cache().expire_some(shm::monotonic_now_ns(), kExpireSlotsPerTick);
    service_->refresh_stats(client_hits);
}

HotCacheReport CacheRuntime::report() const {
    const HotCacheStats s = hot_->stats();
    HotCacheReport r;
    r.capacity = s.capacity;
    r.bytes_used = s.bytes_used;
    r.entries = s.entries;
    r.vouched = service_->vouched();
    r.not_vouched = service_->not_vouched_reason();
    r.fences = service_->fences().size();
    r.fence_floor = service_->fences().floor();
    return r;
}

std::string CacheRuntime::flush(const std::vector<std::string>& keys) {
    if (keys.empty()) {
        const std::uint64_t entries = hot_->stats().entries;
        service_->flush("regionctl cache flush");
        return "flushed this host's hot cache (" + std::to_string(entries) +
               " entries); the regions' Redis keep theirs (name keys to evict them everywhere)\n";
    }
    service_->flush_keys(keys, backends_.system_identifier());
    return "evicted " + std::to_string(keys.size()) + (keys.size() == 1 ? " key" : " keys") +
           " from this host's hot cache and every region's Redis, and told every daemon\n";
}

}  // namespace regiond::daemon::cache

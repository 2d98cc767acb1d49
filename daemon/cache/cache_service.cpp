#include "daemon/cache/cache_service.hpp"

#include "daemon/log.hpp"
#include "daemon/redis/invalidation_message.hpp"

namespace regiond::daemon::cache {

CacheService::CacheService(HotCache& hot, Stats& stats, CacheServiceSettings settings)
    : hot_(hot), stats_(stats), settings_(std::move(settings)) {}

void CacheService::set_store(std::size_t region, RegionStore* store) {
    if (stores_.size() <= region) stores_.resize(region + 1, nullptr);
    stores_[region] = store;
}

RegionStore* CacheService::own_store() const noexcept {
    return settings_.own_region < stores_.size() ? stores_[settings_.own_region] : nullptr;
}

bool CacheService::redis_usable() const noexcept {
    const RegionStore* own = own_store();
    return own != nullptr && own->healthy() && vouched();
}

std::string CacheService::not_vouched_reason() const {
    if (!subscribed_) return subscription_error_;
    if (settings_.require_durable && !durable_ready_) return durable_error_;
    return {};
}

void CacheService::invalidate_local(std::span<const std::string> keys, std::uint64_t lsn) {
    for (const std::string& key : keys) {
        fences_.invalidate(key, lsn);
        // A value read from a snapshot at or past the invalidation already
        // shows the write (the same rule fences apply to fills): it stays.
        // This is what keeps the durable path, which arrives after the fast
        // one, from evicting the fresh value the fast path let in.
        if (lsn != 0) {
            const std::optional<std::uint64_t> floor = hot_.floor_of(key);
            if (floor && *floor >= lsn) continue;
        }
        if (hot_.erase(key)) stats_.add(shm::Counter::invalidations_applied);
    }
}

void CacheService::publish_invalidation(std::span<const std::string> keys, std::uint64_t lsn, std::uint64_t system_id) {
    if (keys.empty()) return;
    Invalidation message;
    message.keys.assign(keys.begin(), keys.end());
    message.lsn = lsn;
    message.system_id = system_id;
    message.origin = settings_.origin;
    // Split into messages within the channel's bounds; a key too large for
    // any message reaches the other regions by the durable path only.
    const std::optional<std::vector<std::string>> payloads = encode_invalidation_messages(message);
    for (RegionStore* store : stores_) {
        if (store == nullptr) continue;
        if (!payloads || payloads->empty()) {
            store->invalidate(keys, {});
            continue;
        }
        store->invalidate(keys, payloads->front());
        for (std::size_t i = 1; i < payloads->size(); ++i) store->invalidate({}, (*payloads)[i]);
    }
    if (!payloads)
        log::warning(
            "cache: an invalidation key is too large for the Redis channel; other regions get it by "
            "the durable path only");
    stats_.add(shm::Counter::invalidations_sent);
}

void CacheService::on_message(std::string_view payload, std::uint64_t system_id) {
    stats_.add(shm::Counter::invalidations_received);
    stats_.add(shm::Counter::invalidations_received_pubsub);
    const std::optional<Invalidation> message = parse_invalidation(payload);
    if (!message) {
        log::warning("cache: ignored a malformed message on the invalidation channel of " + settings_.region +
                     "'s Redis (" + std::to_string(payload.size()) + " bytes)");
        return;
    }
    // Another cluster's LSNs mean nothing here; its keys are still evicted
    // (an eviction is never wrong), without a fence.
    const bool same_cluster = message->system_id == 0 || system_id == 0 || message->system_id == system_id;
    invalidate_local(message->keys, same_cluster ? message->lsn : 0);
}

void CacheService::on_durable(std::span<const std::string> keys, std::uint64_t lsn) {
    stats_.add(shm::Counter::invalidations_received);
    stats_.add(shm::Counter::invalidations_received_durable);
    invalidate_local(keys, lsn);
    // The writer's DEL in this region's Redis may have been lost (a cut link,
    // Redis restarting): every daemon of the region deletes again (idempotent).
    if (RegionStore* own = own_store()) own->invalidate(keys, {});
}

void CacheService::on_subscribed() {
    subscribed_ = true;
    subscription_error_.clear();
    log::notice("cache: subscribed to the invalidation channel of " + settings_.region + "'s Redis");
}

void CacheService::on_subscription_lost(std::string_view reason) {
    const bool was = subscribed_;
    subscribed_ = false;
    subscription_error_ = "subscription to " + settings_.region + "'s Redis lost: " + std::string(reason);
    if (was) flush(subscription_error_);
}

void CacheService::on_durable_ready(std::uint64_t lsn) {
    durable_ready_ = true;
    durable_error_.clear();
    // Nothing read before the tailer's starting point is vouched for.
    fences_.invalidate_all(lsn);
}

void CacheService::on_durable_gap(std::string_view reason) {
    const bool was = durable_ready_;
    durable_ready_ = false;
    durable_error_ = "durable invalidation path: " + std::string(reason);
    if (was) flush(durable_error_);
}

void CacheService::on_own_redis_health(bool healthy) {
    if (own_redis_healthy_ == healthy) return;
    own_redis_healthy_ = healthy;
    if (!healthy) flush(settings_.region + "'s Redis is down");
}

void CacheService::flush(std::string_view reason) {
    hot_.clear();
    fences_.invalidate_all();
    stats_.add(shm::Counter::cache_flushes);
    log::warning("cache: hot cache flushed: " + std::string(reason));
}

void CacheService::flush_keys(std::span<const std::string> keys, std::uint64_t system_id) {
    invalidate_local(keys, 0);
    publish_invalidation(keys, 0, system_id);
}

void CacheService::refresh_stats(std::uint64_t client_hits) {
    const HotCacheStats s = hot_.stats();
    stats_.set(shm::Counter::cache_evictions, s.evictions);
    stats_.set(shm::Counter::cache_hits_local, daemon_local_hits_ + client_hits);
}

}  // namespace regiond::daemon::cache

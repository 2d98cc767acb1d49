// The daemon's cache, apart from answering requests (CachedReadHandler does):
// what this host's hot cache and the regions' Redis hold, what invalidations
// have fenced, and whether the hot cache can be vouched for at all.
//
// Invalidations arrive three ways and all end in invalidate_local():
//   * a write of this daemon with keys (before it answers), which also fans
//     out to every region's Redis: DEL of the keys and PUBLISH {keys, lsn,
//     origin} on the replication-events channel (publish_invalidation);
//   * the fast path: that message on the own region's channel (on_message);
//   * the durable path: the invalidation row the write committed in its own
//     transaction, tailed on the local database (on_durable), which also
//     deletes the keys in the own region's Redis (its DEL may have been lost).
//
// Vouching. The hot cache takes new values, and the own region's Redis is
// trusted, only while both paths stand: subscribed to the channel, and the
// durable tailer in place. Losing either flushes the hot cache (what it holds
// may have missed an invalidation) and raises the fences' epoch (fills that
// started before are refused); the durable tailer's (re)start also raises the
// global floor to the LSN it starts from, so nothing read before it can be
// stored or trusted. While not vouched, cached_read answers from the database.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cache/cache_tiers.hpp"
#include "daemon/cache/fences.hpp"
#include "daemon/stats.hpp"

namespace regiond::daemon::cache {

struct CacheServiceSettings {
    std::size_t own_region = 0;
    std::string region;  ///< the own region's name (messages)
    std::string origin;  ///< "<region>/<host>:<pid>": this daemon in invalidation messages
    std::size_t max_chunk_bytes = 1 << 19;
    bool require_durable = true;  ///< false only where there is no durable path (tests)
};

class CacheService {
public:
    CacheService(HotCache& hot, Stats& stats, CacheServiceSettings settings);

    /// The Redis of region `region` (nullptr: none). The own region's is the tier.
    void set_store(std::size_t region, RegionStore* store);

    HotCache& hot() noexcept { return hot_; }
    Fences& fences() noexcept { return fences_; }
    Stats& stats() noexcept { return stats_; }
    const CacheServiceSettings& settings() const noexcept { return settings_; }
    RegionStore* own_store() const noexcept;

    /// Values may be stored and the own region's Redis trusted (see above).
    bool vouched() const noexcept { return subscribed_ && (durable_ready_ || !settings_.require_durable); }
    bool redis_usable() const noexcept;
    /// Why not vouched, for route reasons and status ("" when vouched).
    std::string not_vouched_reason() const;

    /// Fences `keys` at `lsn` (0: unknown) and evicts them from the hot cache,
    /// unless the value held was read from a snapshot at or past `lsn`.
    void invalidate_local(std::span<const std::string> keys, std::uint64_t lsn);
    /// A write of this daemon with keys committed at `lsn`: DEL + PUBLISH in
    /// every region's Redis (the local eviction is invalidate_local).
    void publish_invalidation(std::span<const std::string> keys, std::uint64_t lsn, std::uint64_t system_id);
    /// The fast path: a message on the own region's channel.
    void on_message(std::string_view payload, std::uint64_t system_id);
    /// The durable path: keys of invalidation rows, visible on the local
    /// database at `lsn`.
    void on_durable(std::span<const std::string> keys, std::uint64_t lsn);

    void on_subscribed();
    void on_subscription_lost(std::string_view reason);
    /// The durable tailer (re)started at `lsn`: rows committed after it will
    /// be delivered, nothing before it is vouched for.
    void on_durable_ready(std::uint64_t lsn);
    void on_durable_gap(std::string_view reason);
    /// The own region's Redis went down or came back (its probe's verdict).
    void on_own_redis_health(bool healthy);

    /// Empties the hot cache; every fill in flight is refused.
    void flush(std::string_view reason);
    /// Admin: evicts `keys` here and in every region's Redis, and tells every
    /// daemon (PUBLISH without an LSN: no fence, an eviction).
    void flush_keys(std::span<const std::string> keys, std::uint64_t system_id);

    /// Hot-cache use and the derived counters, mirrored into Stats (called
    /// now and then by the daemon).
    void refresh_stats(std::uint64_t client_hits);
    void count_daemon_local_hit() noexcept { ++daemon_local_hits_; }

private:
    HotCache& hot_;
    Stats& stats_;
    CacheServiceSettings settings_;
    Fences fences_;
    std::vector<RegionStore*> stores_;
    bool subscribed_ = false;
    bool durable_ready_ = false;
    bool own_redis_healthy_ = false;
    std::string subscription_error_ = "not subscribed yet";
    std::string durable_error_ = "the durable invalidation path has not started yet";
    std::uint64_t daemon_local_hits_ = 0;
};

}  // namespace regiond::daemon::cache

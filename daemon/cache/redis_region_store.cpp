#include "daemon/cache/redis_region_store.hpp"

namespace regiond::daemon::cache {

RedisRegionStore::RedisRegionStore(EventLoop& loop, RedisCacheTierSettings settings)
    : tier_(loop, std::move(settings)) {}

void RedisRegionStore::get(std::string_view key, std::function<void(const GetReply&)> done) {
    tier_.get(key, [done = std::move(done), this](RedisGetResult&& result) {
        GetReply reply;
        if (result.is_hit()) {
            reply.kind = GetReply::Kind::value;
            reply.value = std::move(result.value());
        } else if (result.is_miss()) {
            reply.kind = GetReply::Kind::nil;
        } else {
            reply.kind = GetReply::Kind::failed;
            reply.reason = result.failure();
        }
        done(reply);
    });
}

void RedisRegionStore::set(std::string_view key, std::span<const std::byte> value, std::chrono::milliseconds ttl) {
    tier_.set(key, std::string_view(reinterpret_cast<const char*>(value.data()), value.size()), ttl);
}

void RedisRegionStore::invalidate(std::span<const std::string> keys, std::string_view payload) {
    tier_.invalidate(keys, payload);
}

}  // namespace regiond::daemon::cache

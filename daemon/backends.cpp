#include "daemon/backends.hpp"

#include "config/redis_url.hpp"
#include "daemon/log.hpp"
#include "daemon/text.hpp"
#include "shm/state_layout.hpp"

namespace regiond::daemon {
namespace {

std::chrono::milliseconds to_ms(std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

std::string endpoint_label(const BackendEndpoint& e) {
    return "postgres " + e.region + " " + (e.role == pg::Role::primary ? "primary " : "replica ") + e.display_name;
}

// Whether the health probe has reached a verdict: healthy, or failed with a
// reason. A connection that is open but not yet probed has none.
bool has_verdict(const pg::Health& h) {
    return h.healthy || !h.last_error.empty();
}

}  // namespace

shm::Expected<std::unique_ptr<Backends>> Backends::create(EventLoop& loop, const config::Config& config,
                                                          const EndpointFactory& factory, BackendOptions options) {
    if (config.regions.size() > shm::kMaxRegions)
        return shm::Error::invalid(std::to_string(config.regions.size()) + " regions configured in " +
                                   config.source_path + ", the state segment holds at most " +
                                   std::to_string(shm::kMaxRegions));
    std::unique_ptr<Backends> backends(new Backends(loop));
    backends->lag_tracker_ = std::make_shared<pg::LagTracker>();

    for (std::size_t r = 0; r < config.regions.size(); ++r) {
        const config::Region& region = config.regions[r];
        backends->region_names_.push_back(region.name);
        const std::size_t count = region.replicas.size() + (region.has_primary() ? 1 : 0);
        if (count > shm::kMaxEndpointsPerRegion)
            return shm::Error::invalid("region " + region.name + " has " + std::to_string(count) +
                                       " endpoints, the state segment holds at most " +
                                       std::to_string(shm::kMaxEndpointsPerRegion) + " per region");

        std::size_t slot = 0;
        auto add = [&](const std::string& conninfo, pg::Role role) {
            pg::EndpointOptions o;
            o.region = region.name;
            o.role = role;
            o.conninfo = conninfo;
            o.display_name = conninfo_display_name(conninfo);
            o.pool_size = region.pool_size;
            o.connect_timeout = to_ms(config.health.connect_timeout);
            o.check_interval = to_ms(config.health.check_interval);
            o.lag_poll_interval = to_ms(config.lag.poll_interval);
            o.down_after = config.health.down_after;
            o.up_after = config.health.up_after;
            o.max_chunk_bytes = options.max_chunk_bytes;
            o.classifier = backends->classifier_;

            BackendEndpoint e;
            e.region_index = r;
            e.slot = slot++;
            e.region = region.name;
            e.display_name = o.display_name;
            e.role = role;
            e.options = o;
            e.endpoint = factory(loop, std::move(o));
            backends->endpoints_.push_back(std::move(e));
        };
        if (region.primary) add(*region.primary, pg::Role::primary);
        for (const std::string& replica : region.replicas) add(replica, pg::Role::replica);

        if (options.redis) {
            const auto address = config::parse_redis_url(region.redis);
            if (!address) return shm::Error::invalid("regions[" + std::to_string(r) + "].redis: " + address.error());
            RedisProbeSettings settings;
            settings.region = region.name;
            settings.address = address.value();
            settings.connect_timeout = config.health.connect_timeout;
            settings.check_interval = config.health.check_interval;
            settings.down_after = config.health.down_after;
            settings.up_after = config.health.up_after;
            Backends* self = backends.get();
            backends->redis_.push_back(std::make_unique<RedisProbe>(loop, std::move(settings), [self] {
                if (self->on_change_) self->on_change_();
            }));
        }
    }

    for (BackendEndpoint& e : backends->endpoints_) {
        EndpointState state;
        state.region = e.region;
        state.name = e.display_name;
        state.role = e.role;
        backends->states_.push_back(std::move(state));
        e.endpoint->set_lag_tracker(backends->lag_tracker_);
        Backends* self = backends.get();
        e.endpoint->on_health_change([self] {
            if (self->on_change_) self->on_change_();
        });
    }
    return backends;
}

Backends::~Backends() {
    // Endpoints first: their destructors may still hold callbacks into us.
    for (BackendEndpoint& e : endpoints_) e.endpoint.reset();
}

void Backends::start() {
    for (BackendEndpoint& e : endpoints_) e.endpoint->start();
    for (auto& probe : redis_) probe->start();
}

std::span<const EndpointState> Backends::routing_states() {
    for (std::size_t i = 0; i < endpoints_.size(); ++i) {
        const pg::Health& h = endpoints_[i].endpoint->health();
        EndpointState& s = states_[i];
        s.healthy = h.healthy;
        s.checked = has_verdict(h);
        s.lag_ms = h.lag_ms;
        s.rtt_us = h.rtt_us;
        s.replay_lsn = h.replay_lsn;
        s.lag_bytes = h.lag_bytes;
        s.replay_rate = h.replay_rate;
        s.system_identifier = h.system_identifier;
    }
    return states_;
}

std::uint64_t Backends::system_identifier() {
    for (const EndpointState& e : routing_states())
        if (e.system_identifier != 0) return e.system_identifier;
    return 0;
}

const RedisProbe* Backends::redis(std::size_t region) const {
    return region < redis_.size() ? redis_[region].get() : nullptr;
}

bool Backends::cache_healthy(std::size_t region) const {
    const RedisProbe* probe = redis(region);
    return probe != nullptr && probe->healthy();
}

bool Backends::observe(std::chrono::nanoseconds alert_after) {
    const auto alert_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, to_ms(alert_after).count()));
    bool alerts_changed = false;
    for (BackendEndpoint& e : endpoints_) {
        const pg::Health& h = e.endpoint->health();
        const bool known = has_verdict(h);
        if (known && (!e.logged_known || e.logged_healthy != h.healthy)) {
            if (h.healthy)
                log::info(endpoint_label(e) + " is up (rtt " + format_duration(std::chrono::microseconds(h.rtt_us)) +
                          ")");
            else
                log::warning(endpoint_label(e) + " is down" + (h.last_error.empty() ? "" : ": " + h.last_error));
            e.logged_known = true;
            e.logged_healthy = h.healthy;
        }
        const bool alert = e.role == pg::Role::replica && h.lag_ms > alert_ms;
        if (alert != e.alert) {
            if (alert)
                log::warning("replication lag alert: " + endpoint_label(e) + " lags " + format_duration_ms(h.lag_ms) +
                             " (" + std::to_string(h.lag_bytes) + " bytes), past lag.alert_after " +
                             format_duration(alert_after));
            else
                log::notice("replication lag alert cleared: " + endpoint_label(e) + " lags " +
                            format_duration_ms(h.lag_ms) + ", under lag.alert_after " + format_duration(alert_after));
            e.alert = alert;
            alerts_changed = true;
        }
    }
    return alerts_changed;
}

void Backends::update_health(const config::HealthSection& health) {
    for (auto& probe : redis_)
        probe->update(health.connect_timeout, health.check_interval, health.down_after, health.up_after);
    for (BackendEndpoint& e : endpoints_)
        e.endpoint->update_health(to_ms(health.connect_timeout), to_ms(health.check_interval), health.down_after,
                                  health.up_after);
}

void Backends::drain(const std::string& reason, std::function<void()> drained) {
    if (endpoints_.empty()) {
        loop_.defer(std::move(drained));
        return;
    }
    auto pending = std::make_shared<std::size_t>(endpoints_.size());
    auto done = std::make_shared<std::function<void()>>(std::move(drained));
    for (BackendEndpoint& e : endpoints_)
        e.endpoint->drain(reason, [pending, done] {
            if (--*pending == 0 && *done) (*done)();
        });
}

std::size_t Backends::in_flight() const {
    std::size_t n = 0;
    for (const BackendEndpoint& e : endpoints_) n += e.endpoint->in_flight();
    return n;
}

}  // namespace regiond::daemon

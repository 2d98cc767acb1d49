#include "daemon/operation_handler.hpp"

namespace regiond::daemon {

DispatchSettings DispatchSettings::from(const config::Config& config) {
    DispatchSettings s;
    s.routing = RoutingSettings{config.daemon.region, config.lag.max_lag};
    s.request_timeout = config.daemon.request_timeout;
    s.max_request_timeout = config.daemon.max_request_timeout;
    s.max_result = config.daemon.max_result;
    s.consistency_max_wait = config.consistency.max_wait;
    s.cache_default_ttl = config.cache.default_ttl;
    return s;
}

}  // namespace regiond::daemon

// What the parts of one Endpoint share (pool.hpp, probe.hpp, scheduler.hpp):
// the loop, the options (health settings change on SIGHUP), the connection
// settings, the Health snapshot and the statement classifier. Loop thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "daemon/event_loop.hpp"
#include "daemon/pg/connection.hpp"
#include "daemon/pg/endpoint.hpp"
#include "daemon/pg/outcome.hpp"
#include "daemon/pg/result_stream.hpp"
#include "daemon/pg/statement_classifier.hpp"

namespace regiond::daemon::pg {

using Clock = std::chrono::steady_clock;

struct EndpointContext {
    EndpointContext(EventLoop& l, EndpointOptions o);

    EventLoop& loop;
    EndpointOptions options;
    const std::string served_by;  ///< "<region>/<primary|replica>"
    ConnectionSettings settings;  ///< for pool and probe connections
    Health health;
    std::shared_ptr<StatementClassifier> classifier;
    EncoderPool encoders;  ///< outlives every job (the scheduler is destroyed first)

    bool primary() const { return options.role == Role::primary; }
    Outcome error(std::string_view message, std::string_view sqlstate = "", bool retry_elsewhere = false,
                  std::string_view route_reason = {}) const {
        return error_outcome(served_by, message, sqlstate, retry_elsewhere, options.max_chunk_bytes, route_reason);
    }
};

}  // namespace regiond::daemon::pg

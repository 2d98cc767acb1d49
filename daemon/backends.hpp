// The daemon's view of its servers: one pg::Endpoint per PostgreSQL server (the
// primary and every replica of every region, sharing one LagTracker) and one
// RedisProbe per region. Built from the Config; keeps the routing snapshot and
// the per-endpoint transitions that deserve a log line (up/down, lag alert
// raised/cleared).
//
// Endpoints are made through a factory so that tests can run the whole daemon
// core on fake backends; the real one is pg::Endpoint::create.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/conninfo.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/pg/endpoint.hpp"
#include "daemon/pg/statement_classifier.hpp"
#include "daemon/redis_probe.hpp"
#include "daemon/routing.hpp"
#include "shm/error.hpp"

namespace regiond::daemon {

using EndpointFactory = std::function<std::unique_ptr<pg::Endpoint>(EventLoop&, pg::EndpointOptions)>;

/// "host:port" of a libpq conninfo string or URI, never anything else of it
/// (it may hold a password): config/conninfo.hpp.
using config::conninfo_display_name;

struct BackendEndpoint {
    std::unique_ptr<pg::Endpoint> endpoint;
    std::size_t region_index = 0;  ///< into Config::regions (= the state segment's region row)
    std::size_t slot = 0;          ///< within the region: the primary first, then the replicas
    std::string region;
    std::string display_name;
    pg::Role role = pg::Role::replica;
    /// What the endpoint was made with (the durable invalidation tailer
    /// connects to the same server the same way).
    pg::EndpointOptions options;
    // What was last reported in the log, to log transitions only.
    bool logged_known = false;
    bool logged_healthy = false;
    bool alert = false;
};

struct BackendOptions {
    std::uint32_t max_chunk_bytes = 1 << 19;  ///< the response ring's largest record
    bool redis = true;                        ///< false in tests that have no Redis
};

class Backends {
public:
    static shm::Expected<std::unique_ptr<Backends>> create(EventLoop& loop, const config::Config& config,
                                                           const EndpointFactory& factory, BackendOptions options);
    Backends(const Backends&) = delete;
    Backends& operator=(const Backends&) = delete;
    ~Backends();

    /// Opens the pools, starts probes and Redis checks.
    void start();
    /// Called on every health change of any endpoint or Redis (on the loop).
    void on_change(std::function<void()> fn) { on_change_ = std::move(fn); }

    std::size_t size() const noexcept { return endpoints_.size(); }
    BackendEndpoint& at(std::size_t index) { return endpoints_[index]; }
    const BackendEndpoint& at(std::size_t index) const { return endpoints_[index]; }

    /// The routing snapshot, refreshed from every endpoint's health().
    std::span<const EndpointState> routing_states();

    /// The cluster's system identifier (tokens carry it); 0 until an endpoint connected.
    std::uint64_t system_identifier();

    /// The statement classifier (and its cache) every endpoint shares.
    pg::StatementClassifier& classifier() { return *classifier_; }

    std::size_t region_count() const noexcept { return region_names_.size(); }
    const std::string& region_name(std::size_t region) const { return region_names_[region]; }
    /// nullptr when Redis checks are off.
    const RedisProbe* redis(std::size_t region) const;
    bool cache_healthy(std::size_t region) const;

    /// Logs up/down and lag-alert transitions; updates BackendEndpoint::alert.
    /// Returns true when an alert was raised or cleared.
    bool observe(std::chrono::nanoseconds alert_after);

    void update_health(const config::HealthSection& health);

    /// Stops every endpoint (see pg::Endpoint::drain); `drained` runs once all are.
    void drain(const std::string& reason, std::function<void()> drained);
    std::size_t in_flight() const;

private:
    Backends(EventLoop& loop) : loop_(loop) {}

    EventLoop& loop_;
    std::shared_ptr<pg::LagTracker> lag_tracker_;
    std::shared_ptr<pg::StatementClassifier> classifier_ = std::make_shared<pg::StatementClassifier>();
    std::vector<BackendEndpoint> endpoints_;
    std::vector<EndpointState> states_;
    std::vector<std::string> region_names_;
    std::vector<std::unique_ptr<RedisProbe>> redis_;  // per region (empty when off)
    std::function<void()> on_change_;
};

}  // namespace regiond::daemon

// Endpoint: the pieces of one PostgreSQL endpoint put together. The scheduler
// (scheduler.hpp: queue, dispatch, deadlines, retries, cancellation,
// streaming) runs jobs on the pool's connections (pool.hpp); the probe
// (probe.hpp) alone decides health; the canceller (canceller.hpp) sends
// PQcancel off the loop. daemon/pg/README.md has the design, endpoint.hpp the
// contract.
#include "daemon/pg/endpoint.hpp"

#include "daemon/pg/canceller.hpp"
#include "daemon/pg/endpoint_context.hpp"
#include "daemon/pg/probe.hpp"
#include "daemon/pg/scheduler.hpp"

namespace regiond::daemon::pg {
namespace {

/// Prepared statements kept per connection.
constexpr std::size_t kStatementCacheCapacity = 256;
/// Response encoders kept for reuse (about the jobs a busy endpoint has in flight).
constexpr std::size_t kEncodersKept = 32;

class EndpointImpl final : public Endpoint, ProbeListener {
public:
    EndpointImpl(EventLoop& loop, EndpointOptions options)
        : ctx_(loop, std::move(options)), canceller_(loop), probe_(ctx_, *this), scheduler_(ctx_, probe_, canceller_) {}

    ~EndpointImpl() override = default;  // completions of jobs still outstanding are dropped (drain() first)

    void start() override {
        if (started_) return;
        started_ = true;
        scheduler_.start();
        probe_.start();
    }

    JobId submit(Job job, JobCallbacks callbacks) override {
        return scheduler_.submit(std::move(job), std::move(callbacks));
    }
    void resume(JobId id) override { scheduler_.resume(id); }
    void cancel(JobId id) override { scheduler_.cancel(id); }

    const Health& health() const override {
        ctx_.health.pool_in_use = scheduler_.pool().in_use();
        ctx_.health.pool_size = ctx_.options.pool_size;
        return ctx_.health;
    }

    const EndpointOptions& options() const override { return ctx_.options; }
    void on_health_change(std::function<void()> fn) override { health_callbacks_.push_back(std::move(fn)); }

    void update_health(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds check_interval,
                       unsigned down_after, unsigned up_after) override {
        ctx_.options.connect_timeout = connect_timeout;
        ctx_.options.check_interval = check_interval;
        ctx_.options.down_after = down_after;
        ctx_.options.up_after = up_after;
        ctx_.settings.connect_timeout = connect_timeout;  // connections opened from now on
        scheduler_.pool().set_connect_timeout(connect_timeout);
        probe_.settings_changed();
    }

    void set_lag_tracker(std::shared_ptr<LagTracker> tracker) override { probe_.set_lag_tracker(std::move(tracker)); }
    void set_lsn_watch(bool) override {}                                 // TEMP: rc-pg
    void on_replay_lsn(std::function<void(std::uint64_t)>) override {}  // TEMP: rc-pg

    void drain(std::string reason, std::function<void()> drained) override {
        probe_.stop();
        scheduler_.drain(std::move(reason), [this, drained = std::move(drained)] {
            probe_.close();
            if (drained) drained();
        });
    }

    std::size_t in_flight() const override { return scheduler_.in_flight(); }

private:
    // ProbeListener
    void endpoint_down(const std::string& why) override { scheduler_.endpoint_down(why); }
    void health_changed() override {
        for (auto& fn : health_callbacks_) fn();
    }

    mutable EndpointContext ctx_;
    Canceller canceller_;
    Probe probe_;
    Scheduler scheduler_;  ///< last: destroyed first (its jobs wait on the probe and the canceller)
    std::vector<std::function<void()>> health_callbacks_;
    bool started_ = false;
};

std::vector<std::pair<std::string, std::string>> startup_settings(Role role) {
    // The server checks every second whether the client went away while a query
    // runs (PostgreSQL 14+): a statement whose connection the daemon closes (a
    // cancel that did not take, a stalled endpoint) stops within a second. On a
    // replica, read-only is the session default too: a free guard should it be
    // promoted under us. Both are startup options, so they are the session's
    // reset values and DISCARD ALL keeps them.
    std::vector<std::pair<std::string, std::string>> settings{{"client_connection_check_interval", "1s"}};
    if (role == Role::replica) settings.emplace_back("default_transaction_read_only", "on");
    return settings;
}

}  // namespace

EndpointContext::EndpointContext(EventLoop& l, EndpointOptions o)
    : loop(l),
      options(std::move(o)),
      served_by(options.region + (options.role == Role::primary ? "/primary" : "/replica")),
      classifier(options.classifier ? options.classifier : std::make_shared<StatementClassifier>()),
      encoders(options.max_chunk_bytes, kEncodersKept) {
    if (options.pool_size == 0) options.pool_size = 1;
    if (options.display_name.empty()) options.display_name = served_by;
    settings.conninfo = options.conninfo;
    settings.display_name = options.display_name;
    settings.connect_timeout = options.connect_timeout;
    settings.statement_cache_capacity = kStatementCacheCapacity;
    settings.startup_settings = startup_settings(options.role);
    health.pool_size = options.pool_size;
}

std::unique_ptr<Endpoint> Endpoint::create(EventLoop& loop, EndpointOptions options) {
    return std::make_unique<EndpointImpl>(loop, std::move(options));
}

}  // namespace regiond::daemon::pg

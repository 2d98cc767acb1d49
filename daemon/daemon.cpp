#include "daemon/daemon.hpp"

#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>

#include "config/parse.hpp"
#include "daemon/instance_guard.hpp"
#include "daemon/log.hpp"
#include "daemon/reload_plan.hpp"
#include "daemon/text.hpp"
#include "regiond_version.h"

namespace regiond::daemon {
namespace {

constexpr auto kHeartbeatPeriod = std::chrono::milliseconds(50);  // StateHeader: every <= 100 ms
constexpr unsigned kPublishEvery = 4;                             // heartbeats between table refreshes
constexpr auto kStatusPeriod = std::chrono::seconds(1);
constexpr auto kStatusCoalesce = std::chrono::milliseconds(100);
constexpr auto kStaleHeartbeat = std::chrono::seconds(2);

void copy_name(char (&out)[shm::kNameCapacity], const std::string& text) {
    const std::size_t n = std::min<std::size_t>(text.size(), shm::kNameCapacity - 1);
    std::memcpy(out, text.data(), n);
    out[n] = '\0';
}

const char* signal_name(int signal) {
    switch (signal) {
        case SIGTERM: return "SIGTERM";
        case SIGINT: return "SIGINT";
        case SIGHUP: return "SIGHUP";
        default: return "a signal";
    }
}

}  // namespace

Daemon::Daemon(DaemonOptions& options) : config_(std::move(options.config)) {}

std::unique_ptr<Daemon> Daemon::create(DaemonOptions options, StartError& error) {
    std::unique_ptr<Daemon> daemon(new Daemon(options));
    if (!daemon->start(options, error)) return nullptr;
    return daemon;
}

AccessPolicy Daemon::access_policy() const {
    AccessPolicy policy;
    policy.daemon_uid = ::geteuid();
    policy.allowed_uids = config_.daemon.allowed_uids;
    if (config_.daemon.client_gid != static_cast<gid_t>(-1)) policy.client_gid = config_.daemon.client_gid;
    policy.client_group = config_.daemon.client_group;
    policy.admin_gid = config_.daemon.admin_gid;
    policy.admin_group = config_.daemon.admin_group;
    policy.config_path = config_.source_path;
    return policy;
}

ClientLimits Daemon::client_limits() const {
    const config::DaemonSection& d = config_.daemon;
    ClientLimits limits;
    limits.max_request = d.max_request;
    limits.max_in_flight_per_client = d.max_in_flight_per_client;
    limits.max_backlog = d.max_backlog;
    // A client that reads nothing for as long as a request may take is gone.
    limits.max_stall = std::max<std::chrono::nanoseconds>(d.request_timeout, std::chrono::seconds(5));
    return limits;
}

bool Daemon::start(DaemonOptions& options, StartError& error) {
    const auto fail = [&](int code, std::string message) {
        error.exit_code = code;
        error.message = std::move(message);
        return false;
    };
    const config::DaemonSection& d = config_.daemon;
    if (config_.find_region(d.region) == nullptr)
        return fail(EX_CONFIG, "daemon.region \"" + d.region + "\" is not one of the configured regions");
    const std::optional<gid_t> group =
        d.client_gid != static_cast<gid_t>(-1) ? std::optional<gid_t>(d.client_gid) : std::nullopt;

    if (options.handle_signals) {
        auto signals = SignalSource::create(loop_, [this](int signal) { on_signal(signal); });
        if (!signals) return fail(1, signals.error().message);
        signals_ = std::move(*signals);
    }

    // A live daemon on any of our names: refuse before touching anything.
    if (auto cleared = clear_stale_socket(d.socket, "client socket"); !cleared) return fail(1, cleared.error().message);
    if (auto cleared = clear_stale_socket(d.admin_socket, "admin socket"); !cleared)
        return fail(1, cleared.error().message);
    shm::StateSegmentOptions segment_options;
    segment_options.name = d.state_segment;
    segment_options.cache_bytes = config_.cache.memory;
    segment_options.group = group;
    segment_options.mode = 0640;
    // The configured name, or NAME.XXXXXXXX when another user squats it.
    auto segment = claim_state_segment(segment_options, kStaleHeartbeat);
    if (!segment) return fail(1, segment.error().message);
    state_.emplace(std::move(*segment));
    state_->heartbeat_now();
    stats_.attach(&*state_);

    const auto ring_size = static_cast<std::uint32_t>(d.ring_size);
    BackendOptions backend_options;
    backend_options.max_chunk_bytes = shm::ring_max_payload(ring_size);
    backend_options.redis = options.redis_checks;
    auto backends = Backends::create(loop_, config_, options.endpoint_factory, backend_options);
    if (!backends) return fail(EX_CONFIG, backends.error().message);
    backends_ = std::move(*backends);
    cache::CacheRuntimeOptions cache_options;
    cache_options.max_chunk_bytes = backend_options.max_chunk_bytes;
    cache_options.servers = options.redis_checks;
    cache_options.durable_path = options.durable_path;
    auto cache = cache::CacheRuntime::create(loop_, config_, *backends_, *state_, stats_, cache_options);
    if (!cache) return fail(EX_CONFIG, cache.error().message);
    cache_ = std::move(*cache);

    ClientServerSettings settings;
    settings.acceptor.socket_path = d.socket;
    settings.acceptor.group = group;
    settings.acceptor.ring_size = ring_size;
    settings.acceptor.max_clients = d.max_clients;
    settings.acceptor.state_segment = state_->name();
    settings.acceptor.generation = state_->generation();
    settings.acceptor.access = access_policy();
    settings.acceptor.handshake_timeout = options.handshake_timeout;
    settings.limits = client_limits();
    client_server_ = std::make_unique<ClientServer>(loop_, std::move(settings), stats_);
    dispatcher_ = std::make_unique<Dispatcher>(loop_, DispatchSettings::from(config_), *backends_, *client_server_,
                                               stats_, cache_->service());
    client_server_->set_handler(dispatcher_.get());
    waiting_ = std::make_unique<WaitCoordinator>(
        *client_server_, *state_, stats_, [this] { return dispatcher_->pending(); },
        options.usable_cores != 0 ? options.usable_cores : usable_cores(), options.loadavg_path, options.host_waiting);
    client_server_->set_spin_allowed([this] {
        const bool allowed = waiting_->daemon_may_spin();
        waiting_->note_daemon_spinning(allowed);
        return allowed;
    });
    // STATUS follows the client count soon, but at most every 100 ms however
    // fast clients come and go.
    client_server_->on_clients_changed([this] {
        if (!status_soon_.pending()) status_soon_ = loop_.timer(kStatusCoalesce, [this] { tick_status(); });
    });
    if (auto listening = client_server_->listen(); !listening) return fail(1, listening.error().message);

    admin_ = std::make_unique<AdminServer>(loop_, UnixListenerOptions{d.admin_socket, "admin socket", 0660, group},
                                           access_policy(),
                                           [this](const AdminCommand& command) { return execute_admin(command); });
    if (auto listening = admin_->listen(); !listening) return fail(1, listening.error().message);

    loop_.set_before_block([this] {
        waiting_->maybe_decide(WaitCoordinator::Clock::now());
        return client_server_->before_block();
    });
    backends_->on_change([this] { on_backend_change(); });
    backends_->start();
    cache_->start();
    publish_all();

    heartbeat_timer_ = loop_.timer(kHeartbeatPeriod, [this] { tick_heartbeat(); });
    if (const auto interval = Notifier::watchdog_interval()) tick_watchdog(*interval);

    log::notice("regiond " REGIOND_VERSION " serving region " + d.region + " (pid " + std::to_string(::getpid()) +
                "): " + std::to_string(backends_->size()) + " PostgreSQL endpoints, client socket " + d.socket +
                ", admin socket " + d.admin_socket + ", state segment " + state_->name());
    notifier_.ready();
    tick_status();
    schedule_status();
    return true;
}

Daemon::~Daemon() {
    tearing_down_ = true;
    cleanup();
    // Members are destroyed in reverse order: the admin server, the dispatcher
    // (pending completions turn into no-ops), the client server, the backends,
    // the state segment (its name is removed), the signal source, the loop.
}

void Daemon::cleanup() {
    if (cleaned_up_) return;
    cleaned_up_ = true;
    if (admin_) admin_->close();
    if (client_server_) {
        client_server_->stop_accepting();
        client_server_->close_all();
    }
}

int Daemon::run() {
    while (!finished_) loop_.run_once(std::chrono::seconds(1));
    cleanup();
    log::notice("regiond stopped");
    return exit_code_;
}

void Daemon::run_once(std::chrono::milliseconds max_wait) {
    loop_.run_once(max_wait);
}

void Daemon::on_signal(int signal) {
    if (signal == SIGHUP) {
        log::notice("SIGHUP received: reloading " + config_.source_path);
        reload();
        return;
    }
    shutdown(std::string(signal_name(signal)) + " received");
}

void Daemon::shutdown(const std::string& why) {
    if (finishing_) return;
    if (draining_) {
        log::warning(why + " again: exiting at once, " + std::to_string(dispatcher_->pending()) +
                     " requests abandoned");
        dispatcher_->abandon_all("regiond is shutting down: the request was abandoned (immediate stop)");
        finish();
        return;
    }
    draining_ = true;
    notifier_.stopping();
    log::notice(why + ": draining " + std::to_string(dispatcher_->pending()) + " requests in flight for up to " +
                format_duration(config_.daemon.drain_timeout) + "; new clients and requests are refused");
    client_server_->stop_accepting();
    dispatcher_->begin_drain();
    tick_status();
    drain_timer_ = loop_.timer(std::chrono::duration_cast<EventLoop::Clock::duration>(config_.daemon.drain_timeout),
                               [this] { on_drain_timeout(); });
    backends_->drain("regiond is shutting down", [this] {
        if (!tearing_down_) loop_.defer([this] { on_drained(); });
    });
}

void Daemon::on_drained() {
    if (finishing_) return;
    if (dispatcher_->pending() != 0) dispatcher_->abandon_all("regiond is shutting down");
    log::notice("drained: every request in flight was answered");
    finish();
}

void Daemon::on_drain_timeout() {
    if (finishing_) return;
    const std::size_t left = dispatcher_->pending();
    log::warning("drain_timeout " + format_duration(config_.daemon.drain_timeout) + " passed with " +
                 std::to_string(left) + " requests in flight: answering them with an error");
    dispatcher_->abandon_all("regiond is shutting down: the request did not finish within daemon.drain_timeout (" +
                             format_duration(config_.daemon.drain_timeout) + ")");
    finish();
}

void Daemon::finish() {
    finishing_ = true;
    drain_timer_.cancel();
    client_server_->flush_all();
    exit_code_ = 0;
    finished_ = true;
    loop_.stop();
}

void Daemon::reload() {
    notifier_.reloading();
    auto outcome = config::parse_config_file(config_.source_path);
    if (!outcome.ok()) {
        log::error("reload: " + config_.source_path + " has " + std::to_string(outcome.errors.size()) +
                   " errors; keeping the running configuration");
        for (const auto& diagnostic : outcome.errors) log::error("reload: " + diagnostic.to_string());
        notifier_.ready();
        return;
    }
    apply_config(std::move(*outcome.config));
    notifier_.ready();
}

void Daemon::apply_config(config::Config next) {
    ReloadPlan plan = plan_reload(config_, next);
    config_ = std::move(plan.effective);
    dispatcher_->update(DispatchSettings::from(config_));
    client_server_->update(config_.daemon.max_clients, access_policy(), client_limits());
    admin_->set_access(access_policy());
    backends_->update_health(config_.health);
    backends_->observe(config_.lag.alert_after);
    publish_all();

    const auto join = [](const std::vector<std::string>& keys) {
        std::string text;
        for (const auto& k : keys) text += (text.empty() ? "" : ", ") + k;
        return text;
    };
    if (plan.applied.empty() && plan.need_restart.empty()) log::notice("reload: no changes in " + config_.source_path);
    if (!plan.applied.empty()) log::notice("reload: applied " + join(plan.applied));
    if (!plan.need_restart.empty())
        log::warning("reload: changed but only applied after a restart (running values kept): " +
                     join(plan.need_restart));
    for (const auto& note : plan.notes) log::notice("reload: " + note);
}

void Daemon::on_backend_change() {
    if (tearing_down_ || !state_) return;
    backends_->observe(config_.lag.alert_after);
    publish_all();
    if (cache_) cache_->on_backends_changed();
    if (dispatcher_) dispatcher_->on_backends_changed();
}

void Daemon::publish_endpoint(std::size_t index) {
    const BackendEndpoint& e = backends_->at(index);
    const pg::Health& h = e.endpoint->health();
    shm::EndpointStatus status{};
    copy_name(status.region, e.region);
    copy_name(status.endpoint, e.display_name);
    status.in_use = 1;
    status.role = static_cast<std::uint8_t>(e.role == pg::Role::primary ? shm::EndpointRole::primary
                                                                        : shm::EndpointRole::replica);
    status.healthy = h.healthy ? 1 : 0;
    status.cache_healthy = backends_->cache_healthy(e.region_index) ? 1 : 0;
    status.alert = e.alert ? 1 : 0;
    status.last_error = h.last_error.empty() ? 0 : 1;
    status.rtt_us = h.rtt_us;
    status.pool_in_use = h.pool_in_use;
    status.pool_size = h.pool_size;
    status.lag_ms = h.lag_ms;
    status.lag_bytes = h.lag_bytes;
    status.replay_lsn = h.replay_lsn;
    status.updated_ns = shm::monotonic_now_ns();
    state_->write_endpoint(static_cast<std::uint32_t>(e.region_index), static_cast<std::uint32_t>(e.slot), status);
}

void Daemon::publish_all() {
    for (std::size_t i = 0; i < backends_->size(); ++i) publish_endpoint(i);
}

void Daemon::tick_heartbeat() {
    state_->heartbeat_now();
    if (++heartbeat_ticks_ % kPublishEvery == 0) {
        // Pool usage and lag move without a health callback: refresh the table.
        backends_->observe(config_.lag.alert_after);
        publish_all();
        cache_->tick(client_server_->client_cache_hits());
    }
    heartbeat_timer_ = loop_.timer(kHeartbeatPeriod, [this] { tick_heartbeat(); });
}

void Daemon::tick_watchdog(std::chrono::microseconds interval) {
    notifier_.watchdog();
    watchdog_timer_ = loop_.timer(std::chrono::duration_cast<EventLoop::Clock::duration>(interval / 2),
                                  [this, interval] { tick_watchdog(interval); });
}

std::string Daemon::status_line() {
    std::string line = draining_ ? "draining: " : "";
    const std::size_t clients = client_server_->client_count();
    line += "serving " + std::to_string(clients) + (clients == 1 ? " client" : " clients");
    for (std::size_t i = 0; i < backends_->size(); ++i) {
        const BackendEndpoint& e = backends_->at(i);
        if (e.region != config_.daemon.region && e.role != pg::Role::primary) continue;
        const pg::Health& h = e.endpoint->health();
        line += "; " + e.region + " " + role_name(e.role) + " ";
        if (!h.healthy)
            line += "down";
        else if (e.alert)
            line += "lagging " + format_duration_ms(h.lag_ms);
        else
            line += "healthy";
    }
    return line;
}

void Daemon::schedule_status() {
    status_timer_ = loop_.timer(kStatusPeriod, [this] {
        tick_status();
        schedule_status();
    });
}

void Daemon::tick_status() {
    if (tearing_down_) return;
    notifier_.status(status_line());
}

StatusSnapshot Daemon::snapshot() {
    StatusSnapshot s;
    s.region = config_.daemon.region;
    s.pid = ::getpid();
    s.generation = state_->generation();
    s.state_segment = state_->name();
    s.uptime_s = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count());
    s.clients = client_server_->client_count();
    s.in_flight = client_server_->requests_in_flight();
    s.orphaned = client_server_->orphaned_requests();
    s.backlog_bytes = client_server_->backlog_bytes();
    s.draining = draining_;
    s.alert_after = config_.lag.alert_after;
    s.max_lag = config_.lag.max_lag;
    for (std::size_t i = 0; i < backends_->size(); ++i) {
        const BackendEndpoint& e = backends_->at(i);
        const pg::Health& h = e.endpoint->health();
        EndpointReport r;
        r.region = e.region;
        r.endpoint = e.display_name;
        r.role = e.role;
        r.healthy = h.healthy;
        r.lag_ms = h.lag_ms;
        r.lag_bytes = h.lag_bytes;
        r.rtt_us = h.rtt_us;
        r.replay_lsn = h.replay_lsn;
        r.replay_rate = h.replay_rate;
        r.pool_in_use = h.pool_in_use;
        r.pool_size = h.pool_size;
        r.cache_healthy = backends_->cache_healthy(e.region_index);
        r.alert = e.alert;
        r.last_error = h.last_error;
        s.endpoints.push_back(std::move(r));
    }
    for (std::size_t r = 0; r < backends_->region_count(); ++r) {
        CacheReport c;
        c.region = backends_->region_name(r);
        if (const RedisProbe* probe = backends_->redis(r)) {
            c.healthy = probe->healthy();
            c.rtt_us = probe->rtt_us();
            c.last_error = probe->checked() ? probe->last_error() : "not checked yet";
        } else {
            c.last_error = "not checked";
        }
        s.caches.push_back(std::move(c));
    }
    cache_->tick(client_server_->client_cache_hits());  // counters as of now
    for (std::size_t i = 0; i < kCounterCount; ++i) {
        const auto counter = static_cast<shm::Counter>(i);
        s.counters.emplace_back(counter_name(counter), stats_.get(counter));
    }
    s.consistent_wait = stats_.consistent_wait();
    s.hot_cache = cache_->report();
    s.waiting = waiting_->facts();
    return s;
}

std::string Daemon::execute_admin(const AdminCommand& command) {
    switch (command.kind) {
        case AdminCommand::Kind::status: return admin_ok(format_status_text(snapshot()));
        case AdminCommand::Kind::status_json: return admin_ok(format_status_json(snapshot()));
        case AdminCommand::Kind::metrics: return admin_ok(format_metrics(snapshot()));
        case AdminCommand::Kind::cache_flush: return admin_ok(cache_->flush(command.keys));
        case AdminCommand::Kind::help: return admin_ok("commands: " + admin_command_list() + "\n");
        case AdminCommand::Kind::invalid: return admin_error(command.error);
    }
    return admin_error("unknown command");
}

}  // namespace regiond::daemon

// regiond's core, as a library: main() parses the command line and the config,
// then Daemon::create(...)->run(). Tests embed it (fake backends, no signals) and
// drive the loop with run_once().
//
// Start (create): claim the names (refusing when a live daemon holds them), the
// state segment, the backends, the client and admin listeners, then READY=1.
// Run: one EventLoop; timers for the heartbeat (50 ms), the endpoint table
// refresh (200 ms), STATUS (1 s) and the watchdog (half of WatchdogSec).
// Stop (SIGTERM/SIGINT): STOPPING=1, stop accepting, refuse new requests, let
// the jobs in flight finish up to daemon.drain_timeout, answer the rest with an
// error, exit 0. A second SIGTERM exits at once.
// Reload (SIGHUP): RELOADING=1, re-read the file, apply what can change live
// (reload_plan.hpp), log the rest, READY=1; a broken file is logged and ignored.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "daemon/admin_server.hpp"
#include "daemon/backends.hpp"
#include "daemon/cache/cache_runtime.hpp"
#include "daemon/client_server.hpp"
#include "daemon/dispatcher.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/notifier.hpp"
#include "daemon/signals.hpp"
#include "daemon/stats.hpp"
#include "daemon/status_report.hpp"
#include "daemon/waiting/wait_coordinator.hpp"
#include "shm/state_segment.hpp"

namespace regiond::daemon {

struct DaemonOptions {
    config::Config config;
    EndpointFactory endpoint_factory;  ///< pg::Endpoint::create in the real daemon
    bool handle_signals = true;        ///< false: tests call shutdown()/reload() themselves
    bool redis_checks = true;
    /// The durable invalidation path (cache::make_tailer_durable_path in the
    /// real daemon); none: the hot cache is never vouched for.
    cache::DurablePathFactory durable_path;
    /// A connection that has not sent its hello by then is closed.
    std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(2);
    /// Host-wide waiting's inputs (daemon/waiting/): the running-task count's
    /// file and the usable cores (0: detected). Tests give their own.
    std::string loadavg_path = "/proc/loadavg";
    std::uint32_t usable_cores = 0;
    /// false: no host-wide decision (every client may spin, the daemon spins
    /// whenever nothing is in flight), for A/B measurements.
    bool host_waiting = true;
};

struct StartError {
    int exit_code = 1;  ///< 78 (EX_CONFIG) for configuration problems, 1 otherwise
    std::string message;
};

class Daemon {
public:
    static std::unique_ptr<Daemon> create(DaemonOptions options, StartError& error);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    /// Runs until the daemon has stopped; returns the exit code.
    int run();
    /// One loop iteration (tests).
    void run_once(std::chrono::milliseconds max_wait);
    bool finished() const noexcept { return finished_; }
    int exit_code() const noexcept { return exit_code_; }

    /// What SIGTERM does (a second call exits at once).
    void shutdown(const std::string& why = "shutdown requested");
    /// What SIGHUP does.
    void reload();
    /// Applies a new configuration as a reload would (tests).
    void apply_config(config::Config next);

    StatusSnapshot snapshot();
    std::string execute_admin(const AdminCommand& command);
    EventLoop& loop() noexcept { return loop_; }
    const config::Config& config() const noexcept { return config_; }
    std::size_t client_count() const noexcept { return client_server_ ? client_server_->client_count() : 0; }
    /// Requests of clients that went away whose jobs have not ended on the server yet.
    std::size_t orphaned_requests() const noexcept { return client_server_ ? client_server_->orphaned_requests() : 0; }

private:
    explicit Daemon(DaemonOptions& options);
    bool start(DaemonOptions& options, StartError& error);
    AccessPolicy access_policy() const;
    ClientLimits client_limits() const;
    void on_signal(int signal);
    void publish_all();
    void publish_endpoint(std::size_t index);
    void on_backend_change();
    void tick_heartbeat();
    void tick_status();
    void schedule_status();
    void tick_watchdog(std::chrono::microseconds interval);
    std::string status_line();
    void on_drained();
    void on_drain_timeout();
    void finish();
    void cleanup();

    config::Config config_;
    EventLoop loop_;
    Stats stats_;
    Notifier notifier_;
    std::unique_ptr<SignalSource> signals_;
    std::optional<shm::StateSegment> state_;
    std::unique_ptr<Backends> backends_;
    std::unique_ptr<cache::CacheRuntime> cache_;
    std::unique_ptr<ClientServer> client_server_;
    std::unique_ptr<Dispatcher> dispatcher_;
    std::unique_ptr<WaitCoordinator> waiting_;
    std::unique_ptr<AdminServer> admin_;

    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    unsigned heartbeat_ticks_ = 0;
    bool draining_ = false;
    bool finishing_ = false;
    bool finished_ = false;
    bool cleaned_up_ = false;
    bool tearing_down_ = false;
    int exit_code_ = 0;
    // Last: cancelled before anything their callbacks use is destroyed.
    TimerHandle drain_timer_;
    TimerHandle heartbeat_timer_;
    TimerHandle status_timer_;
    TimerHandle status_soon_;  ///< a STATUS after the client count changed
    TimerHandle watchdog_timer_;
};

}  // namespace regiond::daemon

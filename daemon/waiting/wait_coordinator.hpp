// The daemon's half of host-wide waiting (shm/wait_policy.hpp): samples the
// host (usable cores, running tasks, requests in flight, how the clients say
// they wait), decides who may spin, publishes the facts in the state segment
// and one permit per client in its segment, and tells the loop whether it may
// spin itself.
//
// Decides at most once per millisecond, from the loop's before-block hook, so a
// busy loop pays one decision per millisecond (a census of the clients' words:
// one load each) and an idle loop one per wake-up it has anyway (the 50 ms
// heartbeat): no timer of its own, so idle stays idle. /proc/loadavg is read at
// most every 10 ms. A loop with no request taken since the last decision and
// nothing in flight decides only once a second (the facts stay fresh for
// display, and an idle daemon reads no /proc file 100 times a second).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "daemon/waiting/host_cpu.hpp"
#include "shm/state_layout.hpp"
#include "shm/wait_policy.hpp"

namespace regiond::shm {
class StateSegment;
}

namespace regiond::daemon {

class ClientServer;
class Stats;

class WaitCoordinator {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::microseconds kDecideEvery{1000};
    static constexpr std::chrono::milliseconds kSampleRunnableEvery{10};
    static constexpr std::chrono::seconds kDecideWhenIdleEvery{1};

    /// `in_flight`: requests the daemon has taken and not yet answered.
    /// `usable_cores`: usable_cores(); `loadavg_path`: /proc/loadavg (both
    /// parameters so tests can fix them).
    WaitCoordinator(ClientServer& clients, shm::StateSegment& state, Stats& stats,
                    std::function<std::size_t()> in_flight, std::uint32_t usable_cores,
                    const std::string& loadavg_path = "/proc/loadavg", bool enabled = true);

    /// Decides again if kDecideEvery has passed since the last decision.
    void maybe_decide(Clock::time_point now);
    /// May the loop spin on its request rings now? (The last decision, and
    /// nothing in flight right now.)
    bool daemon_may_spin() const;
    /// Records whether the loop's last spin ran (it counts as a running task).
    void note_daemon_spinning(bool spinning) noexcept { daemon_spinning_ = spinning; }

    const shm::WaitFacts& facts() const noexcept { return facts_; }

private:
    void decide(Clock::time_point now);

    ClientServer& clients_;
    shm::StateSegment& state_;
    Stats& stats_;
    std::function<std::size_t()> in_flight_;
    std::uint32_t usable_cores_;
    bool enabled_;  ///< false: the A/B baseline (every client may spin; see DaemonOptions::host_waiting)
    RunnableSampler runnable_;
    std::optional<std::uint32_t> last_runnable_;
    Clock::time_point decided_{};
    std::uint64_t requests_at_decision_ = 0;
    Clock::time_point sampled_{};
    std::uint32_t in_flight_milli_ = 0;
    bool daemon_spinning_ = false;
    shm::WaitDecision decision_{};
    shm::WaitFacts facts_{};
};

}  // namespace regiond::daemon

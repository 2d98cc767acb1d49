#include "daemon/waiting/wait_coordinator.hpp"

#include "daemon/client_server.hpp"
#include "daemon/stats.hpp"
#include "shm/expected_wait_spinner.hpp"
#include "shm/state_segment.hpp"

namespace regiond::daemon {

namespace {

/// The longest spin a permit allows: the clients' own ceiling
/// (ExpectedWaitSpinner), past which an answer is better waited for asleep.
constexpr auto kPermitNs =
    static_cast<std::uint32_t>(std::chrono::nanoseconds(shm::ExpectedWaitSpinner::kDefaultMax).count());

}  // namespace

WaitCoordinator::WaitCoordinator(ClientServer& clients, shm::StateSegment& state, Stats& stats,
                                 std::function<std::size_t()> in_flight, std::uint32_t usable_cores,
                                 const std::string& loadavg_path, bool enabled)
    : clients_(clients),
      state_(state),
      stats_(stats),
      in_flight_(std::move(in_flight)),
      usable_cores_(usable_cores == 0 ? 1 : usable_cores),
      enabled_(enabled),
      runnable_(loadavg_path.c_str()) {}

void WaitCoordinator::maybe_decide(Clock::time_point now) {
    if (decided_ != Clock::time_point{}) {
        const auto since = now - decided_;
        if (since < kDecideEvery) return;
        const bool active = clients_.requests_taken() != requests_at_decision_ || in_flight_() != 0;
        if (!active && since < kDecideWhenIdleEvery) return;
    }
    requests_at_decision_ = clients_.requests_taken();
    decide(now);
}

bool WaitCoordinator::daemon_may_spin() const {
    // The decision may be up to a millisecond old; what is in flight now is
    // known exactly, and spinning beside a working backend is what must not be.
    return decision_.daemon_may_spin && in_flight_() == 0;
}

void WaitCoordinator::decide(Clock::time_point now) {
    decided_ = now;
    if (sampled_ == Clock::time_point{} || now - sampled_ >= kSampleRunnableEvery) {
        sampled_ = now;
        last_runnable_ = runnable_.sample();
    }
    const std::size_t in_flight = in_flight_();
    in_flight_milli_ = shm::smooth_in_flight(in_flight_milli_, static_cast<std::uint32_t>(in_flight));
    const ClientServer::WaitCensus census = clients_.wait_census();

    shm::HostLoad load;
    load.usable_cores = usable_cores_;
    // Without a sample (no /proc), only what the daemon itself knows counts.
    load.runnable = last_runnable_.value_or(0);
    load.in_flight_milli = in_flight_milli_;
    load.clients_spinning = census.spinning;
    load.daemon_spinning = daemon_spinning_;
    decision_ = shm::decide_waiting(load, in_flight != 0);
    if (!enabled_) {
        decision_.daemon_may_spin = true;  // still only while nothing is in flight (daemon_may_spin())
        decision_.client_permits = static_cast<std::uint32_t>(-1);
    }
    clients_.grant_spin_permits(decision_.client_permits, kPermitNs, now);

    facts_.usable_cores = usable_cores_;
    facts_.busy_cores = decision_.busy_cores;
    facts_.spare_cores = decision_.spare_cores;
    facts_.runnable = load.runnable;
    facts_.in_flight_milli = in_flight_milli_;
    facts_.clients_spinning = census.spinning;
    facts_.clients_sleeping = census.sleeping;
    facts_.client_permits = decision_.client_permits;
    facts_.daemon_may_spin = decision_.daemon_may_spin;
    state_.publish_wait_facts(facts_);
    stats_.add(shm::Counter::wait_decisions);
}

}  // namespace regiond::daemon

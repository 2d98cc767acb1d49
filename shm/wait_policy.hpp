// Who may spin and who sleeps, decided for the whole host.
//
// Why: a waiter that spins saves itself a futex sleep and wake-up (~20 us each
// way on this class of machine, shared/ENVIRONMENT.md), but it occupies a core
// while it does. When spinners plus the processes doing the real work (the
// PostgreSQL backends, the daemon) outnumber the cores, the spinners take the
// very cores the answers they wait for need, and every process loses. Each
// spinner alone sees only its own waits, so the decision is made in one place,
// the daemon, from facts about the whole host, and published: the facts in the
// state segment (StateHeader's wait facts), one spin permit per client in that
// client's segment (ClientHeader::spin_permit_ns).
//
// The rule, in cores (all integers, so the decision is stable):
//   busy    = the processes that must run for answers to come: the larger of
//             the database backends working now (requests in flight, smoothed)
//             and the other runnable tasks sampled from /proc/loadavg
//             (runnable minus the spinners we know of and the sampler itself),
//   spare   = usable cores - busy,
//   the daemon may spin for requests only while nothing is in flight (its
//             next work then comes from the rings alone) and a core is spare,
//   client permits = usable cores - max(busy, 1): a client spins only while
//             its own request is in flight, so at least one backend works then.
// The daemon's spin and the clients' spins do not overlap in time: the daemon
// spins only while no request is in flight, a client only while its own is.
// Under overload spare is 0: everyone sleeps, and the system behaves like a
// blocking design (one wake-up per hand-off), never worse.
//
// Pure functions only (unit-tested in tests/unit/shm/wait_policy_test.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

namespace regiond::shm {

/// What the daemon knows about the host when it decides (sampled by
/// daemon/waiting/wait_coordinator.cpp).
struct HostLoad {
    std::uint32_t usable_cores = 1;      ///< affinity and cgroup quota (usable_cores())
    std::uint32_t runnable = 0;          ///< /proc/loadavg's running tasks, sampled (includes the sampler)
    std::uint32_t in_flight_milli = 0;   ///< requests at the database, smoothed, x1000
    std::uint32_t clients_spinning = 0;  ///< clients that say they spin now
    bool daemon_spinning = false;        ///< the daemon was spinning when sampled
};

struct WaitDecision {
    std::uint32_t busy_cores = 0;      ///< cores taken by work that produces answers
    std::uint32_t spare_cores = 0;     ///< usable - busy (0 under overload)
    bool daemon_may_spin = false;      ///< the daemon may spin on its request rings
    std::uint32_t client_permits = 0;  ///< how many clients may spin for their answers
};

constexpr WaitDecision decide_waiting(const HostLoad& load, bool requests_in_flight) noexcept {
    WaitDecision d;
    const std::uint32_t cores = std::max<std::uint32_t>(load.usable_cores, 1);
    // The sampler (the daemon reading /proc/loadavg) is running when it reads,
    // and so are the spinners it already knows of: neither is work that
    // produces answers.
    const std::uint32_t known = load.clients_spinning + (load.daemon_spinning ? 1u : 0u) + 1u;
    const std::uint32_t others = load.runnable > known ? load.runnable - known : 0;
    // Backends busy: round the smoothed count up, so 1.2 busy backends take 2.
    const std::uint32_t database = (load.in_flight_milli + 999) / 1000;
    d.busy_cores = std::max(others, database);
    d.spare_cores = d.busy_cores >= cores ? 0 : cores - d.busy_cores;
    d.daemon_may_spin = !requests_in_flight && d.spare_cores >= 1;
    const std::uint32_t busy_while_waiting = std::max<std::uint32_t>(d.busy_cores, 1);
    d.client_permits = busy_while_waiting >= cores ? 0 : cores - busy_while_waiting;
    return d;
}

/// Exponential moving average with weight 1/8, in thousandths, of the number
/// of requests in flight: smooths the sample taken at each decision so one
/// instant of 2 in flight does not switch every client off.
constexpr std::uint32_t smooth_in_flight(std::uint32_t previous_milli, std::uint32_t in_flight_now) noexcept {
    const std::int64_t target = std::int64_t{std::min<std::uint32_t>(in_flight_now, 1'000'000)} * 1000;
    const std::int64_t prev = previous_milli;
    return static_cast<std::uint32_t>(prev + (target - prev) / 8);
}

/// The 4th field of /proc/loadavg, "running/total": the running count, or
/// nullopt if `text` is not in that format.
constexpr std::optional<std::uint32_t> parse_loadavg_running(std::string_view text) noexcept {
    std::size_t pos = 0;
    for (int field = 0; field < 3; ++field) {
        pos = text.find(' ', pos);
        if (pos == std::string_view::npos) return std::nullopt;
        ++pos;
    }
    std::uint64_t value = 0;
    std::size_t digits = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && digits < 9; ++pos, ++digits)
        value = value * 10 + static_cast<std::uint64_t>(text[pos] - '0');
    if (digits == 0 || pos >= text.size() || text[pos] != '/') return std::nullopt;
    return static_cast<std::uint32_t>(value);
}

/// cgroup v2 cpu.max ("QUOTA PERIOD" or "max PERIOD") as whole cores, rounded
/// up (a quota of 1.5 cores lets two threads run part of the time); nullopt
/// when unlimited or not in that format.
constexpr std::optional<std::uint32_t> parse_cgroup_cpu_max(std::string_view text) noexcept {
    auto number = [](std::string_view s, std::size_t& pos) -> std::optional<std::uint64_t> {
        std::uint64_t v = 0;
        std::size_t digits = 0;
        for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && digits < 18; ++pos, ++digits)
            v = v * 10 + static_cast<std::uint64_t>(s[pos] - '0');
        if (digits == 0) return std::nullopt;
        return v;
    };
    if (text.substr(0, 3) == "max") return std::nullopt;
    std::size_t pos = 0;
    const auto quota = number(text, pos);
    if (!quota || pos >= text.size() || text[pos] != ' ') return std::nullopt;
    ++pos;
    const auto period = number(text, pos);
    if (!period || *period == 0 || *quota == 0) return std::nullopt;
    const std::uint64_t cores = (*quota + *period - 1) / *period;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(cores, 1u << 16));
}

/// How long a client may spin for its answer: its own expectation (twice its
/// recent waits, ExpectedWaitSpinner) capped by the permit the daemon gave it.
/// No permit, or a permit older than the daemon's heartbeat says is alive, is no spin.
constexpr std::uint32_t client_spin_ns(std::uint32_t own_budget_ns, std::uint32_t permit_ns,
                                       bool daemon_alive) noexcept {
    if (!daemon_alive) return 0;
    return std::min(own_budget_ns, permit_ns);
}

}  // namespace regiond::shm

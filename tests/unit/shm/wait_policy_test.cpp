// The host-wide waiting rule (shm/wait_policy.hpp): who may spin, from the
// facts the daemon samples. Pure functions, so every branch is pinned here.
#include "shm/wait_policy.hpp"

#include <catch2/catch.hpp>

using namespace regiond::shm;

namespace {

HostLoad load(std::uint32_t cores, std::uint32_t runnable, double in_flight, std::uint32_t spinning = 0,
              bool daemon_spinning = false) {
    HostLoad l;
    l.usable_cores = cores;
    l.runnable = runnable;
    l.in_flight_milli = static_cast<std::uint32_t>(in_flight * 1000);
    l.clients_spinning = spinning;
    l.daemon_spinning = daemon_spinning;
    return l;
}

}  // namespace

TEST_CASE("one client on two cores: it may spin while its request is at the database", "[wait_policy]") {
    // The sampler (1) and the spinning client (1) run, one backend works.
    const WaitDecision d = decide_waiting(load(2, 3, 0.9, 1), true);
    CHECK(d.busy_cores == 1);
    CHECK(d.spare_cores == 1);
    CHECK(d.client_permits == 1);
    CHECK_FALSE(d.daemon_may_spin);  // a backend works: the daemon sleeps in epoll
}

TEST_CASE("nothing in flight: the daemon may spin on its rings, clients get no permits to spare", "[wait_policy]") {
    const WaitDecision d = decide_waiting(load(2, 1, 0.0), false);
    CHECK(d.busy_cores == 0);
    CHECK(d.spare_cores == 2);
    CHECK(d.daemon_may_spin);
    // A client spins only while its own request is in flight, when one backend works.
    CHECK(d.client_permits == 1);
}

TEST_CASE("two clients' requests keep both cores busy: everyone sleeps", "[wait_policy]") {
    const WaitDecision d = decide_waiting(load(2, 4, 1.6, 1), true);
    CHECK(d.busy_cores == 2);  // 1.6 backends round up
    CHECK(d.spare_cores == 0);
    CHECK(d.client_permits == 0);
    CHECK_FALSE(d.daemon_may_spin);
}

TEST_CASE("overload (64 clients on two cores): no spinning anywhere, as a blocking design", "[wait_policy]") {
    const WaitDecision d = decide_waiting(load(2, 40, 8.0, 0), true);
    CHECK(d.spare_cores == 0);
    CHECK(d.client_permits == 0);
    CHECK_FALSE(d.daemon_may_spin);
    // Even with nothing of ours in flight, other runnable work takes the cores.
    const WaitDecision other = decide_waiting(load(2, 5, 0.0), false);
    CHECK(other.busy_cores == 4);
    CHECK_FALSE(other.daemon_may_spin);
    CHECK(other.client_permits == 0);
}

TEST_CASE("spinners the daemon knows of are not counted as other work", "[wait_policy]") {
    // 8 cores, 3 clients spinning, the daemon spinning, the sampler: 5 runnable, none of it other work.
    const WaitDecision d = decide_waiting(load(8, 5, 1.0, 3, true), true);
    CHECK(d.busy_cores == 1);
    CHECK(d.client_permits == 7);
    // A runnable sample lower than what we know of (it is racy) counts as no other work.
    CHECK(decide_waiting(load(8, 1, 0.0, 3, true), false).busy_cores == 0);
}

TEST_CASE("more cores, more permits; a single core never lets a client spin", "[wait_policy]") {
    CHECK(decide_waiting(load(16, 1, 4.0), true).client_permits == 12);
    CHECK(decide_waiting(load(1, 1, 0.5), true).client_permits == 0);
    CHECK(decide_waiting(load(1, 1, 0.0), false).daemon_may_spin);
    // Zero cores (a bad reading) is taken as one.
    CHECK(decide_waiting(load(0, 0, 0.0), false).spare_cores == 1);
}

TEST_CASE("smoothing of requests in flight: weight 1/8, converges, saturates", "[wait_policy]") {
    CHECK(smooth_in_flight(0, 8) == 1000);
    CHECK(smooth_in_flight(8000, 0) == 7000);
    std::uint32_t v = 0;
    for (int i = 0; i < 200; ++i) v = smooth_in_flight(v, 2);
    CHECK(v >= 1990);
    CHECK(v <= 2000);
    CHECK(smooth_in_flight(0, 0xFFFFFFFFu) == 125'000'000);
}

TEST_CASE("/proc/loadavg's running count", "[wait_policy]") {
    CHECK(parse_loadavg_running("0.15 0.06 0.02 3/123 4567\n") == 3u);
    CHECK(parse_loadavg_running("12.00 9.50 7.25 41/1123 98765") == 41u);
    CHECK_FALSE(parse_loadavg_running(""));
    CHECK_FALSE(parse_loadavg_running("0.15 0.06 0.02"));
    CHECK_FALSE(parse_loadavg_running("0.15 0.06 0.02 x/123 4567"));
    CHECK_FALSE(parse_loadavg_running("0.15 0.06 0.02 3 4567"));
    CHECK_FALSE(parse_loadavg_running("0.15 0.06 0.02 9999999999/1 2"));  // more digits than a count has
}

TEST_CASE("cgroup v2 cpu.max in whole cores", "[wait_policy]") {
    CHECK_FALSE(parse_cgroup_cpu_max("max 100000"));
    CHECK(parse_cgroup_cpu_max("200000 100000") == 2u);
    CHECK(parse_cgroup_cpu_max("150000 100000\n") == 2u);  // 1.5 cores: two threads run part of the time
    CHECK(parse_cgroup_cpu_max("50000 100000") == 1u);
    CHECK_FALSE(parse_cgroup_cpu_max("100000 0"));
    CHECK_FALSE(parse_cgroup_cpu_max("0 100000"));
    CHECK_FALSE(parse_cgroup_cpu_max("garbage"));
    CHECK_FALSE(parse_cgroup_cpu_max("100000"));
}

TEST_CASE("a client's spin: its own budget capped by its permit, none when the daemon is gone", "[wait_policy]") {
    CHECK(client_spin_ns(80'000, 250'000, true) == 80'000);
    CHECK(client_spin_ns(250'000, 0, true) == 0);
    CHECK(client_spin_ns(250'000, 100'000, true) == 100'000);
    CHECK(client_spin_ns(250'000, 250'000, false) == 0);
}

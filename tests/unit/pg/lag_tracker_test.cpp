#include <catch2/catch.hpp>

#include "daemon/pg/lag_tracker.hpp"

using regiond::daemon::pg::LagTracker;
using namespace std::chrono_literals;

namespace {
const LagTracker::Clock::time_point t0 = LagTracker::Clock::time_point{} + 1000s;
}

TEST_CASE("no primary sample yet: no lag and no primary LSN", "[lag]") {
    LagTracker t;
    CHECK_FALSE(t.has_primary());
    CHECK(t.primary_lsn() == 0);
    const auto lag = t.lag_of(0, t0);
    CHECK(lag.bytes == 0);
    CHECK(lag.ms == 0);
}

TEST_CASE("a caught-up replica has zero lag even when the primary idles for long", "[lag]") {
    LagTracker t;
    t.record_primary(t0, 1000);
    // The primary stays at 1000 for an hour (idle): every poll sees the same LSN.
    for (int i = 1; i <= 36000; ++i) t.record_primary(t0 + i * 100ms, 1000);
    const auto lag = t.lag_of(1000, t0 + 3600s);
    CHECK(lag.bytes == 0);
    CHECK(lag.ms == 0);
    // A replica ahead of the last sample (it replayed a write the primary poll
    // has not seen yet) is not behind either.
    CHECK(t.lag_of(1200, t0 + 3600s).ms == 0);
    CHECK(t.lag_of(1200, t0 + 3600s).bytes == 0);
}

TEST_CASE("lag grows with the age of the oldest position not replayed", "[lag]") {
    LagTracker t;
    t.record_primary(t0, 1000);
    t.record_primary(t0 + 100ms, 1500);  // a write happened between t0 and t0+100ms
    t.record_primary(t0 + 200ms, 1500);  // folded: the same position
    t.record_primary(t0 + 300ms, 2000);

    // Replica stuck at 1000: the primary was first seen past it at t0+100ms.
    auto lag = t.lag_of(1000, t0 + 400ms);
    CHECK(lag.bytes == 1000);
    CHECK(lag.ms == 300);
    lag = t.lag_of(1000, t0 + 1400ms);
    CHECK(lag.ms == 1300);  // grows while it stays stuck
    CHECK(lag.bytes == 1000);

    // Replica at 1500: only the write seen at t0+300ms is missing.
    lag = t.lag_of(1500, t0 + 400ms);
    CHECK(lag.bytes == 500);
    CHECK(lag.ms == 100);

    // Between samples (1200): the first sample past it is 1500 at t0+100ms.
    CHECK(t.lag_of(1200, t0 + 400ms).ms == 300);

    // Caught up.
    CHECK(t.lag_of(2000, t0 + 400ms).ms == 0);
    CHECK(t.lag_of(2000, t0 + 400ms).bytes == 0);
    CHECK(t.primary_lsn() == 2000);
}

TEST_CASE("a replica behind every sample is measured from the oldest one", "[lag]") {
    LagTracker t;
    t.record_primary(t0, 5000);
    const auto lag = t.lag_of(100, t0 + 250ms);
    CHECK(lag.bytes == 4900);
    CHECK(lag.ms == 250);
}

TEST_CASE("a primary LSN that goes backwards is folded", "[lag]") {
    LagTracker t;
    t.record_primary(t0, 3000);
    t.record_primary(t0 + 100ms, 2000);
    CHECK(t.primary_lsn() == 3000);
    CHECK(t.lag_of(2000, t0 + 200ms).ms == 200);
}

TEST_CASE("the history is bounded: the oldest samples are dropped", "[lag]") {
    LagTracker t(4);
    for (int i = 0; i < 10; ++i) t.record_primary(t0 + i * 100ms, 1000 + static_cast<std::uint64_t>(i) * 10);
    CHECK(t.primary_lsn() == 1090);
    // Only samples 6..9 (1060..1090, t0+600ms..t0+900ms) remain; a replica at 1000
    // is measured from the oldest kept sample (a lower bound).
    auto lag = t.lag_of(1000, t0 + 1000ms);
    CHECK(lag.bytes == 90);
    CHECK(lag.ms == 400);
    // Positions still in the history are exact.
    lag = t.lag_of(1070, t0 + 1000ms);
    CHECK(lag.ms == 200);
    CHECK(lag.bytes == 20);
}

TEST_CASE("lag is never negative when asked about a time before the sample", "[lag]") {
    LagTracker t;
    t.record_primary(t0 + 1s, 10);
    const auto lag = t.lag_of(0, t0);
    CHECK(lag.ms == 0);
    CHECK(lag.bytes == 10);
}

// ExpectedWaitSpinner: the spin follows the observed waits, stops when answers
// come later than its limit, and comes back when they are quick again.
#include <catch2/catch.hpp>

#include <chrono>

#include "shm/expected_wait_spinner.hpp"

using namespace std::chrono_literals;
using regiond::shm::ExpectedWaitSpinner;

TEST_CASE("a new spinner spins up to its limit", "[spinner]") {
    ExpectedWaitSpinner s(200us);
    CHECK(s.budget() == 200us);
}

TEST_CASE("the budget is twice the average wait, within [min, max]", "[spinner]") {
    ExpectedWaitSpinner s(200us);
    for (int i = 0; i < 100; ++i) s.observe(40us);
    CHECK(s.average() > 39us);
    CHECK(s.average() <= 50us);
    CHECK(s.budget() >= 78us);
    CHECK(s.budget() <= 100us);
    for (int i = 0; i < 200; ++i) s.observe(0us);
    CHECK(s.budget() == ExpectedWaitSpinner::kMin);
}

TEST_CASE("answers slower than the limit stop the spinning; quick ones bring it back", "[spinner]") {
    ExpectedWaitSpinner s(200us);
    for (int i = 0; i < 50; ++i) s.observe(2ms);
    CHECK(s.budget() == 0us);
    int polls = 0;
    CHECK_FALSE(s.spin([&] { return ++polls > 1000; }));
    CHECK(polls == 1);  // looked once, did not spin
    for (int i = 0; i < 50; ++i) s.observe(50us);
    CHECK(s.budget() > 0us);
}

TEST_CASE("one very slow answer does not stop the spinning for long", "[spinner]") {
    ExpectedWaitSpinner s(200us);
    for (int i = 0; i < 100; ++i) s.observe(40us);
    s.observe(10s);  // counted as at most 4 x max
    int quick = 0;
    while (s.budget() == 0us && quick < 100) {
        s.observe(40us);
        ++quick;
    }
    CHECK(quick < 15);
}

TEST_CASE("spin returns as soon as the condition holds, and gives up at its budget", "[spinner]") {
    ExpectedWaitSpinner patient(1s);  // a budget no preemption of this test outlasts
    int polls = 0;
    CHECK(patient.spin([&] { return ++polls == 1; }));
    CHECK(polls == 1);  // held at once: no pause, no clock
    polls = 0;
    CHECK(patient.spin([&] { return ++polls == 100; }));
    CHECK(polls == 100);  // became true during the spin: stopped right there
    ExpectedWaitSpinner s(200us);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(s.spin([] { return false; }));
    CHECK(std::chrono::steady_clock::now() - t0 >= s.budget());
}

// The daemon's EventLoop: RAII timer and watch handles, scoped deferred calls,
// and post() from another thread.
#include <catch2/catch.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "daemon/event_loop.hpp"

using namespace std::chrono_literals;
using regiond::daemon::EventLoop;
using regiond::daemon::LoopScope;
using regiond::daemon::TimerHandle;
using regiond::daemon::Watch;

namespace {

// Runs the loop until `done` or 2 s pass (a deadline, not a sleep).
template <class Done>
bool run_until(EventLoop& loop, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        loop.run_once(10ms);
    }
    return true;
}

}  // namespace

TEST_CASE("a timer handle fires once and reports it is no longer pending") {
    EventLoop loop;
    int fired = 0;
    TimerHandle t = loop.timer(1ms, [&] { ++fired; });
    CHECK(t.pending());
    REQUIRE(run_until(loop, [&] { return fired == 1; }));
    CHECK_FALSE(t.pending());
    loop.run_once(5ms);
    CHECK(fired == 1);
}

TEST_CASE("a destroyed or moved-over timer handle never fires") {
    EventLoop loop;
    int fired = 0;
    {
        TimerHandle t = loop.timer(0ms, [&] { fired += 1; });
    }
    TimerHandle kept = loop.timer(0ms, [&] { fired += 10; });
    kept = loop.timer(0ms, [&] { fired += 100; });  // the first one is cancelled
    REQUIRE(run_until(loop, [&] { return fired != 0; }));
    loop.run_once(5ms);
    CHECK(fired == 100);
}

TEST_CASE("a watch delivers events until it is reset, and reset leaves a newer registration alone") {
    EventLoop loop;
    const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(efd >= 0);
    int seen = 0;
    std::optional<Watch> w(loop.watch(efd, EPOLLIN, [&](std::uint32_t) {
        std::uint64_t v;
        [[maybe_unused]] auto n = ::read(efd, &v, sizeof v);
        ++seen;
    }));
    const std::uint64_t one = 1;
    REQUIRE(::write(efd, &one, sizeof one) == sizeof one);
    REQUIRE(run_until(loop, [&] { return seen == 1; }));

    // Someone removes the fd and registers it again: the old handle must not
    // remove the new registration when it dies.
    loop.remove(efd);
    int seen_new = 0;
    loop.add(efd, EPOLLIN, [&](std::uint32_t) {
        std::uint64_t v;
        [[maybe_unused]] auto n = ::read(efd, &v, sizeof v);
        ++seen_new;
    });
    w.reset();
    CHECK(loop.watching(efd));
    REQUIRE(::write(efd, &one, sizeof one) == sizeof one);
    REQUIRE(run_until(loop, [&] { return seen_new == 1; }));
    CHECK(seen == 1);
    loop.remove(efd);
    ::close(efd);
}

TEST_CASE("a scope's deferred call is dropped when the scope dies first") {
    EventLoop loop;
    int ran = 0;
    {
        LoopScope scope(loop);
        scope.defer([&] { ran += 1; });
    }
    LoopScope alive(loop);
    alive.defer([&] { ran += 10; });
    loop.run_once(0ms);
    CHECK(ran == 10);
}

TEST_CASE("post() from another thread wakes a blocked loop and runs on the loop thread") {
    EventLoop loop;
    const auto loop_thread = std::this_thread::get_id();
    std::atomic<bool> ran_on_loop{false};
    std::atomic<int> runs{0};
    std::thread other([&] {
        loop.post([&] {
            ran_on_loop = std::this_thread::get_id() == loop_thread;
            ++runs;
        });
    });
    // One long wait: only the post can end it early.
    const auto before = std::chrono::steady_clock::now();
    REQUIRE(run_until(loop, [&] { return runs.load() == 1; }));
    other.join();
    CHECK(ran_on_loop.load());
    CHECK(std::chrono::steady_clock::now() - before < 2s);
}

// Helpers for unit tests that drive a daemon EventLoop by hand.
#pragma once

#include <chrono>
#include <functional>
#include <string_view>

#include "daemon/event_loop.hpp"
#include "daemon/log.hpp"

namespace regiond::daemon::test {

/// Runs the loop until `done()` or `timeout` (false then): a condition polled
/// with a deadline, never a fixed sleep.
inline bool run_until(EventLoop& loop, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        loop.run_once(std::chrono::milliseconds(5));
    }
    return true;
}

/// Silences the daemon's log for the test's scope.
struct QuietLog {
    QuietLog() {
        log::set_sink([](log::Level, std::string_view) {});
    }
    ~QuietLog() { log::set_sink({}); }
};

}  // namespace regiond::daemon::test

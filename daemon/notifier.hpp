// The systemd service protocol (sd_notify): READY=1 once the listeners and the
// state segment are up, STATUS=... lines, WATCHDOG=1 from a loop timer (so the
// pings stop when the loop wedges), RELOADING=1 around SIGHUP, STOPPING=1 at
// SIGTERM. Every call is a no-op when NOTIFY_SOCKET is not set (not under
// systemd, or a test that does not listen).
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace regiond::daemon {

class Notifier {
public:
    void ready();
    void reloading();
    void stopping();
    /// Sends STATUS=text when it differs from the last one sent.
    void status(const std::string& text);
    void watchdog();
    /// WatchdogSec as systemd passed it (WATCHDOG_USEC for this pid), if enabled.
    static std::optional<std::chrono::microseconds> watchdog_interval();

private:
    std::string last_status_;
};

}  // namespace regiond::daemon

// The systemd service protocol (sd_notify): READY=1 once the listeners and the
// state segment are up, STATUS=... lines, WATCHDOG=1 from a loop timer (so the
// pings stop when the loop wedges), RELOADING=1 around SIGHUP, STOPPING=1 at
// SIGTERM. Every call is a no-op when NOTIFY_SOCKET is not set (not under
// systemd, or a test that does not listen).
//
// STATUS and WATCHDOG are sent without blocking: a datagram socket whose reader
// is behind (its queue holds net.unix.max_dgram_qlen messages) would otherwise
// stop the whole loop in sendmsg; such a message is dropped (the next one
// replaces it). READY, RELOADING and STOPPING go through sd_notify, which may
// wait: they are rare and must arrive.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "shm/unique_fd.hpp"

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
    /// Sends without waiting; false when it could not be sent now.
    bool send_now(const std::string& message);

    std::string last_status_;
    shm::UniqueFd socket_;  ///< non-blocking datagram socket for send_now, made on first use
};

}  // namespace regiond::daemon

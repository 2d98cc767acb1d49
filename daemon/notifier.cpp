#include "daemon/notifier.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>

namespace regiond::daemon {

void Notifier::ready() {
    sd_notify(0, "READY=1");
}

void Notifier::reloading() {
    // systemd >= 253 (Type=notify-reload) wants MONOTONIC_USEC with RELOADING=1;
    // older versions ignore the field.
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t usec =
        static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    const std::string message = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
    sd_notify(0, message.c_str());
}

void Notifier::stopping() {
    sd_notify(0, "STOPPING=1");
}

void Notifier::status(const std::string& text) {
    if (text == last_status_) return;
    last_status_ = text;
    const std::string message = "STATUS=" + text;
    sd_notify(0, message.c_str());
}

void Notifier::watchdog() {
    sd_notify(0, "WATCHDOG=1");
}

std::optional<std::chrono::microseconds> Notifier::watchdog_interval() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) return std::chrono::microseconds(usec);
    return std::nullopt;
}

}  // namespace regiond::daemon

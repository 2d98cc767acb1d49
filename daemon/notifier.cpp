#include "daemon/notifier.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

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

bool Notifier::send_now(const std::string& message) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || path[0] == '\0') return true;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::size_t length = std::strlen(path);
    if (length >= sizeof address.sun_path) return false;
    std::memcpy(address.sun_path, path, length);
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';  // abstract namespace, as sd_notify reads it
    const auto address_length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
    if (!socket_) socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket_) return false;
    return ::sendto(socket_.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                    reinterpret_cast<const sockaddr*>(&address), address_length) >= 0;
}

void Notifier::status(const std::string& text) {
    if (text == last_status_) return;
    // Not sent (the reader is behind): remembered as unsent, so the next call
    // tries again even with the same text.
    last_status_ = send_now("STATUS=" + text) ? text : std::string();
}

void Notifier::watchdog() {
    (void)send_now("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> Notifier::watchdog_interval() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) return std::chrono::microseconds(usec);
    return std::nullopt;
}

}  // namespace regiond::daemon

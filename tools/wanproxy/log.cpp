#include "log.hpp"

#include <cstdio>
#include <ctime>
#include <string>

namespace wanproxy {

void log_line(std::string_view message) {
    // Wall-clock milliseconds let a reader line these logs up with the logs of
    // the servers behind the proxy.
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    tm local{};
    ::localtime_r(&now.tv_sec, &local);
    char stamp[32];
    const std::size_t len = std::strftime(stamp, sizeof stamp, "%H:%M:%S", &local);
    std::string line(stamp, len);
    char millis[24];
    std::snprintf(millis, sizeof millis, ".%03ld", now.tv_nsec / 1'000'000);
    line += millis;
    line += " rgd-wanproxy: ";
    line += message;
    line += '\n';
    // One fwrite per line so concurrent writers to the same file do not
    // interleave inside a line.
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace wanproxy

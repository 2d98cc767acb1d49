#include "shm/base/size_text.hpp"

#include <utility>

namespace regiond::base {
namespace {

// value / unit with up to two decimals, rounded, trailing zeros dropped. The
// remainder is scaled alone, so no intermediate can overflow.
std::string two_decimals(std::uint64_t value, std::uint64_t unit) {
    std::uint64_t whole = value / unit;
    std::uint64_t hundredths = ((value % unit) * 100 + unit / 2) / unit;
    if (hundredths == 100) {
        ++whole;
        hundredths = 0;
    }
    std::string text = std::to_string(whole);
    if (hundredths != 0) {
        text += '.';
        text += static_cast<char>('0' + hundredths / 10);
        if (hundredths % 10 != 0) text += static_cast<char>('0' + hundredths % 10);
    }
    return text;
}

// The two sizes as they will be printed; exact byte counts when the rounded
// texts would be equal ("request of 256 KiB exceeds ... (256 KiB)").
std::pair<std::string, std::string> distinct_sizes(std::uint64_t a, std::uint64_t b) {
    std::string first = format_size(a);
    std::string second = format_size(b);
    if (first == second && a != b) {
        first = std::to_string(a) + " bytes";
        second = std::to_string(b) + " bytes";
    }
    return {std::move(first), std::move(second)};
}

}  // namespace

std::string format_size(std::uint64_t bytes) {
    constexpr std::uint64_t KiB = 1024;
    constexpr std::uint64_t MiB = 1024 * KiB;
    constexpr std::uint64_t GiB = 1024 * MiB;
    if (bytes >= GiB) return two_decimals(bytes, GiB) + " GiB";
    if (bytes >= MiB) return two_decimals(bytes, MiB) + " MiB";
    if (bytes >= KiB) return two_decimals(bytes, KiB) + " KiB";
    return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

std::string request_exceeds_max_request(std::uint64_t request_bytes, std::uint64_t max_request) {
    const auto [request, limit] = distinct_sizes(request_bytes, max_request);
    return "request of " + request + " exceeds max_request (" + limit + ")";
}

std::string request_exceeds_ring(std::uint64_t request_bytes, std::uint64_t record_limit) {
    const auto [request, limit] = distinct_sizes(request_bytes, record_limit);
    return "request of " + request + " exceeds max_request (the request ring carries at most " + limit +
           "; daemon.ring_size / 2 - 16 bytes)";
}

}  // namespace regiond::base

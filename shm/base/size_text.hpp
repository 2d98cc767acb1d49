// Sizes in messages for people, and the one wording of "this request is too
// large" (API.md: "request of 9 MiB exceeds max_request (8 MiB)"), shared by the
// daemon, which answers it, and libregiond, which refuses a request that cannot
// fit its request ring before sending it.
#pragma once

#include <cstdint>
#include <string>

namespace regiond::base {

/// "9 MiB", "8.5 MiB", "511.98 KiB", "100 bytes": binary units, at most two
/// decimals (rounded), trailing zeros dropped. Not meant to be parsed back (the
/// configuration's own spelling is config::format_size).
std::string format_size(std::uint64_t bytes);

/// The daemon's answer to a request larger than daemon.max_request (the limit in
/// effect: at most one record of the request ring). Exact byte counts are given
/// when both sizes would print the same.
std::string request_exceeds_max_request(std::uint64_t request_bytes, std::uint64_t max_request);

/// libregiond's local refusal of a request that one record of its request ring
/// cannot carry (`record_limit`, ring_size / 2 - 16 bytes). The daemon's
/// max_request is never larger (regiond --check-config refuses it), so it is
/// exceeded too; the limit named is the one the client knows for certain.
std::string request_exceeds_ring(std::uint64_t request_bytes, std::uint64_t record_limit);

}  // namespace regiond::base

// A cached value as an answer: the response it holds, with the head a cache
// answer carries (served_by "cache:local" or "cache:redis", the token of the
// value's LSN, the route reason). Used by libregiond for a hit in the segment
// and by the daemon for a hit in Redis, so both answer the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "shm/codec.hpp"

namespace regiond::shm {

/// nullopt when `blob` is not a valid value (shm/cache_value.hpp) or its
/// response does not decode.
std::optional<Response> response_from_cache_value(std::span<const std::byte> blob, std::string_view served_by,
                                                  std::string_view route_reason);

}  // namespace regiond::shm

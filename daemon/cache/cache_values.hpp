// Between the cache's value blobs (shm/cache_value.hpp: the rows as the
// response ring carries them, prefixed with the LSNs they were read at) and the
// answers the daemon sends: one encoding, so storing and serving a value is a
// decode and an encode of the head, never a conversion of the rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace regiond::daemon::cache {

/// What a value records besides its rows.
struct ValueFacts {
    std::uint64_t floor_lsn = 0;  ///< a lower bound of the read's snapshot (fences)
    std::uint64_t token_lsn = 0;  ///< the answer's token LSN
    std::uint64_t system_id = 0;
    std::uint64_t expires_unix_ms = 0;
    std::span<const std::byte> query;  ///< shm::encode_cache_query of the read
};

/// The value blob of a successful answer (its chunks as the endpoint produced
/// them, not streamed), or nullopt when it is an error, carries no rows
/// result, or does not fit in `max_value_bytes`.
std::optional<std::vector<std::byte>> value_from_answer(const std::vector<std::vector<std::byte>>& chunks,
                                                        const ValueFacts& facts, std::size_t max_value_bytes);

/// The answer chunks for a stored value: its rows, with `served_by`, the token
/// of its LSN and `route_reason` in the head. nullopt when the blob does not
/// parse (a value from Redis is not trusted).
std::optional<std::vector<std::vector<std::byte>>> answer_from_value(std::span<const std::byte> blob,
                                                                     std::string_view served_by,
                                                                     std::string_view route_reason,
                                                                     std::size_t max_chunk_bytes);

}  // namespace regiond::daemon::cache

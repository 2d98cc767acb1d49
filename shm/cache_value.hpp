// The cache value: one blob format, stored in the hot cache (state segment) and
// in the region's Redis. Little-endian, fixed width:
//
//   char magic[4] "RGDV" | u16 version (1) | u16 flags (0)
//   u64 floor_lsn | u64 token_lsn | u64 system_id | u64 expires_unix_ms
//   u32 query_len    | query bytes       (encode_cache_query's output)
//   u32 response_len | response bytes    (one encoded response chunk)
//
// * floor_lsn: a LOWER bound of the snapshot the rows were read at. Invalidation
//   fences compare against it: a value whose floor is below the fence of its key
//   may predate the write that invalidated it.
// * token_lsn: the LSN of the token the original answer carried (an upper bound
//   of what the read saw); system_id: the cluster, for the token's text.
// * expires_unix_ms: wall-clock expiry, for Redis and for display. The hot cache
//   keeps its own expiry per entry in CLOCK_MONOTONIC (one host, one clock).
// * query: `u32 sql_len | sql | u32 nparams | nparams x (u32 len | bytes, or
//   0xFFFFFFFF for NULL)`. A hit requires the key AND these bytes to match byte
//   for byte: a client can never make another's cached_read of the same key with
//   other SQL or parameters answer with rows of a query it did not send.
// * response: exactly one chunk of shm/codec.hpp's response encoding, flagged
//   LAST, without a trailer, whose head has status ok and an empty error,
//   sqlstate, served_by, token and route_reason (whoever serves the value fills
//   in the last three). Decoding it with ResponseDecoder gives the rows.
//
// Parsing never trusts the input (it comes from Redis, or from shared memory the
// reader copied): every length is checked against the bytes that remain, every
// count against the bytes that remain divided by its element's minimum size, and
// the response chunk is walked to its end (no allocation), so a value that
// parse_cache_value accepts is one ResponseDecoder decodes to a complete result
// (up to the decoder's total-size limit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace regiond::shm {

inline constexpr char kCacheValueMagic[4] = {'R', 'G', 'D', 'V'};
inline constexpr std::uint16_t kCacheValueVersion = 1;
/// magic, version, flags and the four u64 fields.
inline constexpr std::size_t kCacheValueFixedBytes = 40;
/// The fixed part plus both length fields (an empty query and response would not
/// parse, but no valid value is shorter).
inline constexpr std::size_t kCacheValueMinBytes = kCacheValueFixedBytes + 8;
/// Same limit as the response decoder's default: more columns is a malformed value.
inline constexpr std::uint32_t kCacheValueMaxColumns = 4096;

/// A value whose query and response point into caller memory (the encoder's
/// input, or the parser's input: keep that buffer alive while using the view).
struct CacheValueView {
    std::uint64_t floor_lsn = 0;
    std::uint64_t token_lsn = 0;
    std::uint64_t system_id = 0;
    std::uint64_t expires_unix_ms = 0;
    std::span<const std::byte> query;     ///< encode_cache_query's output
    std::span<const std::byte> response;  ///< one response chunk, as described above
};

/// Encodes a value. Does not check that query and response are well formed
/// (parse_cache_value does); empty if either is 4 GiB or more.
std::vector<std::byte> encode_cache_value(const CacheValueView& value);

/// Parses and validates a value (see the header comment); the view points into
/// `in`. nullopt for anything malformed: wrong magic, version or flags, a length
/// beyond the input, trailing bytes, a malformed query, a response that is not one
/// complete, last, trailer-less, successful chunk with an empty served_by, token
/// and route_reason.
std::optional<CacheValueView> parse_cache_value(std::span<const std::byte> in) noexcept;

/// The query bytes of a value. Empty if the SQL or a parameter is 4 GiB or more,
/// or there are more than kMaxParams parameters (shm/codec.hpp).
std::vector<std::byte> encode_cache_query(std::string_view sql,
                                          std::span<const std::optional<std::string_view>> params);

/// True iff `query` is exactly encode_cache_query(sql, params), compared in place
/// without building the bytes. Safe on any input (false when malformed).
bool cache_query_matches(std::span<const std::byte> query, std::string_view sql,
                         std::span<const std::optional<std::string_view>> params) noexcept;

}  // namespace regiond::shm

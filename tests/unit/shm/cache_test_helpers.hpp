// Helpers shared by the hot-cache tests: building valid cache values.
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shm/cache_value.hpp"
#include "shm/codec.hpp"

namespace regiond::shm::test {

using Row = std::vector<std::optional<std::string_view>>;

/// One response chunk as the cache stores it: status ok, empty served_by, token
/// and route_reason, LAST, no trailer.
inline std::vector<std::byte> cache_response(std::span<const std::string_view> columns, std::span<const Row> rows,
                                             std::int64_t affected = -1) {
    ResponseEncoder enc(std::size_t{256} << 10);  // reserves this much: not more than the tests need
    ResponseHeadView head;
    head.columns = columns;
    head.affected = affected;
    REQUIRE(enc.begin(head) == CodecError::ok);
    for (const Row& row : rows) REQUIRE(enc.add_row(row) == CodecError::ok);
    const std::span<const std::byte> chunk = enc.take_chunk(true);
    return {chunk.begin(), chunk.end()};
}

/// A whole cache value for (sql, params) with the given rows.
inline std::vector<std::byte> cache_value(std::string_view sql, std::span<const std::optional<std::string_view>> params,
                                          std::span<const std::string_view> columns, std::span<const Row> rows,
                                          std::uint64_t floor_lsn = 0x16B3700, std::uint64_t token_lsn = 0x16B3748) {
    const std::vector<std::byte> query = encode_cache_query(sql, params);
    const std::vector<std::byte> response = cache_response(columns, rows);
    CacheValueView v;
    v.floor_lsn = floor_lsn;
    v.token_lsn = token_lsn;
    v.system_id = 7312345678901234567ull;
    v.expires_unix_ms = 1'800'000'000'000ull;
    v.query = query;
    v.response = response;
    return encode_cache_value(v);
}

/// A small value: one row of three columns whose first value is `tag`.
inline std::vector<std::byte> small_value(std::string_view sql, std::string_view tag,
                                          std::span<const std::optional<std::string_view>> params = {}) {
    static const std::string_view columns[] = {"id", "email", "note"};
    const Row rows[] = {{tag, std::string_view("user@example.com"), std::nullopt}};
    return cache_value(sql, params, columns, rows);
}

}  // namespace regiond::shm::test

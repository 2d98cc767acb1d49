// The cache value format: round trips, the query match, and rejection of every
// malformed input (each truncation, each length field forged, each fixed field
// wrong, and a sweep of single-byte mutations).
#include <catch2/catch.hpp>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "cache_test_helpers.hpp"
#include "shm/cache_value.hpp"
#include "shm/codec.hpp"
#include "test_helpers.hpp"

using namespace regiond::shm;
using namespace regiond::shm::test;

namespace {

const std::string_view kSql = "SELECT id, email, note FROM users WHERE id = $1 AND org = $2";

std::vector<std::byte> sample_value() {
    static const std::string_view columns[] = {"id", "email", "note"};
    const Row rows[] = {
        {std::string_view("42"), std::string_view("a@example.com"), std::nullopt},
        {std::string_view("43"), std::string_view(""), std::string_view("vip")},
    };
    const std::optional<std::string_view> params[] = {std::string_view("42"), std::nullopt};
    return cache_value(kSql, params, columns, rows);
}

void put_u32(std::vector<std::byte>& b, std::size_t at, std::uint32_t v) {
    REQUIRE(at + 4 <= b.size());
    std::memcpy(b.data() + at, &v, 4);
}
std::uint32_t get_u32(const std::vector<std::byte>& b, std::size_t at) {
    std::uint32_t v = 0;
    std::memcpy(&v, b.data() + at, 4);
    return v;
}

// Offsets of every u32 length/count field in sample_value(), found by walking
// the documented format (not by calling the parser under test).
std::vector<std::size_t> length_fields(const std::vector<std::byte>& b) {
    std::vector<std::size_t> at;
    std::size_t p = kCacheValueFixedBytes;
    auto field = [&]() {
        at.push_back(p);
        const std::uint32_t v = get_u32(b, p);
        p += 4;
        return v;
    };
    auto sized = [&]() {
        const std::uint32_t len = field();
        if (len != kNullLength) p += len;
    };
    const std::size_t query_len = field();
    const std::size_t query_end = p + query_len;
    sized();                                              // sql
    for (std::uint32_t n = field(); n > 0; --n) sized();  // params
    REQUIRE(p == query_end);
    field();         // response_len
    p += 8 + 1 + 5;  // chunk header, status, sqlstate
    sized();         // error
    sized();         // served_by
    sized();         // token
    p += 8;          // affected
    sized();         // route_reason
    const std::uint32_t ncols = field();
    for (std::uint32_t c = 0; c < ncols; ++c) sized();
    const std::uint32_t nrows = field();
    for (std::uint32_t v = 0; v < nrows * ncols; ++v) sized();
    REQUIRE(p == b.size());
    return at;
}

}  // namespace

TEST_CASE("cache value: round trip, views into the input", "[cache][value]") {
    const std::vector<std::byte> blob = sample_value();
    const auto v = parse_cache_value(blob);
    REQUIRE(v);
    CHECK(v->floor_lsn == 0x16B3700);
    CHECK(v->token_lsn == 0x16B3748);
    CHECK(v->system_id == 7312345678901234567ull);
    CHECK(v->expires_unix_ms == 1'800'000'000'000ull);
    CHECK(v->query.data() >= blob.data());
    CHECK(v->response.data() + v->response.size() == blob.data() + blob.size());

    const std::optional<std::string_view> params[] = {std::string_view("42"), std::nullopt};
    const std::vector<std::byte> query = encode_cache_query(kSql, params);
    CHECK(std::vector<std::byte>(v->query.begin(), v->query.end()) == query);

    // The response is one chunk ResponseDecoder completes.
    ResponseDecoder d;
    REQUIRE(d.feed(v->response) == CodecError::ok);
    REQUIRE(d.complete());
    const Response& r = d.response();
    CHECK(r.status == Status::ok);
    CHECK(r.columns == std::vector<std::string>{"id", "email", "note"});
    REQUIRE(r.nrows() == 2);
    CHECK(r.value(0, 1) == std::optional<std::string_view>("a@example.com"));
    CHECK_FALSE(r.value(0, 2));
    CHECK(r.value(1, 2) == std::optional<std::string_view>("vip"));

    // Encoding the parsed view gives the same bytes back.
    CHECK(encode_cache_value(*v) == blob);
}

TEST_CASE("cache value: no rows, no columns, empty SQL and no params are valid", "[cache][value]") {
    const std::vector<std::byte> blob = cache_value("", {}, {}, {});
    const auto v = parse_cache_value(blob);
    REQUIRE(v);
    CHECK(cache_query_matches(v->query, "", {}));
    CHECK_FALSE(cache_query_matches(v->query, " ", {}));
}

TEST_CASE("cache value: every truncation and every extension is rejected", "[cache][value]") {
    const std::vector<std::byte> blob = sample_value();
    for (std::size_t n = 0; n < blob.size(); ++n) {
        INFO("prefix of " << n << " of " << blob.size() << " bytes");
        CHECK_FALSE(parse_cache_value(std::span(blob.data(), n)));
    }
    std::vector<std::byte> longer = blob;
    longer.push_back(std::byte{0});
    CHECK_FALSE(parse_cache_value(longer));
}

TEST_CASE("cache value: every forged length or count is rejected", "[cache][value]") {
    const std::vector<std::byte> blob = sample_value();
    const std::vector<std::size_t> fields = length_fields(blob);
    REQUIRE(fields.size() > 15);
    for (const std::size_t at : fields) {
        const std::uint32_t real = get_u32(blob, at);
        for (const std::uint32_t forged :
             {real + 1, real - 1, real + 8, 0x7FFFFFFFu, 0xFFFFFFFEu, kNullLength, 0x00010000u}) {
            if (forged == real) continue;
            // A NULL value turned empty, or an empty one turned NULL, is still
            // well formed (where NULL is allowed).
            if ((real == 0 && forged == kNullLength) || (real == kNullLength && forged == 0)) continue;
            std::vector<std::byte> bad = blob;
            put_u32(bad, at, forged);
            INFO("length field at " << at << ": " << real << " -> " << forged);
            CHECK_FALSE(parse_cache_value(bad));
        }
    }
}

TEST_CASE("cache value: fixed fields and the response head are checked", "[cache][value]") {
    const std::vector<std::byte> blob = sample_value();
    REQUIRE(parse_cache_value(blob));
    const std::size_t query_len = get_u32(blob, kCacheValueFixedBytes);
    const std::size_t response = kCacheValueFixedBytes + 4 + query_len + 4;  // the chunk's first byte

    auto rejected_with = [&](std::size_t at, std::uint8_t byte) {
        std::vector<std::byte> bad = blob;
        bad[at] = std::byte{byte};
        return !parse_cache_value(bad);
    };
    CHECK(rejected_with(0, 'X'));             // magic
    CHECK(rejected_with(3, 'W'));             // magic
    CHECK(rejected_with(4, 2));               // version
    CHECK(rejected_with(6, 1));               // flags
    CHECK(rejected_with(response, 0));        // chunk flags: not LAST
    CHECK(rejected_with(response, 3));        // chunk flags: trailer
    CHECK(rejected_with(response + 2, 1));    // reserved
    CHECK(rejected_with(response + 4, 1));    // chunk index 1
    CHECK(rejected_with(response + 8, 1));    // status error
    CHECK(rejected_with(response + 9, '2'));  // a sqlstate
    // error, served_by, token must be empty: their lengths follow the sqlstate.
    CHECK(rejected_with(response + 14, 1));
    CHECK(rejected_with(response + 18, 1));
    CHECK(rejected_with(response + 22, 1));

    // A value that is not what the cache stores: a response with a served_by.
    ResponseEncoder enc(4096);
    ResponseHeadView head;
    head.served_by = "eu-west-1/replica";
    REQUIRE(enc.begin(head) == CodecError::ok);
    const auto chunk = enc.take_chunk(true);
    const std::vector<std::byte> query = encode_cache_query("select 1", {});
    CacheValueView v;
    v.query = query;
    v.response = chunk;
    CHECK_FALSE(parse_cache_value(encode_cache_value(v)));
    // A query that is not encode_cache_query's output.
    const std::byte junk[] = {std::byte{1}, std::byte{2}, std::byte{3}};
    v.query = junk;
    const std::vector<std::byte> fine_response = cache_response({}, {});
    v.response = fine_response;
    CHECK_FALSE(parse_cache_value(encode_cache_value(v)));
}

TEST_CASE("cache value: any single-byte change is rejected or parses to exactly those bytes", "[cache][value]") {
    // Whatever a mutation does, the parser never reads outside the input (ASan
    // watches), and whatever it accepts is self-consistent: encoding the view
    // gives the mutated bytes back, and the response decodes completely.
    const std::vector<std::byte> blob = sample_value();
    std::size_t accepted = 0;
    for (std::size_t at = 0; at < blob.size(); ++at) {
        for (const int delta : {1, -1, 0x80}) {
            std::vector<std::byte> m = blob;
            m[at] = static_cast<std::byte>(static_cast<std::uint8_t>(m[at]) + delta);
            const auto v = parse_cache_value(m);
            if (!v) continue;
            ++accepted;
            INFO("byte " << at << " changed by " << delta);
            CHECK(encode_cache_value(*v) == m);
            ResponseDecoder d;
            CHECK(d.feed(v->response) == CodecError::ok);
            CHECK(d.complete());
        }
    }
    CHECK(accepted > 0);  // data bytes (SQL text, values, LSNs) may change freely
}

TEST_CASE("cache query: matches exactly the SQL and parameters it was built from", "[cache][value]") {
    const std::optional<std::string_view> params[] = {std::string_view("42"), std::nullopt, std::string_view("")};
    const std::vector<std::byte> q = encode_cache_query("SELECT $1, $2, $3", params);
    REQUIRE_FALSE(q.empty());
    CHECK(cache_query_matches(q, "SELECT $1, $2, $3", params));

    CHECK_FALSE(cache_query_matches(q, "SELECT $1, $2, $3 ", params));
    CHECK_FALSE(cache_query_matches(q, "select $1, $2, $3", params));
    const std::optional<std::string_view> other_value[] = {std::string_view("43"), std::nullopt, std::string_view("")};
    CHECK_FALSE(cache_query_matches(q, "SELECT $1, $2, $3", other_value));
    const std::optional<std::string_view> empty_for_null[] = {std::string_view("42"), std::string_view(""),
                                                              std::string_view("")};
    CHECK_FALSE(cache_query_matches(q, "SELECT $1, $2, $3", empty_for_null));
    const std::optional<std::string_view> null_for_empty[] = {std::string_view("42"), std::nullopt, std::nullopt};
    CHECK_FALSE(cache_query_matches(q, "SELECT $1, $2, $3", null_for_empty));
    CHECK_FALSE(cache_query_matches(q, "SELECT $1, $2, $3", std::span(params).first(2)));
    const std::optional<std::string_view> more[] = {std::string_view("42"), std::nullopt, std::string_view(""),
                                                    std::string_view("x")};
    CHECK_FALSE(cache_query_matches(q, "SELECT $1, $2, $3", more));
    // Parameters do not run into the SQL: ("ab", []) vs ("a", ["b"]) differ.
    const std::optional<std::string_view> b[] = {std::string_view("b")};
    CHECK_FALSE(cache_query_matches(encode_cache_query("ab", {}), "a", b));

    // Malformed query bytes never match (and are never read past their end).
    for (std::size_t n = 0; n < q.size(); ++n)
        CHECK_FALSE(cache_query_matches(std::span(q.data(), n), "SELECT $1, $2, $3", params));
    std::vector<std::byte> longer = q;
    longer.push_back(std::byte{0});
    CHECK_FALSE(cache_query_matches(longer, "SELECT $1, $2, $3", params));
}

TEST_CASE("cache query: limits", "[cache][value]") {
    std::vector<std::optional<std::string_view>> params(kMaxParams + 1, std::string_view("x"));
    CHECK(encode_cache_query("x", params).empty());
    params.resize(kMaxParams);
    const std::vector<std::byte> q = encode_cache_query("x", params);
    CHECK(q.size() == 4 + 1 + 4 + std::size_t{kMaxParams} * 5);
    CHECK(cache_query_matches(q, "x", params));
}

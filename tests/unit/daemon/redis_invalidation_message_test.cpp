// The invalidation message (daemon/redis/invalidation_message.hpp): its exact
// text, lossless round trips of keys of any bytes, the strict parser's refusals,
// the bounds, and splitting a large invalidation into messages within them.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daemon/redis/invalidation_message.hpp"

using namespace regiond::daemon;

namespace {

Invalidation sample() {
    Invalidation inv;
    inv.keys = {"user:42", "feed:7"};
    inv.lsn = 0x16B3748;
    inv.system_id = 7312345678901234567ULL;
    inv.origin = "eu-west-1/host-7";
    return inv;
}

std::string all_bytes() {
    std::string s;
    for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
    return s;
}

// A valid message with one field's JSON replaced.
std::string with_field(const std::string& name, const std::string& json_value) {
    std::string m = R"({"type":"invalidate","keys":["k"],"lsn":"0/1","system_id":"1","origin":"o"})";
    const std::string key = "\"" + name + "\":";
    const auto at = m.find(key);
    REQUIRE(at != std::string::npos);
    const auto value_at = at + key.size();
    const auto end = m.find_first_of(",}", m[value_at] == '[' ? m.find(']', value_at) : value_at);
    return m.substr(0, value_at) + json_value + m.substr(end);
}

}  // namespace

TEST_CASE("invalidation message: the text is the documented JSON", "[redis]") {
    CHECK(encode_invalidation(sample()) == R"({"type":"invalidate","keys":["user:42","feed:7"],"lsn":"0/16B3748",)"
                                           R"("system_id":"7312345678901234567","origin":"eu-west-1/host-7"})");
    const auto back = parse_invalidation(encode_invalidation(sample()));
    REQUIRE(back.has_value());
    CHECK(*back == sample());
}

TEST_CASE("invalidation message: keys and origin of any bytes round-trip, written as ASCII", "[redis]") {
    Invalidation inv = sample();
    inv.keys = {all_bytes(), "", std::string(1, '\0'), "\"quoted\\", "caf\xc3\xa9", "\xff\xfe"};
    inv.origin = all_bytes();
    inv.lsn = UINT64_MAX;
    inv.system_id = UINT64_MAX;
    const std::string text = encode_invalidation(inv);
    for (const char c : text) {
        CHECK(static_cast<unsigned char>(c) >= 0x20);
        CHECK(static_cast<unsigned char>(c) < 0x7f);
    }
    CHECK(text.find(R"("caf\u00c3\u00a9")") != std::string::npos);  // bytes, not the character é
    CHECK(text.find(R"("\"quoted\\")") != std::string::npos);
    const auto back = parse_invalidation(text);
    REQUIRE(back.has_value());
    CHECK(*back == inv);
}

TEST_CASE("invalidation message: what the parser accepts from other writers", "[redis]") {
    // White space, another field order, unknown fields (scalar and nested),
    // escapes of every kind, raw UTF-8 for U+0080..U+00FF.
    const std::string text =
        " {\n \"origin\" : \"h\\u00e9\\/x\", \"future\": {\"a\": [1, 2, {\"b\": null}]},"
        " \"keys\" : [ \"a\\tb\", \"\xc3\xa9\", \"\\u0000\" ], \"lsn\":\"16/b374d848\","
        " \"extra\": true, \"system_id\":\"00042\", \"type\":\"invalidate\" } ";
    const auto inv = parse_invalidation(text);
    REQUIRE(inv.has_value());
    CHECK(inv->origin == "h\xe9/x");
    CHECK(inv->keys == std::vector<std::string>{"a\tb", "\xe9", std::string(1, '\0')});
    CHECK(inv->lsn == 0x16B374D848ULL);
    CHECK(inv->system_id == 42);

    Invalidation none = sample();
    none.keys.clear();
    const auto empty = parse_invalidation(encode_invalidation(none));
    REQUIRE(empty.has_value());
    CHECK(empty->keys.empty());
}

TEST_CASE("invalidation message: anything else is refused", "[redis]") {
    const std::string good = R"({"type":"invalidate","keys":["k"],"lsn":"0/1","system_id":"1","origin":"o"})";
    REQUIRE(parse_invalidation(good).has_value());
    const std::vector<std::string> bad = {
        "",
        "null",
        "[]",
        good + "x",
        good + "{}",
        good.substr(0, good.size() - 1),
        with_field("type", R"("flush")"),
        with_field("type", "1"),
        with_field("keys", R"("k")"),
        with_field("keys", R"([1])"),
        with_field("keys", R"([["k"]])"),
        with_field("keys", R"([null])"),
        with_field("keys", "[\"\\u0100\"]"),       // a character no byte stands for
        with_field("keys", "[\"\xe2\x82\xac\"]"),  // the same, raw (€)
        with_field("keys", "[\"\xff\"]"),          // not UTF-8
        with_field("keys", "[\"\xc3\"]"),          // a truncated sequence
        with_field("keys", "[\"\xc1\x81\"]"),      // an overlong one
        with_field("keys", "[\"\\ud800\"]"),       // a lone surrogate
        with_field("keys", "[\"a\nb\"]"),          // a raw control character
        with_field("lsn", R"("0x1/2")"),
        with_field("lsn", R"("1")"),
        with_field("lsn", R"("123456789/0")"),
        with_field("lsn", "1"),
        with_field("system_id", "1"),
        with_field("system_id", R"("")"),
        with_field("system_id", R"("+1")"),
        with_field("system_id", R"("-1")"),
        with_field("system_id", R"("18446744073709551616")"),
        with_field("system_id", R"("1 ")"),
        with_field("origin", "null"),
        with_field("origin", "[\"\\u0101\"]"),
        R"({"keys":["k"],"lsn":"0/1","system_id":"1","origin":"o"})",                                // no type
        R"({"type":"invalidate","lsn":"0/1","system_id":"1","origin":"o"})",                         // no keys
        R"({"type":"invalidate","keys":["k"],"system_id":"1","origin":"o"})",                        // no lsn
        R"({"type":"invalidate","keys":["k"],"lsn":"0/1","origin":"o"})",                            // no system_id
        R"({"type":"invalidate","keys":["k"],"lsn":"0/1","system_id":"1"})",                         // no origin
        R"({"type":"invalidate","keys":["k"],"keys":[],"lsn":"0/1","system_id":"1","origin":"o"})",  // twice
        R"({"type":"invalidate","keys":["k"],"lsn":"0/1","system_id":"1","origin":"o","x":[[[[[[[[1]]]]]]]]})",
        R"({"type":"invalidate","keys":["k"],"lsn":"0/1","system_id":"1","origin":"o",})",
        R"({'type':'invalidate'})",
    };
    for (const std::string& b : bad) {
        INFO(b);
        CHECK_FALSE(parse_invalidation(b).has_value());
    }
}

TEST_CASE("invalidation message: the bounds", "[redis]") {
    Invalidation inv = sample();
    inv.keys.assign(kMaxInvalidationKeys, "k");
    const std::string most = encode_invalidation(inv);
    REQUIRE(most.size() <= kMaxInvalidationBytes);
    CHECK(parse_invalidation(most).has_value());
    inv.keys.emplace_back("k");
    CHECK_FALSE(parse_invalidation(encode_invalidation(inv)).has_value());  // 65536 keys

    inv.keys = {std::string(kMaxInvalidationBytes, 'x')};
    CHECK_FALSE(parse_invalidation(encode_invalidation(inv)).has_value());  // over 1 MiB
    const std::string frame = encode_invalidation({{""}, inv.lsn, inv.system_id, inv.origin});
    inv.keys = {std::string(kMaxInvalidationBytes - frame.size(), 'x')};
    const std::string exact = encode_invalidation(inv);
    CHECK(exact.size() == kMaxInvalidationBytes);
    CHECK(parse_invalidation(exact).has_value());
}

TEST_CASE("invalidation message: a large invalidation is split into messages within the bounds", "[redis]") {
    auto check_split = [](const Invalidation& inv, std::size_t expected_messages) {
        const auto messages = encode_invalidation_messages(inv);
        REQUIRE(messages.has_value());
        CHECK(messages->size() == expected_messages);
        std::vector<std::string> keys;
        for (const std::string& m : *messages) {
            CHECK(m.size() <= kMaxInvalidationBytes);
            const auto parsed = parse_invalidation(m);
            REQUIRE(parsed.has_value());
            CHECK(parsed->lsn == inv.lsn);
            CHECK(parsed->system_id == inv.system_id);
            CHECK(parsed->origin == inv.origin);
            keys.insert(keys.end(), parsed->keys.begin(), parsed->keys.end());
        }
        CHECK(keys == inv.keys);
    };
    Invalidation inv = sample();
    check_split(inv, 1);
    CHECK(encode_invalidation_messages(inv)->front() == encode_invalidation(inv));
    inv.keys.clear();
    check_split(inv, 1);

    inv.keys.clear();  // by count: 65535 + 65535 + 10
    for (std::size_t i = 0; i < 2 * kMaxInvalidationKeys + 10; ++i) inv.keys.push_back(std::to_string(i % 7));
    check_split(inv, 3);

    inv.keys.assign(5, std::string(100 * 1024, '\xff'));  // by size: 600 KiB escaped each
    check_split(inv, 5);

    inv.keys = {"small", std::string(200 * 1024, '\x01'), "small"};  // 1.2 MiB escaped: cannot travel
    CHECK_FALSE(encode_invalidation_messages(inv).has_value());
}

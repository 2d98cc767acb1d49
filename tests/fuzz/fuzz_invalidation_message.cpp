// The invalidation message (daemon/redis/invalidation_message.cpp) two ways:
//  - the input as a message from Redis: parsing never crashes; a message that
//    parses is within the bounds and its own encoding parses back to it;
//  - the input as keys (any bytes, split at a separator byte taken from the
//    input): encoded and parsed back they are the same bytes, in one message or
//    split into several within the bounds.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/redis/invalidation_message.hpp"
#include "fuzz_check.hpp"

using namespace regiond::daemon;

namespace {

void as_message(std::string_view text) {
    const auto inv = parse_invalidation(text);
    if (!inv) return;
    FUZZ_CHECK(text.size() <= kMaxInvalidationBytes);
    FUZZ_CHECK(inv->keys.size() <= kMaxInvalidationKeys);
    const std::string again = encode_invalidation(*inv);
    if (again.size() > kMaxInvalidationBytes) return;  // raw UTF-8 in, six-byte escapes out
    const auto back = parse_invalidation(again);
    FUZZ_CHECK(back.has_value());
    FUZZ_CHECK(*back == *inv);
}

void as_keys(std::string_view bytes) {
    if (bytes.size() < 3) return;
    Invalidation inv;
    const char separator = bytes[0];
    const std::size_t origin_size = static_cast<unsigned char>(bytes[1]) % 16;
    bytes.remove_prefix(2);
    inv.origin = std::string(bytes.substr(0, origin_size));
    bytes.remove_prefix(std::min(origin_size, bytes.size()));
    for (const char c : inv.origin) inv.lsn = inv.lsn * 131 + static_cast<unsigned char>(c);
    inv.system_id = ~inv.lsn;
    std::size_t from = 0;
    for (std::size_t i = 0; i <= bytes.size(); ++i)
        if (i == bytes.size() || bytes[i] == separator) {
            inv.keys.emplace_back(bytes.substr(from, i - from));
            from = i + 1;
        }
    const auto back = parse_invalidation(encode_invalidation(inv));
    FUZZ_CHECK(back.has_value());  // libFuzzer inputs are far below the bounds
    FUZZ_CHECK(*back == inv);
    const auto messages = encode_invalidation_messages(inv);
    FUZZ_CHECK(messages.has_value() && !messages->empty());
    std::size_t next = 0;
    for (const std::string& m : *messages) {
        FUZZ_CHECK(m.size() <= kMaxInvalidationBytes);
        const auto part = parse_invalidation(m);
        FUZZ_CHECK(part.has_value());
        FUZZ_CHECK(part->origin == inv.origin && part->lsn == inv.lsn && part->system_id == inv.system_id);
        for (const std::string& k : part->keys) {
            FUZZ_CHECK(next < inv.keys.size() && k == inv.keys[next]);
            ++next;
        }
    }
    FUZZ_CHECK(next == inv.keys.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    as_message(input);
    as_keys(input);
    return 0;
}

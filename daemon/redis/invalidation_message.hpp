// The message a write's invalidation travels in on the fast path: published on
// the channel "replication:events" of every region's Redis, read by each
// daemon's RedisSubscriber (plan: ISSUE9.md "Invalidation message").
//
//   {"type":"invalidate","keys":["k1","k2"],"lsn":"0/16B3748",
//    "system_id":"7312345678901234567","origin":"eu-west-1/host-7"}
//
// Keys are arbitrary bytes, JSON is text. Every string of the message (keys and
// origin) is the sequence of its BYTES, each byte one character U+0000..U+00FF
// (Latin-1): printable ASCII is written as itself (but '"' and '\' escaped),
// every other byte (controls, DEL, 0x80..0xFF) as \u00XX. So any key a client
// can send round-trips exactly, and a message is plain ASCII. A reader decodes
// every character back to one byte; a character above U+00FF (possible only in
// a message written by someone else) makes the whole message invalid. A
// UTF-8 key "é" (C3 A9) is therefore written "\u00c3\u00a9", not "é".
//
// lsn is PostgreSQL's text form (shm/base/lsn.hpp); system_id is decimal text
// (64-bit values do not survive JSON numbers in many readers).
//
// Bounds, checked by the parser before it reads anything: at most
// kMaxInvalidationBytes of JSON and kMaxInvalidationKeys keys. The parser is
// strict (daemon/pg/json_reader.hpp: RFC 8259, bounded depth); a duplicated
// field, a missing one, a wrong type or "type" other than "invalidate" is
// nullopt. Unknown fields are skipped (a later version may add some).
//
// Pure functions: no state, usable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::daemon {

/// The pub/sub channel (plan: a constant for now).
inline constexpr std::string_view kInvalidationChannel = "replication:events";
inline constexpr std::size_t kMaxInvalidationKeys = 65535;
inline constexpr std::size_t kMaxInvalidationBytes = 1024 * 1024;

struct Invalidation {
    std::vector<std::string> keys;  // any bytes
    std::uint64_t lsn = 0;          // the write's commit LSN (the fence)
    std::uint64_t system_id = 0;    // the primary's system identifier
    std::string origin;             // "<region>/<host id>", any bytes

    bool operator==(const Invalidation&) const = default;
};

/// The JSON text of one message, whatever its size (see
/// encode_invalidation_messages for messages within the bounds).
std::string encode_invalidation(const Invalidation& invalidation);

/// `invalidation` as one or more messages, each within the bounds (at most
/// kMaxInvalidationKeys keys and kMaxInvalidationBytes bytes), the keys in
/// order, split where needed; the other fields are repeated in each. nullopt
/// when one key alone cannot fit in a message (a key of more than about 170 KiB
/// of non-ASCII bytes): such a key can only be invalidated by the durable path.
std::optional<std::vector<std::string>> encode_invalidation_messages(const Invalidation& invalidation);

/// The message, or nullopt when it is not a valid one (see the header comment).
std::optional<Invalidation> parse_invalidation(std::string_view json);

}  // namespace regiond::daemon

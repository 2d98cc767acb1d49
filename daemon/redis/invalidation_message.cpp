#include "daemon/redis/invalidation_message.hpp"

#include "daemon/pg/json_reader.hpp"
#include "shm/base/lsn.hpp"

namespace regiond::daemon {
namespace {

using pg::JsonReader;

constexpr char kHex[] = "0123456789abcdef";

// Unknown fields may hold nested values; anything deeper than this is refused.
constexpr std::size_t kMaxDepth = 8;

bool printable(unsigned char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

// The bytes `s` as the body of a JSON string: one character per byte (the
// header comment says why).
void append_escaped(std::string& out, std::string_view s) {
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (printable(c)) {
            out.push_back(ch);
        } else if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(ch);
        } else {
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xf]);
        }
    }
}

std::size_t escaped_size(std::string_view s) {
    std::size_t n = 0;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        n += printable(c) ? 1 : (c == '"' || c == '\\') ? 2 : 6;
    }
    return n;
}

void append_string(std::string& out, std::string_view s) {
    out.push_back('"');
    append_escaped(out, s);
    out.push_back('"');
}

// Everything but the keys: `head` goes before the first key, `tail` after the
// last one.
struct Frame {
    std::string head;
    std::string tail;
};

Frame frame_of(const Invalidation& inv) {
    Frame f;
    f.head = R"({"type":"invalidate","keys":[)";
    f.tail = R"(],"lsn":")" + base::format_lsn(inv.lsn) + R"(","system_id":")" + std::to_string(inv.system_id) +
             R"(","origin":)";
    append_string(f.tail, inv.origin);
    f.tail.push_back('}');
    return f;
}

// The JSON reader hands strings back decoded to UTF-8 (escapes) or as written
// (raw bytes, which it does not check). Each character must be U+0000..U+00FF,
// i.e. one byte below 0x80 or a well-formed two-byte sequence led by C2 or C3;
// it becomes that one byte.
std::optional<std::string> bytes_of(std::string_view utf8) {
    std::string out;
    out.reserve(utf8.size());
    for (std::size_t i = 0; i < utf8.size(); ++i) {
        const auto c = static_cast<unsigned char>(utf8[i]);
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            continue;
        }
        if ((c != 0xc2 && c != 0xc3) || i + 1 >= utf8.size()) return std::nullopt;
        const auto next = static_cast<unsigned char>(utf8[i + 1]);
        if ((next & 0xc0) != 0x80) return std::nullopt;
        out.push_back(static_cast<char>(((c & 0x03) << 6) | (next & 0x3f)));
        ++i;
    }
    return out;
}

// 1 to 20 decimal digits whose value fits in 64 bits.
std::optional<std::uint64_t> parse_decimal_u64(std::string_view s) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    std::uint64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

// Skips the value whose first event was `first` (a scalar, or a container's
// begin: then up to its matching end).
bool skip_value(JsonReader& reader, JsonReader::Event first) {
    using E = JsonReader::Event;
    if (first == E::error || first == E::end || first == E::key || first == E::object_end || first == E::array_end)
        return false;
    if (first != E::object_begin && first != E::array_begin) return true;
    const std::size_t outside = reader.depth() - 1;
    while (reader.depth() > outside) {
        const E e = reader.next();
        if (e == E::error || e == E::end) return false;
    }
    return true;
}

}  // namespace

std::string encode_invalidation(const Invalidation& invalidation) {
    const Frame f = frame_of(invalidation);
    std::size_t size = f.head.size() + f.tail.size();
    for (const std::string& k : invalidation.keys) size += escaped_size(k) + 3;
    std::string out;
    out.reserve(size);
    out += f.head;
    for (std::size_t i = 0; i < invalidation.keys.size(); ++i) {
        if (i != 0) out.push_back(',');
        append_string(out, invalidation.keys[i]);
    }
    out += f.tail;
    return out;
}

std::optional<std::vector<std::string>> encode_invalidation_messages(const Invalidation& invalidation) {
    const Frame f = frame_of(invalidation);
    const std::size_t fixed = f.head.size() + f.tail.size();
    std::vector<std::string> messages;
    std::string current;
    std::size_t keys_in_current = 0;
    auto finish = [&] {
        current += f.tail;
        messages.push_back(std::move(current));
        current.clear();
        keys_in_current = 0;
    };
    for (const std::string& key : invalidation.keys) {
        const std::size_t cost = escaped_size(key) + 2;  // and a comma unless first
        if (fixed + cost > kMaxInvalidationBytes) return std::nullopt;
        if (keys_in_current != 0 && (keys_in_current == kMaxInvalidationKeys ||
                                     current.size() + 1 + cost + f.tail.size() > kMaxInvalidationBytes))
            finish();
        if (keys_in_current == 0) {
            current = f.head;
        } else {
            current.push_back(',');
        }
        append_string(current, key);
        ++keys_in_current;
    }
    if (keys_in_current != 0 || messages.empty()) {
        if (keys_in_current == 0) current = f.head;
        finish();
    }
    return messages;
}

std::optional<Invalidation> parse_invalidation(std::string_view json) {
    using E = JsonReader::Event;
    if (json.size() > kMaxInvalidationBytes) return std::nullopt;
    JsonReader reader(json, kMaxDepth);
    if (reader.next() != E::object_begin) return std::nullopt;
    Invalidation out;
    bool have_type = false, have_keys = false, have_lsn = false, have_system_id = false, have_origin = false;
    // A field seen twice is refused: two readers could otherwise take different ones.
    auto first_time = [](bool& seen) {
        if (seen) return false;
        seen = true;
        return true;
    };
    for (;;) {
        const E e = reader.next();
        if (e == E::object_end) break;
        if (e != E::key) return std::nullopt;
        const std::string field(reader.value());  // the next event overwrites value()
        if (field == "type") {
            if (!first_time(have_type) || reader.next() != E::string || reader.value() != "invalidate")
                return std::nullopt;
        } else if (field == "keys") {
            if (!first_time(have_keys) || reader.next() != E::array_begin) return std::nullopt;
            for (;;) {
                const E k = reader.next();
                if (k == E::array_end) break;
                if (k != E::string || out.keys.size() == kMaxInvalidationKeys) return std::nullopt;
                std::optional<std::string> key = bytes_of(reader.value());
                if (!key) return std::nullopt;
                out.keys.push_back(std::move(*key));
            }
        } else if (field == "lsn") {
            if (!first_time(have_lsn) || reader.next() != E::string) return std::nullopt;
            const std::optional<std::uint64_t> lsn = base::parse_lsn(reader.value());
            if (!lsn) return std::nullopt;
            out.lsn = *lsn;
        } else if (field == "system_id") {
            if (!first_time(have_system_id) || reader.next() != E::string) return std::nullopt;
            const std::optional<std::uint64_t> id = parse_decimal_u64(reader.value());
            if (!id) return std::nullopt;
            out.system_id = *id;
        } else if (field == "origin") {
            if (!first_time(have_origin) || reader.next() != E::string) return std::nullopt;
            std::optional<std::string> origin = bytes_of(reader.value());
            if (!origin) return std::nullopt;
            out.origin = std::move(*origin);
        } else if (!skip_value(reader, reader.next())) {
            return std::nullopt;
        }
    }
    if (reader.next() != E::end) return std::nullopt;
    if (!(have_type && have_keys && have_lsn && have_system_id && have_origin)) return std::nullopt;
    return out;
}

}  // namespace regiond::daemon

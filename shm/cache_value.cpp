#include "shm/cache_value.hpp"

#include <bit>
#include <cstring>

#include "shm/codec.hpp"

namespace regiond::shm {

static_assert(std::endian::native == std::endian::little,
              "the cache value is little-endian; a big-endian port must byte-swap here");

namespace {

// Bounds-checked reader over untrusted bytes: every read checks what remains
// first and fails instead of reading past the end.
class Cursor {
public:
    explicit Cursor(std::span<const std::byte> in) noexcept : p_(in.data()), end_(in.data() + in.size()) {}

    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

    template <class T>
    bool get(T& out) noexcept {
        if (remaining() < sizeof(T)) return false;
        std::memcpy(&out, p_, sizeof(T));
        p_ += sizeof(T);
        return true;
    }
    bool take(std::size_t n, std::span<const std::byte>& out) noexcept {
        if (remaining() < n) return false;
        out = {p_, n};
        p_ += n;
        return true;
    }
    bool skip(std::size_t n) noexcept {
        if (remaining() < n) return false;
        p_ += n;
        return true;
    }
    /// A u32-length string or nullable value; NULL (kNullLength) only if allowed.
    bool skip_sized(bool null_allowed) noexcept {
        std::uint32_t len = 0;
        if (!get(len)) return false;
        if (len == kNullLength) return null_allowed;
        return skip(len);
    }
    /// A u32-length string that must be empty.
    bool empty_string() noexcept {
        std::uint32_t len = 1;
        return get(len) && len == 0;
    }

private:
    const std::byte* p_;
    const std::byte* end_;
};

void put_bytes(std::vector<std::byte>& out, const void* data, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(data);
    out.insert(out.end(), b, b + n);
}

template <class T>
void put(std::vector<std::byte>& out, T v) {
    put_bytes(out, &v, sizeof v);
}

bool fits_u32(std::size_t n) noexcept {
    return n < kNullLength;
}

// The query: u32 sql_len | sql | u32 nparams | nparams x nullable, nothing after.
bool valid_query(std::span<const std::byte> query) noexcept {
    Cursor c(query);
    std::uint32_t nparams = 0;
    if (!c.skip_sized(false) || !c.get(nparams) || nparams > kMaxParams) return false;
    // Each parameter needs at least its 4-byte length.
    if (nparams > c.remaining() / 4) return false;
    for (std::uint32_t i = 0; i < nparams; ++i)
        if (!c.skip_sized(true)) return false;
    return c.remaining() == 0;
}

// One response chunk as the cache stores it (see cache_value.hpp): walked to its
// end without allocating. Mirrors ResponseDecoder::feed for chunk 0 with LAST.
bool valid_response(std::span<const std::byte> response) noexcept {
    Cursor c(response);
    std::uint16_t flags = 0, reserved = 1;
    std::uint32_t index = 1;
    if (!c.get(flags) || !c.get(reserved) || !c.get(index)) return false;
    if (flags != kChunkFlagLast || reserved != 0 || index != 0) return false;
    std::uint8_t status = 1;
    std::span<const std::byte> sqlstate;
    if (!c.get(status) || status != static_cast<std::uint8_t>(Status::ok) || !c.take(5, sqlstate)) return false;
    for (std::byte b : sqlstate)
        if (b != std::byte{0}) return false;
    std::int64_t affected = 0;
    if (!c.empty_string() /* error */ || !c.empty_string() /* served_by */ || !c.empty_string() /* token */ ||
        !c.get(affected) || !c.empty_string() /* route_reason */)
        return false;
    std::uint32_t ncols = 0;
    if (!c.get(ncols) || ncols > kCacheValueMaxColumns || ncols > c.remaining() / 4) return false;
    for (std::uint32_t i = 0; i < ncols; ++i)
        if (!c.skip_sized(false)) return false;
    std::uint32_t nrows = 0;
    if (!c.get(nrows)) return false;
    if (ncols != 0) {
        // Every value needs at least its 4-byte length: a forged count fails here,
        // and the loop below runs at most remaining/4 times.
        if (nrows > c.remaining() / (4 * std::size_t{ncols})) return false;
        const std::uint64_t values = std::uint64_t{nrows} * ncols;
        for (std::uint64_t v = 0; v < values; ++v)
            if (!c.skip_sized(true)) return false;
    }
    return c.remaining() == 0;
}

}  // namespace

std::vector<std::byte> encode_cache_value(const CacheValueView& value) {
    if (!fits_u32(value.query.size()) || !fits_u32(value.response.size())) return {};
    std::vector<std::byte> out;
    out.reserve(kCacheValueMinBytes + value.query.size() + value.response.size());
    put_bytes(out, kCacheValueMagic, sizeof kCacheValueMagic);
    put(out, kCacheValueVersion);
    put(out, std::uint16_t{0});  // flags
    put(out, value.floor_lsn);
    put(out, value.token_lsn);
    put(out, value.system_id);
    put(out, value.expires_unix_ms);
    put(out, static_cast<std::uint32_t>(value.query.size()));
    put_bytes(out, value.query.data(), value.query.size());
    put(out, static_cast<std::uint32_t>(value.response.size()));
    put_bytes(out, value.response.data(), value.response.size());
    return out;
}

std::optional<CacheValueView> parse_cache_value(std::span<const std::byte> in) noexcept {
    Cursor c(in);
    std::span<const std::byte> magic;
    std::uint16_t version = 0, flags = 1;
    CacheValueView v;
    if (!c.take(sizeof kCacheValueMagic, magic) || std::memcmp(magic.data(), kCacheValueMagic, magic.size()) != 0)
        return std::nullopt;
    if (!c.get(version) || version != kCacheValueVersion || !c.get(flags) || flags != 0) return std::nullopt;
    if (!c.get(v.floor_lsn) || !c.get(v.token_lsn) || !c.get(v.system_id) || !c.get(v.expires_unix_ms))
        return std::nullopt;
    std::uint32_t query_len = 0, response_len = 0;
    if (!c.get(query_len) || !c.take(query_len, v.query)) return std::nullopt;
    if (!c.get(response_len) || !c.take(response_len, v.response) || c.remaining() != 0) return std::nullopt;
    if (!valid_query(v.query) || !valid_response(v.response)) return std::nullopt;
    return v;
}

std::vector<std::byte> encode_cache_query(std::string_view sql,
                                          std::span<const std::optional<std::string_view>> params) {
    if (!fits_u32(sql.size()) || params.size() > kMaxParams) return {};
    std::size_t size = 4 + sql.size() + 4;
    for (const auto& p : params) {
        if (p && !fits_u32(p->size())) return {};
        size += 4 + (p ? p->size() : 0);
    }
    std::vector<std::byte> out;
    out.reserve(size);
    put(out, static_cast<std::uint32_t>(sql.size()));
    put_bytes(out, sql.data(), sql.size());
    put(out, static_cast<std::uint32_t>(params.size()));
    for (const auto& p : params) {
        if (!p) {
            put(out, kNullLength);
            continue;
        }
        put(out, static_cast<std::uint32_t>(p->size()));
        put_bytes(out, p->data(), p->size());
    }
    return out;
}

bool cache_query_matches(std::span<const std::byte> query, std::string_view sql,
                         std::span<const std::optional<std::string_view>> params) noexcept {
    Cursor c(query);
    auto same_bytes = [&c](std::string_view expected) {
        std::span<const std::byte> got;
        return c.take(expected.size(), got) &&
               (expected.empty() || std::memcmp(got.data(), expected.data(), expected.size()) == 0);
    };
    std::uint32_t len = 0;
    if (!c.get(len) || len != sql.size() || !same_bytes(sql)) return false;
    std::uint32_t nparams = 0;
    if (!c.get(nparams) || nparams != params.size()) return false;
    for (const auto& p : params) {
        if (!c.get(len)) return false;
        if (!p) {
            if (len != kNullLength) return false;
            continue;
        }
        if (len != p->size() || !same_bytes(*p)) return false;
    }
    return c.remaining() == 0;
}

}  // namespace regiond::shm

#include "shm/codec.hpp"

#include <bit>
#include <cstring>
#include <limits>

namespace regiond::shm {

namespace {

template <class T>
T to_little(T v) noexcept {
    if constexpr (std::endian::native == std::endian::big) {
        if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(static_cast<std::uint16_t>(v)));
        if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(static_cast<std::uint32_t>(v)));
        if constexpr (sizeof(T) == 8) return static_cast<T>(__builtin_bswap64(static_cast<std::uint64_t>(v)));
    }
    return v;
}

// Bounds-checked little-endian reader over untrusted bytes.
class Reader {
public:
    explicit Reader(std::span<const std::byte> in) noexcept : p_(in.data()), end_(in.data() + in.size()) {}

    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

    template <class T>
    bool get(T& out) noexcept {
        if (remaining() < sizeof(T)) return false;
        std::memcpy(&out, p_, sizeof(T));
        out = to_little(out);
        p_ += sizeof(T);
        return true;
    }
    bool bytes(std::size_t n, const std::byte*& out) noexcept {
        if (remaining() < n) return false;
        out = p_;
        p_ += n;
        return true;
    }
    bool str(std::string_view& out) noexcept {
        std::uint32_t len;
        const std::byte* data;
        if (!get(len) || len == kNullLength || !bytes(len, data)) return false;
        out = std::string_view(reinterpret_cast<const char*>(data), len);
        return true;
    }

private:
    const std::byte* p_;
    const std::byte* end_;
};

// Writer into a span that the caller sized with the matching *_size() function.
class Writer {
public:
    explicit Writer(std::byte* p) noexcept : p_(p) {}
    template <class T>
    void put(T v) noexcept {
        v = to_little(v);
        std::memcpy(p_, &v, sizeof(T));
        p_ += sizeof(T);
    }
    void raw(const void* data, std::size_t n) noexcept {
        if (n != 0) std::memcpy(p_, data, n);
        p_ += n;
    }
    void str(std::string_view s) noexcept {
        put(static_cast<std::uint32_t>(s.size()));
        raw(s.data(), s.size());
    }
    void nullable(const std::optional<std::string_view>& v) noexcept {
        if (!v) {
            put(kNullLength);
        } else {
            str(*v);
        }
    }
    std::byte* position() const noexcept { return p_; }

private:
    std::byte* p_;
};

bool fits_u32(std::size_t n) noexcept {
    return n < kNullLength;
}

// Geometric growth for containers filled chunk by chunk (an exact reserve per
// chunk would reallocate and copy everything for every chunk).
template <class V>
void grow_for(V& v, std::size_t extra) {
    const std::size_t needed = v.size() + extra;
    if (needed > v.capacity()) v.reserve(needed > 2 * v.capacity() ? needed : 2 * v.capacity());
}

}  // namespace

const char* to_string(CodecError error) noexcept {
    switch (error) {
        case CodecError::ok: return "ok";
        case CodecError::truncated: return "truncated input";
        case CodecError::bad_value: return "invalid field value";
        case CodecError::trailing_bytes: return "trailing bytes after the message";
        case CodecError::limit_exceeded: return "message exceeds the decoder's limits";
        case CodecError::bad_sequence: return "response chunk out of sequence";
        case CodecError::row_too_large: return "row does not fit in one response chunk";
        case CodecError::arity: return "wrong number of values";
        case CodecError::chunk_full: return "chunk full";
    }
    return "unknown codec error";
}

// ---------------------------------------------------------------------------
// Requests

std::size_t encoded_request_size(const RequestView& r) noexcept {
    if (!fits_u32(r.key.size()) || !fits_u32(r.token.size()) || !fits_u32(r.sql.size()) ||
        r.params.size() > kMaxParams || r.invalidate_keys.size() > kMaxInvalidateKeys)
        return 0;
    std::size_t n = 1 + 1 + 2 + 4 + 4;
    n += 4 + r.key.size() + 4 + r.token.size() + 4 + r.sql.size();
    n += 4;
    for (const auto& p : r.params) {
        if (p && !fits_u32(p->size())) return 0;
        n += 4 + (p ? p->size() : 0);
    }
    n += 4;
    for (const auto& k : r.invalidate_keys) {
        if (!fits_u32(k.size())) return 0;
        n += 4 + k.size();
    }
    return n;
}

std::size_t encode_request(const RequestView& r, std::span<std::byte> out) noexcept {
    const std::size_t size = encoded_request_size(r);
    if (size == 0 || size > out.size()) return 0;
    Writer w(out.data());
    w.put(static_cast<std::uint8_t>(r.op));
    w.put(std::uint8_t{0});
    w.put(std::uint16_t{0});
    w.put(r.timeout_ms);
    w.put(r.ttl_seconds);
    w.str(r.key);
    w.str(r.token);
    w.str(r.sql);
    w.put(static_cast<std::uint32_t>(r.params.size()));
    for (const auto& p : r.params) w.nullable(p);
    w.put(static_cast<std::uint32_t>(r.invalidate_keys.size()));
    for (const auto& k : r.invalidate_keys) w.str(k);
    return size;
}

bool encode_request_append(const RequestView& r, std::vector<std::byte>& out) {
    const std::size_t size = encoded_request_size(r);
    if (size == 0) return false;
    const std::size_t start = out.size();
    out.resize(start + size);
    return encode_request(r, std::span<std::byte>(out).subspan(start)) == size;
}

CodecError decode_request(std::span<const std::byte> in, RequestView& out) {
    Reader r(in);
    std::uint8_t op = 0, reserved8 = 0;
    std::uint16_t reserved16 = 0;
    if (!r.get(op) || !r.get(reserved8) || !r.get(reserved16) || !r.get(out.timeout_ms) || !r.get(out.ttl_seconds))
        return CodecError::truncated;
    if (op < static_cast<std::uint8_t>(Op::read_local) || op > static_cast<std::uint8_t>(Op::cached_read) ||
        reserved8 != 0 || reserved16 != 0)
        return CodecError::bad_value;
    out.op = static_cast<Op>(op);
    if (!r.str(out.key) || !r.str(out.token) || !r.str(out.sql)) return CodecError::truncated;

    std::uint32_t nparams = 0;
    if (!r.get(nparams)) return CodecError::truncated;
    if (nparams > kMaxParams) return CodecError::limit_exceeded;
    if (nparams > r.remaining() / 4) return CodecError::truncated;  // each needs >= 4 bytes
    out.params.clear();
    out.params.reserve(nparams);
    for (std::uint32_t i = 0; i < nparams; ++i) {
        std::uint32_t len = 0;
        const std::byte* data = nullptr;
        if (!r.get(len)) return CodecError::truncated;
        if (len == kNullLength) {
            out.params.emplace_back(std::nullopt);
            continue;
        }
        if (!r.bytes(len, data)) return CodecError::truncated;
        out.params.emplace_back(std::string_view(reinterpret_cast<const char*>(data), len));
    }

    std::uint32_t nkeys = 0;
    if (!r.get(nkeys)) return CodecError::truncated;
    if (nkeys > kMaxInvalidateKeys) return CodecError::limit_exceeded;
    if (nkeys > r.remaining() / 4) return CodecError::truncated;
    out.invalidate_keys.clear();
    out.invalidate_keys.reserve(nkeys);
    for (std::uint32_t i = 0; i < nkeys; ++i) {
        std::string_view key;
        if (!r.str(key)) return CodecError::truncated;
        out.invalidate_keys.push_back(key);
    }
    if (r.remaining() != 0) return CodecError::trailing_bytes;
    return CodecError::ok;
}

// ---------------------------------------------------------------------------
// Response (owning)

std::optional<std::string_view> Response::value(std::size_t row, std::size_t col) const noexcept {
    const Cell& c = cells_[row * columns.size() + col];
    if (c.length == kNullLength) return std::nullopt;
    return std::string_view(arena_.data() + c.offset, c.length);
}

const char* Response::value_cstr(std::size_t row, std::size_t col) const noexcept {
    const Cell& c = cells_[row * columns.size() + col];
    return c.length == kNullLength ? nullptr : arena_.data() + c.offset;
}

bool Response::add_row(std::span<const std::optional<std::string_view>> values) {
    if (values.size() != columns.size()) return false;
    grow_for(cells_, values.size());
    for (const auto& v : values) {
        if (!v) {
            cells_.push_back(Cell{0, kNullLength});
            continue;
        }
        if (!fits_u32(v->size())) return false;
        cells_.push_back(Cell{arena_.size(), static_cast<std::uint32_t>(v->size())});
        grow_for(arena_, v->size() + 1);
        arena_.append(v->data(), v->size());
        arena_.push_back('\0');
    }
    ++nrows_;
    return true;
}

ResponseHeadView Response::head_view(std::vector<std::string_view>& names) const {
    names.assign(columns.begin(), columns.end());
    ResponseHeadView h;
    h.status = status;
    h.sqlstate = std::string_view(sqlstate);
    h.error = error;
    h.served_by = served_by;
    h.token = token;
    h.affected = affected;
    h.route_reason = route_reason;
    h.columns = names;
    return h;
}

void Response::clear_rows() noexcept {
    nrows_ = 0;
    cells_.clear();
    arena_.clear();
}

// ---------------------------------------------------------------------------
// Encoder

ResponseEncoder::ResponseEncoder(std::size_t max_chunk_bytes)
    : max_chunk_(max_chunk_bytes < kMinChunkBytes ? kMinChunkBytes : max_chunk_bytes) {
    buffer_.reserve(max_chunk_);
}

CodecError ResponseEncoder::begin(const ResponseHeadView& head) {
    chunk_open_ = false;
    next_index_ = 0;
    ncols_ = 0;
    if (!head.sqlstate.empty() && head.sqlstate.size() != 5) return CodecError::arity;
    if (!fits_u32(head.error.size()) || !fits_u32(head.served_by.size()) || !fits_u32(head.token.size()) ||
        !fits_u32(head.route_reason.size()) || !fits_u32(head.columns.size()))
        return CodecError::bad_value;
    std::size_t size = 8 + 1 + 5 + 4 + head.error.size() + 4 + head.served_by.size() + 4 + head.token.size() + 8 + 4 +
                       head.route_reason.size() + 4;
    for (const auto& c : head.columns) {
        if (!fits_u32(c.size())) return CodecError::bad_value;
        size += 4 + c.size();
    }
    size += 4;  // nrows
    if (size > max_chunk_) return CodecError::row_too_large;

    buffer_.resize(size);
    Writer w(buffer_.data());
    w.put(std::uint16_t{0});  // flags, patched by take_chunk
    w.put(std::uint16_t{0});
    w.put(std::uint32_t{0});  // chunk index 0
    w.put(static_cast<std::uint8_t>(head.status));
    char sqlstate[5] = {};
    if (!head.sqlstate.empty()) std::memcpy(sqlstate, head.sqlstate.data(), 5);
    w.raw(sqlstate, 5);
    w.str(head.error);
    w.str(head.served_by);
    w.str(head.token);
    w.put(head.affected);
    w.str(head.route_reason);
    w.put(static_cast<std::uint32_t>(head.columns.size()));
    for (const auto& c : head.columns) w.str(c);
    nrows_offset_ = static_cast<std::size_t>(w.position() - buffer_.data());
    w.put(std::uint32_t{0});  // nrows, patched by take_chunk
    ncols_ = head.columns.size();
    rows_in_chunk_ = 0;
    chunk_open_ = true;
    return CodecError::ok;
}

void ResponseEncoder::start_chunk() {
    buffer_.resize(kChunkOverhead);
    Writer w(buffer_.data());
    w.put(std::uint16_t{0});
    w.put(std::uint16_t{0});
    w.put(next_index_);
    nrows_offset_ = 8;
    w.put(std::uint32_t{0});
    rows_in_chunk_ = 0;
    chunk_open_ = true;
}

CodecError ResponseEncoder::add_row(std::span<const std::optional<std::string_view>> values) {
    if (next_index_ == 0 && !chunk_open_) return CodecError::bad_sequence;  // begin() not called
    if (values.size() != ncols_) return CodecError::arity;
    std::size_t row_bytes = 0;
    for (const auto& v : values) {
        if (v && !fits_u32(v->size())) return CodecError::row_too_large;
        row_bytes += 4 + (v ? v->size() : 0);
    }
    if (row_bytes > max_chunk_ - kChunkOverhead) return CodecError::row_too_large;
    if (!chunk_open_) start_chunk();
    if (buffer_.size() + row_bytes > max_chunk_ || rows_in_chunk_ == std::numeric_limits<std::uint32_t>::max())
        return CodecError::chunk_full;
    const std::size_t at = buffer_.size();
    buffer_.resize(at + row_bytes);
    Writer w(buffer_.data() + at);
    for (const auto& v : values) w.nullable(v);
    ++rows_in_chunk_;
    return CodecError::ok;
}

std::span<const std::byte> ResponseEncoder::take_chunk(bool last) {
    if (!chunk_open_) start_chunk();  // e.g. an empty final chunk
    const std::uint16_t flags = to_little<std::uint16_t>(last ? kChunkFlagLast : 0);
    std::memcpy(buffer_.data(), &flags, sizeof flags);
    const std::uint32_t rows = to_little(rows_in_chunk_);
    std::memcpy(buffer_.data() + nrows_offset_, &rows, sizeof rows);
    chunk_open_ = false;
    ++next_index_;
    return buffer_;
}

CodecError ResponseEncoder::finish(const ResponseTrailerView& trailer, std::vector<std::vector<std::byte>>& out) {
    if (next_index_ == 0 && !chunk_open_) return CodecError::bad_sequence;  // begin() not called
    if (!trailer.sqlstate.empty() && trailer.sqlstate.size() != 5) return CodecError::arity;
    if (!fits_u32(trailer.error.size()) || !fits_u32(trailer.token.size())) return CodecError::bad_value;
    const std::size_t trailer_size = 1 + 5 + 4 + trailer.error.size() + 4 + trailer.token.size() + 8;
    if (kChunkOverhead + trailer_size > max_chunk_) return CodecError::row_too_large;
    if (chunk_open_ && buffer_.size() + trailer_size > max_chunk_) {
        const auto full = take_chunk(false);
        out.emplace_back(full.begin(), full.end());
    }
    if (!chunk_open_) start_chunk();
    const std::size_t at = buffer_.size();
    buffer_.resize(at + trailer_size);
    Writer w(buffer_.data() + at);
    w.put(static_cast<std::uint8_t>(trailer.status));
    char sqlstate[5] = {};
    if (!trailer.sqlstate.empty()) std::memcpy(sqlstate, trailer.sqlstate.data(), 5);
    w.raw(sqlstate, 5);
    w.str(trailer.error);
    w.str(trailer.token);
    w.put(trailer.affected);
    const auto last = take_chunk(true);
    out.emplace_back(last.begin(), last.end());
    const std::uint16_t flags = to_little<std::uint16_t>(kChunkFlagLast | kChunkFlagTrailer);
    std::memcpy(out.back().data(), &flags, sizeof flags);
    return CodecError::ok;
}

CodecError encode_response(const Response& response, std::size_t max_chunk_bytes,
                           std::vector<std::vector<std::byte>>& chunks) {
    chunks.clear();
    ResponseEncoder enc(max_chunk_bytes);
    std::vector<std::string_view> names;
    if (const CodecError e = enc.begin(response.head_view(names)); e != CodecError::ok) return e;
    std::vector<std::optional<std::string_view>> row(response.ncols());
    for (std::size_t i = 0; i < response.nrows(); ++i) {
        for (std::size_t c = 0; c < row.size(); ++c) row[c] = response.value(i, c);
        CodecError e = enc.add_row(row);
        if (e == CodecError::chunk_full) {
            const auto chunk = enc.take_chunk(false);
            chunks.emplace_back(chunk.begin(), chunk.end());
            e = enc.add_row(row);
        }
        if (e != CodecError::ok) return e;
    }
    const auto chunk = enc.take_chunk(true);
    chunks.emplace_back(chunk.begin(), chunk.end());
    return CodecError::ok;
}

// ---------------------------------------------------------------------------
// Decoder

namespace {

// u8 status | char sqlstate[5], as in the head and the trailer.
CodecError read_status(Reader& r, Response& out) {
    std::uint8_t status = 0;
    const std::byte* sqlstate = nullptr;
    if (!r.get(status) || !r.bytes(5, sqlstate)) return CodecError::truncated;
    if (status > static_cast<std::uint8_t>(Status::error)) return CodecError::bad_value;
    // sqlstate: five zero bytes (none) or five characters [0-9A-Z].
    bool none = true, valid = true;
    for (int i = 0; i < 5; ++i) {
        const auto ch = static_cast<unsigned char>(sqlstate[i]);
        none = none && ch == 0;
        valid = valid && ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z'));
    }
    if (!none && !valid) return CodecError::bad_value;
    out.status = static_cast<Status>(status);
    std::memcpy(out.sqlstate, sqlstate, 5);
    out.sqlstate[5] = '\0';
    if (none) out.sqlstate[0] = '\0';
    return CodecError::ok;
}

}  // namespace

void ResponseDecoder::reset() {
    response_ = Response{};
    total_bytes_ = 0;
    next_index_ = 0;
    complete_ = false;
    error_ = CodecError::ok;
}

Response ResponseDecoder::take() {
    Response out = std::move(response_);
    reset();
    return out;
}

CodecError ResponseDecoder::feed(std::span<const std::byte> chunk) {
    if (error_ != CodecError::ok) return error_;
    if (complete_) return fail(CodecError::bad_sequence);
    total_bytes_ += chunk.size();
    if (total_bytes_ > limits_.max_total_bytes) return fail(CodecError::limit_exceeded);

    Reader r(chunk);
    std::uint16_t flags = 0, reserved = 0;
    std::uint32_t index = 0;
    if (!r.get(flags) || !r.get(reserved) || !r.get(index)) return fail(CodecError::truncated);
    if ((flags & ~(kChunkFlagLast | kChunkFlagTrailer)) != 0 || reserved != 0) return fail(CodecError::bad_value);
    const bool has_trailer = (flags & kChunkFlagTrailer) != 0;
    if (has_trailer && (flags & kChunkFlagLast) == 0) return fail(CodecError::bad_value);
    if (index != next_index_) return fail(CodecError::bad_sequence);

    Response& out = response_;
    if (index == 0) {
        if (const CodecError e = read_status(r, out); e != CodecError::ok) return fail(e);
        std::string_view error, served_by, token, route_reason;
        if (!r.str(error) || !r.str(served_by) || !r.str(token) || !r.get(out.affected) || !r.str(route_reason))
            return fail(CodecError::truncated);
        out.error.assign(error);
        out.served_by.assign(served_by);
        out.token.assign(token);
        out.route_reason.assign(route_reason);
        std::uint32_t ncols = 0;
        if (!r.get(ncols)) return fail(CodecError::truncated);
        if (ncols > limits_.max_columns) return fail(CodecError::limit_exceeded);
        if (ncols > r.remaining() / 4) return fail(CodecError::truncated);
        out.columns.clear();
        out.columns.reserve(ncols);
        for (std::uint32_t i = 0; i < ncols; ++i) {
            std::string_view name;
            if (!r.str(name)) return fail(CodecError::truncated);
            out.columns.emplace_back(name);
        }
    }

    std::uint32_t nrows = 0;
    if (!r.get(nrows)) return fail(CodecError::truncated);
    const std::size_t ncols = out.columns.size();
    if (ncols != 0) {
        // Every value needs at least its 4-byte length: a forged count fails here,
        // before anything is allocated for it.
        if (nrows > r.remaining() / (4 * ncols)) return fail(CodecError::truncated);
        grow_for(out.cells_, std::size_t{nrows} * ncols);
        for (std::uint64_t v = 0; v < std::uint64_t{nrows} * ncols; ++v) {
            std::uint32_t len = 0;
            if (!r.get(len)) return fail(CodecError::truncated);
            if (len == kNullLength) {
                out.cells_.push_back(Response::Cell{0, kNullLength});
                continue;
            }
            const std::byte* data = nullptr;
            if (!r.bytes(len, data)) return fail(CodecError::truncated);
            out.cells_.push_back(Response::Cell{out.arena_.size(), len});
            grow_for(out.arena_, std::size_t{len} + 1);
            const char* chars = reinterpret_cast<const char*>(data);
            out.arena_.append(chars, len);
            out.arena_.push_back('\0');
        }
    }
    // With zero columns a row has no bytes; only the count grows (no allocation).
    out.nrows_ += nrows;
    if (has_trailer) {
        if (const CodecError e = read_status(r, out); e != CodecError::ok) return fail(e);
        std::string_view error, token;
        if (!r.str(error) || !r.str(token) || !r.get(out.affected)) return fail(CodecError::truncated);
        out.error.assign(error);
        out.token.assign(token);
        if (out.status == Status::error) {
            // A failed result never shows the rows streamed before the failure.
            out.clear_rows();
            out.columns.clear();
        }
    }
    if (r.remaining() != 0) return fail(CodecError::trailing_bytes);
    ++next_index_;
    if (flags & kChunkFlagLast) complete_ = true;
    return CodecError::ok;
}

}  // namespace regiond::shm

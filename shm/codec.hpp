// Payload encodings carried in the rings (and later stored in the cache).
//
// All integers little-endian, fixed width. A string is u32 length + bytes (no
// NUL). A nullable value is u32 length or kNullLength (0xFFFFFFFF) for SQL NULL,
// then the bytes. Decoding never trusts the input: every length and count is
// checked against the bytes that remain (so a forged count can never cause a huge
// allocation), reserved fields must be zero, and trailing bytes are an error.
//
// Request (one record, RecordKind::request):
//   u8 op | u8 0 | u16 0 | u32 timeout_ms | u32 ttl_seconds
//   str key | str token | str sql
//   u32 nparams | nparams x nullable
//   u32 nkeys   | nkeys x str                       (invalidate keys, for write)
//
// Response (one or more records, RecordKind::response, same request_id; the ring
// record of the last one carries kRecordFlagLast). Each record is one chunk:
//   u16 chunk_flags (bit 0: last, bit 1: trailer) | u16 0 | u32 chunk_index (0, 1, 2, ...)
//   only in chunk 0, the head:
//     u8 status | char sqlstate[5] | str error | str served_by | str token
//     i64 affected | str route_reason | u32 ncols | ncols x str column name
//   u32 nrows | nrows x ncols x nullable           (rows of this chunk)
//   only in the last chunk, and only with flag bit 1, the trailer:
//     u8 status | char sqlstate[5] | str error | str token | i64 affected
// Rows stream: the encoder fills a chunk of at most max_chunk bytes and starts the
// next; the decoder appends chunk after chunk until the last. A single row must
// fit in one chunk (max_chunk - 12 bytes).
//
// The trailer exists for streamed results: the daemon sends the head and rows as
// they arrive from PostgreSQL, before it knows how the statement ends (an error
// after some rows, a write's commit LSN). When present, the trailer's fields
// replace the head's; an error trailer also discards the rows and columns, so a
// failed result never shows partial data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shm/growable_buffer.hpp"

namespace regiond::shm {

inline constexpr std::uint32_t kNullLength = 0xFFFFFFFFu;
inline constexpr std::uint32_t kMaxParams = 65535;  ///< PostgreSQL's limit
inline constexpr std::uint32_t kMaxInvalidateKeys = 65535;
inline constexpr std::uint16_t kChunkFlagLast = 0x0001;
inline constexpr std::uint16_t kChunkFlagTrailer = 0x0002;  ///< only together with kChunkFlagLast
/// Bytes of a continuation chunk before its rows: chunk header (8) + nrows (4).
inline constexpr std::size_t kChunkOverhead = 12;
inline constexpr std::size_t kMinChunkBytes = 64;

enum class CodecError : std::uint8_t {
    ok = 0,
    truncated,       ///< input ends inside a field
    bad_value,       ///< unknown op/status/flags, non-zero reserved field
    trailing_bytes,  ///< bytes after the last field
    limit_exceeded,  ///< a count or total above the decoder's limits
    bad_sequence,    ///< chunk index out of order, or data after the last chunk
    row_too_large,   ///< encoder: one row (or the head) cannot fit in a chunk
    arity,           ///< encoder: row with the wrong number of values, bad sqlstate
    chunk_full,      ///< encoder, not a failure: take_chunk(false), then add the row again
};
const char* to_string(CodecError error) noexcept;

enum class Op : std::uint8_t {
    read_local = 1,
    read_primary = 2,
    write = 3,
    read_consistent = 4,
    cached_read = 5,
};

/// A request whose strings point into caller memory (the encoder's input, or the
/// decoder's input buffer: keep that buffer alive while using the view).
struct RequestView {
    Op op = Op::read_local;
    std::uint32_t timeout_ms = 0;   ///< 0: the daemon's default
    std::uint32_t ttl_seconds = 0;  ///< cached_read; 0: the configured default
    std::string_view key;           ///< cached_read
    std::string_view token;         ///< read_consistent
    std::string_view sql;
    std::vector<std::optional<std::string_view>> params;  ///< nullopt = SQL NULL
    std::vector<std::string_view> invalidate_keys;        ///< write
};

/// Bytes encode_request() writes; 0 if a field exceeds the format's limits.
std::size_t encoded_request_size(const RequestView& request) noexcept;
/// Writes the request into `out` (at least encoded_request_size bytes); returns
/// the bytes written, or 0 if it does not fit or exceeds the format's limits.
std::size_t encode_request(const RequestView& request, std::span<std::byte> out) noexcept;
/// Appends the encoding to `out`; false if a field exceeds the format's limits.
bool encode_request_append(const RequestView& request, std::vector<std::byte>& out);
/// Decodes one request; `out` views into `in`.
CodecError decode_request(std::span<const std::byte> in, RequestView& out);

enum class Status : std::uint8_t { ok = 0, error = 1 };

/// What precedes the rows, as the encoder's input.
struct ResponseHeadView {
    Status status = Status::ok;
    std::string_view sqlstate;  ///< "" or exactly 5 characters
    std::string_view error;
    std::string_view served_by;
    std::string_view token;
    std::int64_t affected = -1;
    std::string_view route_reason;  ///< one line for people: where the request went and why
    std::span<const std::string_view> columns;
};

/// What a streamed response ends with (see "trailer" above): the final status,
/// error, token and affected count, which replace the head's.
struct ResponseTrailerView {
    Status status = Status::ok;
    std::string_view sqlstate;  ///< "" or exactly 5 characters
    std::string_view error;
    std::string_view token;
    std::int64_t affected = -1;
};

/// A decoded (owning) response. Values are stored NUL-terminated in one arena so
/// the C API can hand out `const char*` without copying.
class Response {
public:
    Status status = Status::ok;
    char sqlstate[6] = {};  ///< NUL-terminated, "" if none
    std::string error;
    std::string served_by;
    std::string token;
    std::int64_t affected = -1;
    std::string route_reason;
    std::vector<std::string> columns;

    std::size_t nrows() const noexcept { return nrows_; }
    std::size_t ncols() const noexcept { return columns.size(); }
    /// nullopt for SQL NULL. Preconditions: row < nrows(), col < ncols().
    std::optional<std::string_view> value(std::size_t row, std::size_t col) const noexcept;
    /// NUL-terminated value, nullptr for SQL NULL.
    const char* value_cstr(std::size_t row, std::size_t col) const noexcept;
    /// Appends a row (values.size() must equal ncols()).
    bool add_row(std::span<const std::optional<std::string_view>> values);
    /// The head as encoder input (views into this object and `names`, which the
    /// caller provides so that it outlives the view).
    ResponseHeadView head_view(std::vector<std::string_view>& names) const;
    void clear_rows() noexcept;

private:
    friend class ResponseDecoder;
    struct Cell {
        std::uint64_t offset;  ///< into arena_
        std::uint32_t length;  ///< kNullLength for NULL
    };
    std::size_t nrows_ = 0;
    GrowableBuffer<Cell> cells_;  ///< row-major, nrows_ * ncols()
    GrowableBuffer<char> arena_;  ///< the values, each NUL-terminated
};

/// Streams a response into chunks of at most max_chunk bytes.
///
///     ResponseEncoder enc(ring.max_payload());
///     enc.begin(head);
///     for (row : rows)
///         if (enc.add_row(row) == CodecError::chunk_full) {
///             push(enc.take_chunk(false));                     // not last
///             if (auto e = enc.add_row(row); e != CodecError::ok) fail(e);
///         }
///     push(enc.take_chunk(true));
class ResponseEncoder {
public:
    /// max_chunk_bytes >= kMinChunkBytes (smaller values are raised to it).
    explicit ResponseEncoder(std::size_t max_chunk_bytes);

    /// Starts a new response (forgets any previous one) with chunk 0 holding the
    /// head. row_too_large if the head alone exceeds a chunk; arity if sqlstate
    /// is not "" or 5 characters; bad_value if a string is 4 GiB or more.
    CodecError begin(const ResponseHeadView& head);
    /// Appends a row to the current chunk. ok; chunk_full = nothing written, take
    /// the chunk (take_chunk(false)) and add the row again; row_too_large = the
    /// row cannot fit even in an empty chunk; arity; bad_sequence before begin().
    CodecError add_row(std::span<const std::optional<std::string_view>> values);
    /// Closes the current chunk and returns its bytes, valid until the next call
    /// on this encoder. The next add_row starts chunk index + 1.
    std::span<const std::byte> take_chunk(bool last);
    /// Ends a streamed response: the current chunk (possibly empty) becomes the
    /// last one and carries `trailer`; when the trailer does not fit beside the
    /// rows already in it, that chunk is closed as not-last and an empty last
    /// chunk carries the trailer. Appends the 1 or 2 chunks to `out`. arity for a
    /// bad sqlstate; row_too_large if the trailer alone exceeds a chunk.
    CodecError finish(const ResponseTrailerView& trailer, std::vector<std::vector<std::byte>>& out);

    /// Bytes in the chunk being filled (0 when none is open): a streaming caller
    /// takes the chunk early once this passes its preferred size.
    std::size_t chunk_bytes() const noexcept { return chunk_open_ ? buffer_.size() : 0; }
    std::size_t max_chunk() const noexcept { return max_chunk_; }
    std::uint32_t chunks_taken() const noexcept { return next_index_; }

private:
    void start_chunk();

    std::size_t max_chunk_;
    std::size_t ncols_ = 0;
    std::vector<std::byte> buffer_;
    std::size_t nrows_offset_ = 0;
    std::uint32_t rows_in_chunk_ = 0;
    std::uint32_t next_index_ = 0;
    bool chunk_open_ = false;
};

/// Encodes a whole response into chunks (convenience for tests and the cache).
CodecError encode_response(const Response& response, std::size_t max_chunk_bytes,
                           std::vector<std::vector<std::byte>>& chunks);

struct DecoderLimits {
    std::uint64_t max_total_bytes = std::uint64_t{1} << 31;  ///< sum of all chunk sizes
    std::uint32_t max_columns = 4096;
};

/// Reassembles a response from its chunks, in order. Any error is sticky.
class ResponseDecoder {
public:
    explicit ResponseDecoder(DecoderLimits limits = {}) : limits_(limits) {}

    CodecError feed(std::span<const std::byte> chunk);
    bool complete() const noexcept { return complete_; }
    Response& response() noexcept { return response_; }
    /// Moves the response out and resets the decoder for the next one.
    Response take();
    void reset();

private:
    CodecError fail(CodecError e) noexcept {
        error_ = e;
        return e;
    }
    DecoderLimits limits_;
    Response response_;
    std::uint64_t total_bytes_ = 0;
    std::uint32_t next_index_ = 0;
    bool complete_ = false;
    CodecError error_ = CodecError::ok;
};

}  // namespace regiond::shm

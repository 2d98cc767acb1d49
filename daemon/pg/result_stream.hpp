// A job's rows, encoded into response chunks as they arrive (single-row mode)
// instead of from a whole PGresult at the end (docs/design.md, "Streaming").
//
// The head (status ok, served_by, columns) is written with the first result
// that has columns; each row is added as it comes. A chunk is taken once it
// passes kStreamChunkBytes (or when the next row would not fit in max_chunk):
// the owner hands it to JobCallbacks::partial or keeps it. The response ends
// with the last chunk: plain for a read that ends well, with a trailer
// (ResponseEncoder::finish) for a write (token, affected rows are known only
// after the commit) and for an error after the head was written (an error
// trailer makes the client discard the rows). An error before any chunk left
// is a plain error response instead.
//
// Every encoded byte counts against the job's max_result; beyond it the owner
// stops the job ("result exceeds daemon.max_result (256 MiB)").
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/pg/endpoint.hpp"
#include "shm/codec.hpp"

namespace regiond::daemon::pg {

/// A streamed chunk is taken once it passes this many bytes.
inline constexpr std::size_t kStreamChunkBytes = 64 * 1024;

/// "256 MiB", "64 KiB", "1.5 GiB", "300 bytes": for messages about limits.
std::string size_text(std::uint64_t bytes);

/// Response encoders kept for reuse by the jobs of one endpoint. An encoder
/// reserves a whole max_chunk (the ring payload, 512 KiB) when made; making
/// one per job and freeing it at the end, with many jobs in flight, made glibc
/// trim and regrow its heap on nearly every request (measured: half the
/// throughput at 16 clients). Reserved pages a job never wrote are never
/// resident. Loop thread only.
class EncoderPool {
public:
    EncoderPool(std::size_t max_chunk_bytes, std::size_t keep) : max_chunk_(max_chunk_bytes), keep_(keep) {}
    EncoderPool(const EncoderPool&) = delete;
    EncoderPool& operator=(const EncoderPool&) = delete;

    std::unique_ptr<shm::ResponseEncoder> take();
    void give(std::unique_ptr<shm::ResponseEncoder> encoder);

private:
    std::size_t max_chunk_;
    std::size_t keep_;
    std::vector<std::unique_ptr<shm::ResponseEncoder>> free_;
};

class ResultStream {
public:
    enum class Added : std::uint8_t { ok, row_too_large, over_limit };

    /// `route_reason` goes into the head; it must outlive the stream (the job's).
    ResultStream(EncoderPool& pool, std::string_view served_by, std::size_t max_chunk_bytes, std::uint64_t max_result,
                 std::string_view route_reason = {});
    ~ResultStream();
    ResultStream(const ResultStream&) = delete;
    ResultStream& operator=(const ResultStream&) = delete;

    /// Adds the rows of `r` (PGRES_SINGLE_TUPLE, or a TUPLES_OK holding any
    /// number of rows); the first call writes the head with its columns.
    /// Chunks that became full are appended to ready().
    Added add(const PGresult& r);
    /// Chunks taken and not yet handed out (the owner pops them).
    std::deque<std::vector<std::byte>>& ready() { return ready_; }
    /// The head has been written (some result with columns arrived).
    bool begun() const { return begun_; }
    /// Encoded bytes so far (chunks taken + the one being filled).
    std::uint64_t bytes() const { return taken_bytes_ + (encoder_ ? encoder_->chunk_bytes() : 0); }
    std::uint64_t max_result() const { return max_result_; }
    /// Why add() failed (row_too_large / over_limit), for the error message.
    const std::string& problem() const { return problem_; }

    /// The final chunks of a response that ends well. `trailer` is needed when
    /// the head's token/affected are not the final ones (a write, a read with
    /// its token: both are known only at the end).
    std::vector<std::vector<std::byte>> finish_ok(std::string_view token, std::int64_t affected, bool trailer);
    /// The final chunks of an error. `handed_out`: chunks already left through
    /// partial (then the error must be a trailer); otherwise a plain error
    /// response replaces everything (ready() is cleared).
    std::vector<std::vector<std::byte>> finish_error(std::string_view message, std::string_view sqlstate,
                                                     bool handed_out);
    /// Forgets everything (before a job is sent again).
    void reset();

private:
    bool begin(const PGresult& r);
    void take(bool last);
    shm::ResponseEncoder& encoder();

    std::string served_by_;
    std::string_view route_reason_;
    std::size_t max_chunk_;
    std::uint64_t max_result_;
    EncoderPool& pool_;
    /// Taken from the pool when the first head is written, kept across reset(),
    /// given back when the stream ends.
    std::unique_ptr<shm::ResponseEncoder> encoder_;
    std::deque<std::vector<std::byte>> ready_;
    std::uint64_t taken_bytes_ = 0;
    std::uint64_t rows_ = 0;
    bool begun_ = false;
    std::string problem_;
};

}  // namespace regiond::daemon::pg

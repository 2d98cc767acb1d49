#include "daemon/pg/result_stream.hpp"

#include <cstdio>
#include <iterator>
#include <optional>

#include "daemon/pg/outcome.hpp"

namespace regiond::daemon::pg {

std::string size_text(std::uint64_t bytes) {
    static const char* const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) return std::to_string(bytes) + " bytes";
    double value = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (value >= 1024 && unit + 1 < std::size(units)) {
        value /= 1024;
        ++unit;
    }
    char text[32];
    if (value == static_cast<double>(static_cast<std::uint64_t>(value))) {
        std::snprintf(text, sizeof text, "%llu %s", static_cast<unsigned long long>(value), units[unit]);
    } else {
        std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
    }
    return text;
}

std::unique_ptr<shm::ResponseEncoder> EncoderPool::take() {
    if (free_.empty()) return std::make_unique<shm::ResponseEncoder>(max_chunk_);
    auto e = std::move(free_.back());
    free_.pop_back();
    return e;
}

void EncoderPool::give(std::unique_ptr<shm::ResponseEncoder> encoder) {
    if (encoder && free_.size() < keep_) free_.push_back(std::move(encoder));
}

ResultStream::ResultStream(EncoderPool& pool, std::string_view served_by, std::size_t max_chunk_bytes,
                           std::uint64_t max_result, std::string_view route_reason)
    : served_by_(served_by),
      route_reason_(route_reason),
      max_chunk_(max_chunk_bytes),
      max_result_(max_result),
      pool_(pool) {}

ResultStream::~ResultStream() {
    pool_.give(std::move(encoder_));
}

shm::ResponseEncoder& ResultStream::encoder() {
    if (!encoder_) encoder_ = pool_.take();
    return *encoder_;
}

void ResultStream::reset() {
    // The encoder stays: begin() starts a new response in it.
    ready_.clear();
    taken_bytes_ = 0;
    rows_ = 0;
    begun_ = false;
    problem_.clear();
}

void ResultStream::take(bool last) {
    const auto chunk = encoder().take_chunk(last);
    taken_bytes_ += chunk.size();
    ready_.emplace_back(chunk.begin(), chunk.end());
}

bool ResultStream::begin(const PGresult& r) {
    const int ncols = PQnfields(&r);
    std::vector<std::string_view> names;
    names.reserve(static_cast<std::size_t>(ncols));
    for (int c = 0; c < ncols; ++c) names.emplace_back(PQfname(&r, c));
    shm::ResponseHeadView head;
    head.status = shm::Status::ok;
    head.served_by = served_by_;
    head.route_reason = route_reason_;
    head.columns = names;
    if (auto e = encoder().begin(head); e != shm::CodecError::ok) {
        problem_ = std::string("the result's column names do not fit in a response chunk (") + shm::to_string(e) + ")";
        return false;
    }
    begun_ = true;
    return true;
}

ResultStream::Added ResultStream::add(const PGresult& r) {
    if (!begun_ && !begin(r)) return Added::row_too_large;
    const int ncols = PQnfields(&r);
    const int nrows = PQntuples(&r);
    std::vector<std::optional<std::string_view>> values(static_cast<std::size_t>(ncols));
    for (int row = 0; row < nrows; ++row) {
        for (int c = 0; c < ncols; ++c) {
            if (PQgetisnull(&r, row, c) != 0) {
                values[static_cast<std::size_t>(c)] = std::nullopt;
            } else {
                values[static_cast<std::size_t>(c)] =
                    std::string_view(PQgetvalue(&r, row, c), static_cast<std::size_t>(PQgetlength(&r, row, c)));
            }
        }
        auto e = encoder_->add_row(values);
        if (e == shm::CodecError::chunk_full) {
            take(false);
            e = encoder_->add_row(values);
        }
        ++rows_;
        if (e != shm::CodecError::ok) {
            problem_ = "row " + std::to_string(rows_) + " of the result does not fit in a response chunk of " +
                       std::to_string(encoder_->max_chunk()) + " bytes (" + shm::to_string(e) +
                       "): select fewer or smaller columns";
            return Added::row_too_large;
        }
        if (max_result_ != 0 && bytes() > max_result_) {
            problem_ = "result exceeds daemon.max_result (" + size_text(max_result_) + ")";
            return Added::over_limit;
        }
        if (encoder_->chunk_bytes() >= kStreamChunkBytes) take(false);
    }
    return Added::ok;
}

std::vector<std::vector<std::byte>> ResultStream::finish_ok(std::string_view token, std::int64_t affected,
                                                            bool trailer) {
    if (!begun_) {
        // No result had columns (a write of INSERTs, an empty query): an empty head.
        shm::ResponseHeadView head;
        head.status = shm::Status::ok;
        head.served_by = served_by_;
        head.route_reason = route_reason_;
        head.token = token;
        head.affected = affected;
        encoder().begin(head);
        begun_ = true;
        trailer = false;
    }
    std::vector<std::vector<std::byte>> out(std::make_move_iterator(ready_.begin()),
                                            std::make_move_iterator(ready_.end()));
    ready_.clear();
    if (!trailer) {
        const auto chunk = encoder_->take_chunk(true);
        out.emplace_back(chunk.begin(), chunk.end());
        return out;
    }
    shm::ResponseTrailerView t;
    t.status = shm::Status::ok;
    t.token = token;
    t.affected = affected;
    encoder_->finish(t, out);
    return out;
}

std::vector<std::vector<std::byte>> ResultStream::finish_error(std::string_view message, std::string_view sqlstate,
                                                               bool handed_out) {
    if (!handed_out || !begun_) {
        ready_.clear();
        return error_outcome(served_by_, message, sqlstate, false, max_chunk_, route_reason_).chunks;
    }
    // Chunks taken but not handed out still go (the client checks that chunk
    // indexes follow each other); the error trailer makes it drop every row.
    std::vector<std::vector<std::byte>> out(std::make_move_iterator(ready_.begin()),
                                            std::make_move_iterator(ready_.end()));
    ready_.clear();
    const std::size_t kept = out.size();
    shm::ResponseTrailerView t;
    t.status = shm::Status::error;
    t.sqlstate = sqlstate.size() == 5 ? sqlstate : std::string_view{};
    // The trailer must fit in one chunk: cut an enormous message rather than fail.
    t.error = message.substr(0, max_chunk_ > 512 ? max_chunk_ / 2 : 64);
    if (encoder_->finish(t, out) != shm::CodecError::ok) {
        t.error = "error message too large to encode";
        out.resize(kept);
        encoder_->finish(t, out);
    }
    return out;
}

}  // namespace regiond::daemon::pg

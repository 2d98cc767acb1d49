// shm::ResponseDecoder over a sequence of chunks (what a client library reads
// from its response ring). Input: chunks, each a u16 little-endian length and
// that many bytes (the last one may be shorter). A response that completes is
// read through every accessor and must survive encode -> decode unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_check.hpp"
#include "shm/codec.hpp"

using namespace regiond::shm;

namespace {

void check_same(const Response& a, const Response& b) {
    FUZZ_CHECK(a.status == b.status);
    FUZZ_CHECK(std::strcmp(a.sqlstate, b.sqlstate) == 0);
    FUZZ_CHECK(a.error == b.error && a.served_by == b.served_by && a.token == b.token);
    FUZZ_CHECK(a.affected == b.affected && a.route_reason == b.route_reason);
    FUZZ_CHECK(a.columns == b.columns);
    FUZZ_CHECK(a.nrows() == b.nrows());
    for (std::size_t r = 0; r < a.nrows(); ++r)
        for (std::size_t c = 0; c < a.ncols(); ++c) FUZZ_CHECK(a.value(r, c) == b.value(r, c));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    DecoderLimits limits;
    limits.max_total_bytes = 1 << 20;
    ResponseDecoder decoder(limits);
    std::size_t pos = 0;
    CodecError error = CodecError::ok;
    while (pos + 2 <= size && error == CodecError::ok && !decoder.complete()) {
        std::size_t len = data[pos] | (std::size_t{data[pos + 1]} << 8);
        pos += 2;
        len = std::min(len, size - pos);
        // Each chunk in its own allocation, exactly sized: ASan sees any read past it.
        std::vector<std::byte> chunk(reinterpret_cast<const std::byte*>(data + pos),
                                     reinterpret_cast<const std::byte*>(data + pos + len));
        pos += len;
        error = decoder.feed(chunk);
    }
    if (error != CodecError::ok) {
        // Sticky: nothing more is accepted.
        const std::byte empty[1] = {};
        FUZZ_CHECK(decoder.feed(std::span<const std::byte>(empty, 0)) != CodecError::ok);
        return 0;
    }
    if (!decoder.complete()) return 0;

    const Response& r = decoder.response();
    FUZZ_CHECK(std::strlen(r.sqlstate) == 0 || std::strlen(r.sqlstate) == 5);
    // Rows without columns take no bytes (PostgreSQL's `select from t`), so their
    // count is bounded only by the u32 per chunk: such responses are checked by
    // count, not row by row (4 billion empty rows would only cost time here).
    if (r.ncols() == 0) return 0;
    for (std::size_t row = 0; row < r.nrows(); ++row) {
        for (std::size_t col = 0; col < r.ncols(); ++col) {
            const auto v = r.value(row, col);
            const char* c = r.value_cstr(row, col);
            FUZZ_CHECK(v.has_value() == (c != nullptr));
            if (v) FUZZ_CHECK(c[v->size()] == '\0' && std::memcmp(c, v->data(), v->size()) == 0);
        }
    }
    std::vector<std::vector<std::byte>> chunks;
    if (encode_response(r, 4096, chunks) != CodecError::ok) return 0;  // e.g. a row over 4 KiB
    ResponseDecoder again;
    for (const auto& chunk : chunks) FUZZ_CHECK(again.feed(chunk) == CodecError::ok);
    FUZZ_CHECK(again.complete());
    check_same(r, again.response());
    return 0;
}

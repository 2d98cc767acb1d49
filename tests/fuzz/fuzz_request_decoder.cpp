// shm::decode_request over arbitrary bytes (what a hostile client can put in a
// request record). A request that decodes must encode back to the same bytes:
// the format is canonical (reserved fields are zero, no trailing bytes).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_check.hpp"
#include "shm/codec.hpp"

using namespace regiond::shm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
    RequestView request;
    if (decode_request(in, request) != CodecError::ok) return 0;

    // Every view points into the input.
    auto inside = [&](std::string_view s) {
        return s.empty() || (reinterpret_cast<const std::uint8_t*>(s.data()) >= data &&
                             reinterpret_cast<const std::uint8_t*>(s.data()) + s.size() <= data + size);
    };
    FUZZ_CHECK(inside(request.sql) && inside(request.key) && inside(request.token));
    for (const auto& p : request.params) FUZZ_CHECK(!p || inside(*p));
    for (const auto& k : request.invalidate_keys) FUZZ_CHECK(inside(k));
    FUZZ_CHECK(request.params.size() <= kMaxParams);

    const std::size_t n = encoded_request_size(request);
    FUZZ_CHECK(n == size);
    std::vector<std::byte> again(n);
    FUZZ_CHECK(encode_request(request, again) == n);
    FUZZ_CHECK(std::equal(again.begin(), again.end(), in.begin(), in.end()));
    return 0;
}

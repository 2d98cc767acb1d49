// The consistency-token parser (libclient/src/token.cpp, shm/base/token.cpp) and
// rgd_token_cmp against a reference
// written from API.md's grammar: "SYSTEMID/HI/LO", SYSTEMID 1-20 decimal digits
// with a value below 2^64, HI and LO 1-8 hex digits each, nothing else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "token.hpp"

namespace {

bool reference(std::string_view s) {
    const std::size_t a = s.find('/');
    if (a == std::string_view::npos) return false;
    const std::size_t b = s.find('/', a + 1);
    if (b == std::string_view::npos || s.find('/', b + 1) != std::string_view::npos) return false;
    const std::string_view id = s.substr(0, a), hi = s.substr(a + 1, b - a - 1), lo = s.substr(b + 1);
    if (id.empty() || id.size() > 20) return false;
    unsigned __int128 v = 0;
    for (char c : id) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > UINT64_MAX) return false;
    auto hex = [](std::string_view h) {
        if (h.empty() || h.size() > 8) return false;
        for (char c : h)
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
        return true;
    };
    return hex(hi) && hex(lo);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view token(reinterpret_cast<const char*>(data), size);
    const bool ok = regiond::client::token_well_formed(token);
    FUZZ_CHECK(ok == reference(token));
    const auto error = regiond::client::token_error(token);
    FUZZ_CHECK(error.has_value() == (!ok && !token.empty()));
    if (error) FUZZ_CHECK(!error->empty());
    // rgd_token_cmp: split the input in two at its first NUL (or compare it with
    // itself): comparable only when both are well-formed (or empty), and then
    // antisymmetric.
    const std::size_t nul = token.find('\0');
    const std::string_view a = token.substr(0, nul);
    const std::string_view b = nul == std::string_view::npos ? token : token.substr(nul + 1);
    const int ab = regiond::client::token_cmp(a, b);
    const int ba = regiond::client::token_cmp(b, a);
    const bool a_ok = a.empty() || reference(a), b_ok = b.empty() || reference(b);
    if (!a_ok || !b_ok) {
        FUZZ_CHECK(ab == regiond::client::kTokensNotComparable && ba == ab);
    } else if (ab != regiond::client::kTokensNotComparable) {
        FUZZ_CHECK(ab == -ba);
        FUZZ_CHECK(ab >= -1 && ab <= 1);
    } else {
        FUZZ_CHECK(ba == ab);  // two clusters
    }
    if (a == b && a_ok) FUZZ_CHECK(ab == 0);
    return 0;
}

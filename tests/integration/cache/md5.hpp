// MD5 (RFC 1321) as lowercase hex, to check values against the md5() that
// PostgreSQL computed of them in the same row: the torn-value test's checksum.
// Not for security; small enough that the tests need no crypto library.
#pragma once

#include <string>
#include <string_view>

namespace regiond::testing::cache {

/// The 32 hex digits PostgreSQL's md5(text) returns for `data`.
std::string md5_hex(std::string_view data);

}  // namespace regiond::testing::cache

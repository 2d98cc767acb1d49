// pg::parse_lsn / pg::format_lsn: the backend's names for the tree's one LSN text
// implementation (shm/base/lsn.hpp).
#include "shm/base/lsn.hpp"
#include "daemon/pg/endpoint.hpp"

namespace regiond::daemon::pg {

std::optional<std::uint64_t> parse_lsn(std::string_view text) {
    return base::parse_lsn(text);
}

std::string format_lsn(std::uint64_t lsn) {
    return base::format_lsn(lsn);
}

}  // namespace regiond::daemon::pg

#include "config/config.hpp"

#include <stdexcept>

namespace regiond::config {

const Region* Config::find_region(std::string_view name) const noexcept {
    for (const Region& region : regions)
        if (region.name == name) return &region;
    return nullptr;
}

// A parsed Config always satisfies these; throwing flags a hand-built Config
// that does not, which is a bug in the caller rather than a user error.
const Region& Config::local_region() const {
    if (const Region* region = find_region(daemon.region)) return *region;
    throw std::logic_error("Config::local_region: no region is named daemon.region \"" + daemon.region + "\"");
}

const Region& Config::primary_region() const {
    for (const Region& region : regions)
        if (region.has_primary()) return region;
    throw std::logic_error("Config::primary_region: no region has a primary");
}

}  // namespace regiond::config

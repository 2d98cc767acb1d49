// Internal to regiond_config: the [[regions]] array and the rules that span
// regions (exactly one primary, unique names).
#pragma once

#include <vector>

#include "config/config.hpp"
#include "config/table_reader.hpp"

namespace regiond::config::detail {

struct RegionsRead {
    std::vector<Region> regions;
    // False when a region's name could not be read, so that "daemon.region
    // names no region" is not reported on top of the real error.
    bool all_names_read = true;
};

RegionsRead read_regions(TableReader& top);

}  // namespace regiond::config::detail

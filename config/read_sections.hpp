// Internal to regiond_config: the readers of the single-table sections
// ([daemon], [cache], [consistency], [lag], [health]). The bounds of every key
// live here, next to the key; docs/configuration.md repeats them for users.
#pragma once

#include <toml++/toml.h>

#include "config/config.hpp"
#include "config/table_reader.hpp"

namespace regiond::config::detail {

// A reader for the top-level table `name`, which may be absent (every key then
// reads as absent) or of the wrong type (reported; its keys are not).
TableReader open_section(TableReader& top, std::string_view name);

// Returns the daemon.region value node (nullptr when absent or invalid), for the
// check that it names a configured region.
const toml::node* read_daemon(TableReader& top, DaemonSection& out);
void read_cache(TableReader& top, CacheSection& out);
void read_consistency(TableReader& top, ConsistencySection& out);
void read_lag(TableReader& top, LagSection& out);
void read_health(TableReader& top, HealthSection& out);

}  // namespace regiond::config::detail

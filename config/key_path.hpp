// Internal to regiond_config: spelling the dotted key paths shown in
// diagnostics ("daemon.socket", "regions[1].replicas[0]").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace regiond::config::detail {

// parent + "." + key, quoting the key as TOML would when it is not a bare key
// (`daemon."max lag"`). An empty parent means the top level.
std::string child_key(std::string_view parent, std::string_view key);

// parent + "[index]".
std::string indexed_key(std::string_view parent, std::size_t index);

}  // namespace regiond::config::detail

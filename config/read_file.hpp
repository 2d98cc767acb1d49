// Internal to regiond_config: reading the configuration file into memory.
#pragma once

#include <string>

#include "config/value_or_error.hpp"

namespace regiond::config::detail {

// The whole file, at most 16 MiB (a bigger one is surely not a configuration,
// e.g. /dev/zero). Pipes and /dev/stdin work. The error says why, without the
// path (the caller names the file).
Parsed<std::string> read_text_file(const std::string& path);

}  // namespace regiond::config::detail

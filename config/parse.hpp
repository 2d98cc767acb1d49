// Reading and validating a configuration file.
//
// Every problem is reported in one pass, each with file, line, column and key,
// so one run of `regiond --check-config` shows everything to fix. (A TOML syntax
// error is the exception: the parser cannot go on after it, so it is reported
// alone.) Nothing here throws, and no message repeats a conninfo string or a
// Redis URL, which may hold passwords.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/diagnostic.hpp"

namespace regiond::config {

struct ParseOutcome {
    std::optional<Config> config;    // set exactly when errors is empty
    std::vector<Diagnostic> errors;  // ordered by line, then column

    [[nodiscard]] bool ok() const noexcept { return config.has_value(); }
};

// Reads the file, then as parse_config_string. An unreadable file is one
// diagnostic with line 0 naming the file and the reason.
ParseOutcome parse_config_file(const std::string& path);

// `source_name` names the text in diagnostics and becomes Config::source_path.
// Checks that depend on the host (client_group must exist) are made here too.
ParseOutcome parse_config_string(std::string_view text, std::string_view source_name);

}  // namespace regiond::config

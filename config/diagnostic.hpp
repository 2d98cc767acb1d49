// One problem found in a configuration file, located so an editor can jump to it.
#pragma once

#include <string>

namespace regiond::config {

struct Diagnostic {
    std::string file;
    int line = 0;    // 1-based; 0 when the problem is the file itself (unreadable)
    int column = 0;  // 1-based; 0 as for line
    // Dotted path of the key, arrays indexed: "lag.max_lag", "regions[1].pool_size",
    // "regions[0].replicas[2]". Empty for TOML syntax errors and unreadable files.
    std::string key;
    std::string message;  // never contains a conninfo string or Redis URL

    // "FILE:LINE:COLUMN: KEY: MESSAGE"; the position is left out when line is 0
    // and the key when it is empty.
    [[nodiscard]] std::string to_string() const;
};

}  // namespace regiond::config

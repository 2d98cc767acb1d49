// Internal to regiond_config: toml++'s syntax error text, made safe to print.
#pragma once

#include <string>
#include <string_view>

namespace regiond::config::detail {

// toml++ quotes the characters it tripped over ("saw 'h'", "unknown escape
// sequence '\q'"); when the error is inside a conninfo string or Redis URL those
// are part of a secret. This drops every such quotation and keeps the rest
// (the line and column already say where the problem is). The result reads on
// from "TOML syntax error ": "while parsing string: ...".
std::string safe_syntax_message(std::string_view toml_description);

}  // namespace regiond::config::detail

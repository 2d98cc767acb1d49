// Internal to regiond_config: how non-secret user text appears inside a message.
// Only values that can never hold a secret (durations, sizes, paths, names) go
// through here; conninfo strings and Redis URLs are never quoted at all.
#pragma once

#include <string>
#include <string_view>

namespace regiond::config::detail {

// "text" in double quotes, control characters escaped, cut to a readable length
// so a pasted blob does not flood the terminal.
std::string quote(std::string_view text);

}  // namespace regiond::config::detail

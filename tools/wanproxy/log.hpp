// Logging to stderr, one line per event. The proxy runs in the foreground
// under test harnesses that capture stderr, so there is nothing more to it.
#pragma once

#include <string_view>

namespace wanproxy {

void log_line(std::string_view message);

}  // namespace wanproxy

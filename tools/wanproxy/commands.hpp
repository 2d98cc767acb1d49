// The control commands (status, delay, cut, restore, ...), independent of
// the socket they arrive on.
#pragma once

#include "link.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wanproxy {

using Links = std::vector<std::unique_ptr<Link>>;

// Executes one command line. Returns the reply lines, without the "."
// terminator: the last line is "ok" or a single "error: ..." line.
std::vector<std::string> run_command(std::string_view line, Links& links);

}  // namespace wanproxy

// Checking a libpq connection string without connecting.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace regiond::config {

// nullopt when libpq's PQconninfoParse accepts the string (key=value pairs or a
// postgresql:// URI) and it is not blank; otherwise a reason.
//
// The reason is one of a fixed set of phrases and never contains any part of
// the input: conninfo strings carry passwords, and libpq's own messages quote
// the offending text (`missing "=" after "hunter2"`), so they are not passed on.
std::optional<std::string> conninfo_problem(std::string_view conninfo);

}  // namespace regiond::config

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
//
// A postgresql:// URI must have at most one '@' (the one that ends the user
// info), and no '@' after a '/' before its query: libpq takes the user info up to
// the FIRST '@', so an unescaped '@' in a password (postgresql://app:p@ss@db/app)
// would make the rest of the password part of the host name, where it shows in
// display names and libpq's messages. The reason asks for %40 instead.
std::optional<std::string> conninfo_problem(std::string_view conninfo);

// What status, metrics, logs, the state segment and error messages call an
// endpoint: "host:port" (the host list and port list as given, "local" without a
// host). Never user info: each host is cut after its last '@'. A port that is not
// digits is not shown (it could only come from a malformed URI).
std::string conninfo_display_name(const std::string& conninfo);

}  // namespace regiond::config

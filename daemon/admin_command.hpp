// The admin socket's line protocol (regionctl status/metrics/cache). The client
// sends one line; the daemon answers and closes:
//   ok\n<body>            or            error: <message>\n
// Parsing is pure and unit-tested; admin_server.cpp does the I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace regiond::daemon {

struct AdminCommand {
    enum class Kind { status, status_json, metrics, cache_flush, help, invalid };
    Kind kind = Kind::invalid;
    std::vector<std::string> keys;  ///< cache flush: the keys (empty: everything)
    std::string error;              ///< invalid: what was wrong, listing the commands
};

/// The commands, for error messages and `help`.
std::string admin_command_list();

/// `line` without its newline; surrounding blanks and a trailing '\r' are ignored.
AdminCommand parse_admin_command(std::string_view line);

/// The reply framing.
std::string admin_ok(std::string_view body);
std::string admin_error(std::string_view message);

}  // namespace regiond::daemon

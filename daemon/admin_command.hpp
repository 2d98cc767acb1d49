// The admin socket's line protocol (regionctl status/metrics/cache). The client
// sends one line; the daemon answers and closes:
//   ok\n<body>            or            error: <message>\n
// Parsing is pure and unit-tested; admin_server.cpp does the I/O.
//
// Every command has an entry in the command table (admin_command.cpp) that says
// whether it only reads (status, metrics: open to whoever may connect to the
// admin socket, i.e. the client group) or changes the daemon's state (admins
// only: root, the daemon's user, daemon.admin_group). An entry is admin-only
// unless it is marked read_only, so a new command is safe by default.
#pragma once

#include <span>
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

enum class AdminAccess {
    read_only,      ///< anyone the access policy lets connect
    changes_state,  ///< admins only (check_admin in access_policy.hpp)
};

struct AdminCommandInfo {
    AdminCommand::Kind kind = AdminCommand::Kind::invalid;
    std::string_view name;                            ///< "cache flush": for messages
    std::string_view usage;                           ///< "cache flush [KEY...]": for the command list
    AdminAccess access = AdminAccess::changes_state;  ///< the default is the strict one
};

/// The command table, in the order `help` lists it.
std::span<const AdminCommandInfo> admin_commands();

/// The table entry of a kind; nullptr for Kind::invalid (and any kind without one).
const AdminCommandInfo* admin_command_info(AdminCommand::Kind kind);

/// True unless the command's entry marks it read_only (a kind without an entry
/// counts as changing state).
bool admin_only(AdminCommand::Kind kind);

/// The commands, for error messages and `help`.
std::string admin_command_list();

/// `line` without its newline; surrounding blanks and a trailing '\r' are ignored.
AdminCommand parse_admin_command(std::string_view line);

/// The reply framing.
std::string admin_ok(std::string_view body);
std::string admin_error(std::string_view message);

}  // namespace regiond::daemon

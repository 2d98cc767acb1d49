// The admin socket protocol (daemon.admin_socket): regionctl sends one line
// ("status", "status json", "metrics", "cache flush [KEY...]"); the daemon
// answers a first line "ok" or "error: <message>", then the body, then closes.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace regiond::ctl {

struct AdminReply {
    bool reached = false;  ///< false: `error` says why the daemon could not be reached
    bool ok = false;       ///< the first line was "ok"
    std::string error;     ///< the daemon's message after "error: ", or why it was not reached
    std::string body;      ///< everything after the first line
};

/// Splits a complete answer into its status line and body.
AdminReply parse_admin_reply(std::string_view answer);

/// Sends `line` (without its newline) to the admin socket at `path` and reads the
/// answer until the daemon closes, within `timeout`.
AdminReply admin_request(const std::string& path, std::string_view line, std::chrono::milliseconds timeout);

}  // namespace regiond::ctl

// The daemon's log: one line per event on stderr, which systemd sends to the
// journal. Under systemd (JOURNAL_STREAM set) each line starts with a syslog
// priority prefix ("<6>"), which the journal turns into the entry's priority;
// on a terminal it starts with the level name instead.
//
// Nothing logged here may contain a conninfo string, a Redis URL or a password:
// callers log display names ("host:port") and the messages the backends mark as
// safe to show.
#pragma once

#include <functional>
#include <string_view>

namespace regiond::daemon::log {

enum class Level : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/// Writes one line (a '\n' is appended; embedded newlines become spaces so an
/// entry is never split).
void write(Level level, std::string_view message);

inline void error(std::string_view message) {
    write(Level::error, message);
}
inline void warning(std::string_view message) {
    write(Level::warning, message);
}
inline void notice(std::string_view message) {
    write(Level::notice, message);
}
inline void info(std::string_view message) {
    write(Level::info, message);
}

/// Tests capture the log with a sink; an empty function restores stderr.
using Sink = std::function<void(Level, std::string_view)>;
void set_sink(Sink sink);

}  // namespace regiond::daemon::log

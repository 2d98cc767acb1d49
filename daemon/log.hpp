// The daemon's log: one line per event on stderr, which systemd sends to the
// journal. Under systemd (JOURNAL_STREAM set) each line starts with a syslog
// priority prefix ("<6>"), which the journal turns into the entry's priority;
// on a terminal it starts with the level name instead.
//
// Nothing logged here may contain a conninfo string, a Redis URL or a password:
// callers log display names ("host:port") and the messages the backends mark as
// safe to show.
//
// Messages carry text from clients (program names, SQL in errors), so every line
// is escaped (escape() below): no client can end a line early, forge another
// entry, or send escape sequences to the terminal that shows the log.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace regiond::daemon::log {

enum class Level : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/// Writes one line: escape(message), then '\n'.
void write(Level level, std::string_view message);

/// The message as it is logged: valid UTF-8 printable text is kept; `\` becomes
/// `\\`, newline, carriage return and tab become `\n`, `\r`, `\t`; every other
/// control character (C0, DEL, and C1 U+0080..U+009F) and every byte that is not
/// part of valid UTF-8 becomes `\xNN` per byte; the line and paragraph
/// separators U+2028/U+2029 (line breaks to some viewers) become `\u2028`/`\u2029`.
std::string escape(std::string_view message);

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

#include "daemon/log.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace regiond::daemon::log {
namespace {

Sink& sink() {
    static Sink instance;
    return instance;
}

// systemd sets JOURNAL_STREAM when stderr is connected to the journal.
bool journal_prefixes() {
    static const bool under_journal = std::getenv("JOURNAL_STREAM") != nullptr;
    return under_journal;
}

const char* level_name(Level level) {
    switch (level) {
        case Level::error: return "error";
        case Level::warning: return "warning";
        case Level::notice: return "notice";
        case Level::info: return "info";
        case Level::debug: return "debug";
    }
    return "info";
}

}  // namespace

void write(Level level, std::string_view message) {
    std::string line;
    line.reserve(message.size() + 16);
    if (journal_prefixes()) {
        line += '<';
        line += std::to_string(static_cast<int>(level));
        line += '>';
    } else {
        line += "regiond ";
        line += level_name(level);
        line += ": ";
    }
    for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;

    if (sink()) {
        sink()(level, std::string_view(line).substr(line.size() - message.size()));
        return;
    }
    line += '\n';
    // One write per line so lines of concurrent writers (none today) never mix.
    // A failed write to stderr has nowhere to be reported.
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
}

void set_sink(Sink new_sink) {
    sink() = std::move(new_sink);
}

}  // namespace regiond::daemon::log

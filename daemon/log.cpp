#include "daemon/log.hpp"

#include <unistd.h>

#include <cstdint>
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

void append_hex_byte(std::string& out, unsigned char byte) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[byte >> 4];
    out += kHex[byte & 0xF];
}

// Length of the valid UTF-8 sequence at text[i] (2 to 4 bytes: the caller has
// handled ASCII), or 0 if it is not one: a lead byte followed by the right number
// of continuation bytes, no overlong form, no surrogate, nothing above U+10FFFF.
std::size_t utf8_sequence(std::string_view text, std::size_t i, std::uint32_t& code_point) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
    const unsigned char lead = byte(0);
    std::size_t length = 0;
    std::uint32_t min = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        code_point = lead & 0x1F;
        min = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        code_point = lead & 0x0F;
        min = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        code_point = lead & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    for (std::size_t k = 1; k < length; ++k) {
        if ((byte(k) & 0xC0) != 0x80) return 0;
        code_point = (code_point << 6) | (byte(k) & 0x3F);
    }
    if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) return 0;
    return length;
}

}  // namespace

std::string escape(std::string_view message) {
    std::string out;
    out.reserve(message.size());
    std::size_t i = 0;
    while (i < message.size()) {
        const auto c = static_cast<unsigned char>(message[i]);
        if (c < 0x80) {
            switch (c) {
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                default:
                    if (c < 0x20 || c == 0x7F)
                        append_hex_byte(out, c);
                    else
                        out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        std::uint32_t code_point = 0;
        const std::size_t length = utf8_sequence(message, i, code_point);
        if (length == 0 || (code_point >= 0x80 && code_point <= 0x9F)) {
            // Not UTF-8 (a lone 0x9B is CSI to some terminals), or a C1 control:
            // each byte of it, escaped.
            const std::size_t bytes = length == 0 ? 1 : length;
            for (std::size_t k = 0; k < bytes; ++k) append_hex_byte(out, static_cast<unsigned char>(message[i + k]));
            i += bytes;
            continue;
        }
        if (code_point == 0x2028 || code_point == 0x2029) {
            out += code_point == 0x2028 ? "\\u2028" : "\\u2029";
        } else {
            out.append(message.substr(i, length));
        }
        i += length;
    }
    return out;
}

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
    const std::size_t prefix = line.size();
    line += escape(message);

    if (sink()) {
        sink()(level, std::string_view(line).substr(prefix));
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

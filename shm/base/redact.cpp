#include "shm/base/redact.hpp"

#include <cctype>

namespace regiond::base {
namespace {

constexpr std::string_view kRedacted = "[redacted]";

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool equals_ignoring_case(std::string_view text, std::string_view lower) noexcept {
    if (text.size() != lower.size()) return false;
    for (std::size_t i = 0; i < text.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(text[i])) != lower[i]) return false;
    return true;
}

// The end of a password value starting at `i` (just after "password=" and any
// blanks): a quoted value to its closing quote (a backslash escapes in single
// quotes, as in libpq's conninfo), anything else to the next blank.
std::size_t value_end(std::string_view text, std::size_t i) noexcept {
    if (i >= text.size()) return i;
    const char quote = text[i];
    if (quote == '\'' || quote == '"') {
        for (std::size_t j = i + 1; j < text.size(); ++j) {
            if (quote == '\'' && text[j] == '\\') {
                ++j;
                continue;
            }
            if (text[j] == quote) return j + 1;
        }
        return text.size();
    }
    while (i < text.size() && !is_space(text[i])) ++i;
    return i;
}

// Pass 1: password=VALUE -> password=[redacted].
std::string redact_passwords(std::string_view text) {
    constexpr std::string_view key = "password";
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        if (i + key.size() <= text.size() && equals_ignoring_case(text.substr(i, key.size()), key)) {
            std::size_t j = i + key.size();
            while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
            if (j < text.size() && text[j] == '=') {
                ++j;
                while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
                out.append(text.substr(i, j - i));
                out.append(kRedacted);
                i = value_end(text, j);
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

// Pass 2: scheme://USERINFO@rest -> scheme://[redacted]@rest. The URI runs to
// the next blank (a quote may be part of a careless password); its last '@' ends
// the user info (a password may hold '@', ':', '/' and '?' when written
// carelessly; host and port never hold '@').
std::string redact_uri_user_info(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t sep = text.find("://", i);
        if (sep == std::string_view::npos || sep == 0 || !std::isalpha(static_cast<unsigned char>(text[sep - 1]))) {
            const std::size_t upto = sep == std::string_view::npos ? text.size() : sep + 3;
            out.append(text.substr(i, upto - i));
            i = upto;
            continue;
        }
        const std::size_t start = sep + 3;
        std::size_t end = start;
        while (end < text.size() && !is_space(text[end])) ++end;
        const std::size_t at = text.substr(start, end - start).rfind('@');
        out.append(text.substr(i, start - i));
        if (at == std::string_view::npos) {
            out.append(text.substr(start, end - start));
        } else {
            out.append(kRedacted);
            out.append(text.substr(start + at, end - start - at));  // from the '@' on
        }
        i = end;
    }
    return out;
}

// Pass 3: any other '@' -> the word before it (to the previous blank) is
// replaced, keeping a leading quote or bracket so the message still reads.
std::string redact_words_before_at(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t word_start = 0;  // index in `out` where the current word begins
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (is_space(c)) {
            out += c;
            word_start = out.size();
            continue;
        }
        if (c != '@') {
            out += c;
            continue;
        }
        const std::string_view word = std::string_view(out).substr(word_start);
        const bool done = word.size() >= kRedacted.size() && word.substr(word.size() - kRedacted.size()) == kRedacted;
        if (!done && !word.empty()) {
            std::size_t keep = 0;
            const char first = word.front();
            if (first == '"' || first == '\'' || first == '(' || first == '[' || first == '<') keep = 1;
            out.resize(word_start + keep);
            out.append(kRedacted);
        }
        out += '@';
    }
    return out;
}

}  // namespace

std::string redact_secrets(std::string_view text) {
    return redact_words_before_at(redact_uri_user_info(redact_passwords(text)));
}

std::string without_user_info(std::string_view hosts) {
    std::string out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t comma = hosts.find(',', start);
        std::string_view host =
            hosts.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (const std::size_t at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
        out.append(host);
        if (comma == std::string_view::npos) break;
        out += ',';
        start = comma + 1;
    }
    return out;
}

}  // namespace regiond::base

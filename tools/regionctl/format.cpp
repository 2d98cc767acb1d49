#include "format.hpp"

#include <algorithm>
#include <cstdint>

namespace regiond::ctl {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not valid (overlong
// forms, surrogates and code points above U+10FFFF are invalid, as in RFC 3629).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    for (;;) {
        const std::size_t nl = text.find('\n', start);
        if (nl == std::string_view::npos) {
            lines.push_back(text.substr(start));
            return lines;
        }
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
}

void pad(std::string& out, std::size_t n) {
    out.append(n, ' ');
}

}  // namespace

std::size_t display_width(std::string_view text) {
    std::size_t width = 0;
    for (char c : text)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
    return width;
}

std::string json_string(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out += '"';
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            const std::size_t n = utf8_sequence(text, i);
            if (n == 0) {
                out += "\\ufffd";  // invalid byte: the replacement character
                ++i;
            } else {
                out.append(text.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    static constexpr char kHex[] = "0123456789abcdef";
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xF];
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
    return out;
}

std::string format_json(const Table& t) {
    std::string out = "{\"served_by\":" + json_string(t.served_by) +
                      ",\"route_reason\":" + json_string(t.route_reason) + ",\"token\":" + json_string(t.token) +
                      ",\"affected\":" + std::to_string(t.affected) + ",\"columns\":[";
    for (std::size_t c = 0; c < t.columns.size(); ++c) {
        if (c) out += ',';
        out += json_string(t.columns[c]);
    }
    out += "],\"rows\":[";
    for (std::size_t r = 0; r < t.rows.size(); ++r) {
        if (r) out += ',';
        out += '[';
        for (std::size_t c = 0; c < t.rows[r].size(); ++c) {
            if (c) out += ',';
            out += t.rows[r][c] ? json_string(*t.rows[r][c]) : "null";
        }
        out += ']';
    }
    out += "]}\n";
    return out;
}

std::string format_aligned(const Table& t) {
    std::string out;
    const std::size_t ncols = t.columns.size();
    if (ncols != 0) {
        std::vector<std::size_t> width(ncols);
        for (std::size_t c = 0; c < ncols; ++c) width[c] = display_width(t.columns[c]);
        for (const auto& row : t.rows)
            for (std::size_t c = 0; c < ncols && c < row.size(); ++c)
                if (row[c])
                    for (std::string_view line : split_lines(*row[c]))
                        width[c] = std::max(width[c], display_width(line));

        // Header: names centred (psql), no trailing blanks.
        std::string header;
        for (std::size_t c = 0; c < ncols; ++c) {
            if (c) header += '|';
            const std::size_t w = display_width(t.columns[c]);
            const std::size_t left = (width[c] - w) / 2;
            header += ' ';
            pad(header, left);
            header += t.columns[c];
            pad(header, width[c] - w - left);
            header += ' ';
        }
        while (!header.empty() && header.back() == ' ') header.pop_back();
        out += header + '\n';
        for (std::size_t c = 0; c < ncols; ++c) {
            if (c) out += '+';
            out.append(width[c] + 2, '-');
        }
        out += '\n';

        for (const auto& row : t.rows) {
            std::vector<std::vector<std::string_view>> cells(ncols);
            std::size_t height = 1;
            for (std::size_t c = 0; c < ncols; ++c) {
                cells[c] = c < row.size() && row[c] ? split_lines(*row[c]) : std::vector<std::string_view>{""};
                height = std::max(height, cells[c].size());
            }
            for (std::size_t line = 0; line < height; ++line) {
                std::string text;
                for (std::size_t c = 0; c < ncols; ++c) {
                    if (c) text += '|';
                    const std::string_view part = line < cells[c].size() ? cells[c][line] : std::string_view();
                    const bool continues = line + 1 < cells[c].size();
                    text += ' ';
                    text += part;
                    const bool last = c + 1 == ncols;
                    if (!last || continues) pad(text, width[c] - display_width(part));
                    if (continues) {
                        text += '+';
                    } else if (!last) {
                        text += ' ';
                    }
                }
                out += text + '\n';
            }
        }
        out += "(" + std::to_string(t.rows.size()) + (t.rows.size() == 1 ? " row)\n" : " rows)\n");
    }
    out += "served_by: " + t.served_by + '\n';
    if (!t.route_reason.empty()) out += "route_reason: " + t.route_reason + '\n';
    if (!t.token.empty()) out += "token: " + t.token + '\n';
    if (t.affected >= 0) out += "affected: " + std::to_string(t.affected) + '\n';
    return out;
}

}  // namespace regiond::ctl

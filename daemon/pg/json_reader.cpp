#include "daemon/pg/json_reader.hpp"

namespace regiond::daemon::pg {
namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
        out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
}

}  // namespace

JsonReader::Event JsonReader::fail(std::string why) {
    if (error_.empty()) error_ = std::move(why) + " at byte " + std::to_string(pos_);
    expect_ = Expect::done;
    pos_ = text_.size() + 1;  // marks the reader as failed for good
    return Event::error;
}

void JsonReader::skip_space() {
    while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ++pos_;
    }
}

bool JsonReader::read_string() {
    // text_[pos_] == '"'
    const std::size_t start = ++pos_;
    bool escaped = false;
    while (pos_ < text_.size() && text_[pos_] != '"') {
        const auto c = static_cast<unsigned char>(text_[pos_]);
        if (c < 0x20) return false;
        if (c == '\\') {
            escaped = true;
            pos_ += 2;
        } else {
            ++pos_;
        }
    }
    if (pos_ >= text_.size()) return false;
    const std::string_view raw = text_.substr(start, pos_ - start);
    ++pos_;  // the closing quote
    if (!escaped) {
        value_ = raw;
        return true;
    }
    scratch_.clear();
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
            scratch_.push_back(raw[i]);
            continue;
        }
        if (++i >= raw.size()) return false;
        switch (raw[i]) {
            case '"': scratch_.push_back('"'); break;
            case '\\': scratch_.push_back('\\'); break;
            case '/': scratch_.push_back('/'); break;
            case 'b': scratch_.push_back('\b'); break;
            case 'f': scratch_.push_back('\f'); break;
            case 'n': scratch_.push_back('\n'); break;
            case 'r': scratch_.push_back('\r'); break;
            case 't': scratch_.push_back('\t'); break;
            case 'u': {
                auto read4 = [&](std::size_t at, std::uint32_t& cp) {
                    if (at + 4 > raw.size()) return false;
                    cp = 0;
                    for (std::size_t k = 0; k < 4; ++k) {
                        const int d = hex_digit(raw[at + k]);
                        if (d < 0) return false;
                        cp = cp * 16 + static_cast<std::uint32_t>(d);
                    }
                    return true;
                };
                std::uint32_t cp = 0;
                if (!read4(i + 1, cp)) return false;
                i += 4;
                if (cp >= 0xd800 && cp < 0xdc00) {
                    std::uint32_t low = 0;
                    if (i + 2 < raw.size() && raw[i + 1] == '\\' && raw[i + 2] == 'u' && read4(i + 3, low) &&
                        low >= 0xdc00 && low < 0xe000) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                        i += 6;
                    } else {
                        cp = 0xfffd;  // a lone surrogate: kept visible, never decoded as something else
                    }
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    cp = 0xfffd;
                }
                append_utf8(scratch_, cp);
                break;
            }
            default: return false;
        }
    }
    value_ = scratch_;
    return true;
}

bool JsonReader::read_number() {
    const std::size_t start = pos_;
    auto digits = [&] {
        const std::size_t from = pos_;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
        return pos_ > from;
    };
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    if (!digits()) return false;
    if (pos_ < text_.size() && text_[pos_] == '.') {
        ++pos_;
        if (!digits()) return false;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
        if (!digits()) return false;
    }
    value_ = text_.substr(start, pos_ - start);
    return true;
}

JsonReader::Event JsonReader::after_value(Event e) {
    expect_ = stack_.empty() ? Expect::done : Expect::comma_or_end;
    return e;
}

JsonReader::Event JsonReader::value_event() {
    if (pos_ >= text_.size()) return fail("unexpected end of JSON");
    const char c = text_[pos_];
    switch (c) {
        case '{':
        case '[':
            if (stack_.size() >= max_depth_) {
                too_deep_ = true;
                return fail("JSON nested deeper than " + std::to_string(max_depth_));
            }
            ++pos_;
            stack_.push_back(c);
            expect_ = c == '{' ? Expect::first_key_or_end : Expect::first_value_or_end;
            return c == '{' ? Event::object_begin : Event::array_begin;
        case '"':
            if (!read_string()) return fail("bad JSON string");
            return after_value(Event::string);
        case 't':
            if (text_.substr(pos_, 4) != "true") return fail("bad JSON literal");
            pos_ += 4;
            return after_value(Event::true_value);
        case 'f':
            if (text_.substr(pos_, 5) != "false") return fail("bad JSON literal");
            pos_ += 5;
            return after_value(Event::false_value);
        case 'n':
            if (text_.substr(pos_, 4) != "null") return fail("bad JSON literal");
            pos_ += 4;
            return after_value(Event::null_value);
        default:
            if (c == '-' || (c >= '0' && c <= '9')) {
                if (!read_number()) return fail("bad JSON number");
                return after_value(Event::number);
            }
            return fail("unexpected character in JSON");
    }
}

JsonReader::Event JsonReader::next() {
    if (pos_ > text_.size()) return Event::error;
    skip_space();
    switch (expect_) {
        case Expect::done:
            if (pos_ != text_.size()) return fail("text after the JSON document");
            return Event::end;
        case Expect::value: return value_event();
        case Expect::first_value_or_end:
            if (pos_ < text_.size() && text_[pos_] == ']') {
                ++pos_;
                stack_.pop_back();
                return after_value(Event::array_end);
            }
            return value_event();
        case Expect::first_key_or_end:
            if (pos_ < text_.size() && text_[pos_] == '}') {
                ++pos_;
                stack_.pop_back();
                return after_value(Event::object_end);
            }
            [[fallthrough]];
        case Expect::key:
            if (pos_ >= text_.size() || text_[pos_] != '"' || !read_string()) return fail("expected a JSON key");
            expect_ = Expect::colon;
            return Event::key;
        case Expect::colon:
            if (pos_ >= text_.size() || text_[pos_] != ':') return fail("expected ':' in JSON");
            ++pos_;
            skip_space();
            return value_event();
        case Expect::comma_or_end: {
            if (pos_ >= text_.size()) return fail("unexpected end of JSON");
            const char c = text_[pos_++];
            const char open = stack_.back();
            if (c == ',') {
                if (open == '{') {
                    skip_space();
                    if (pos_ >= text_.size() || text_[pos_] != '"' || !read_string())
                        return fail("expected a JSON key");
                    expect_ = Expect::colon;
                    return Event::key;
                }
                skip_space();
                return value_event();
            }
            if ((c == '}' && open == '{') || (c == ']' && open == '[')) {
                stack_.pop_back();
                return after_value(open == '{' ? Event::object_end : Event::array_end);
            }
            return fail("expected ',' or the end of a JSON container");
        }
    }
    return fail("bad JSON reader state");
}

}  // namespace regiond::daemon::pg

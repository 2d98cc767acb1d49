// A minimal strict JSON reader for the tests: enough to check that `status json`
// is valid JSON and to look values up. Throws std::runtime_error on bad input.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace regiond::testing {

struct Json {
    using Object = std::map<std::string, Json>;
    using Array = std::vector<Json>;
    std::variant<std::nullptr_t, bool, double, std::string, std::shared_ptr<Array>, std::shared_ptr<Object>> value;

    const Json& operator[](const std::string& key) const {
        const auto& object = *std::get<std::shared_ptr<Object>>(value);
        auto it = object.find(key);
        if (it == object.end()) throw std::runtime_error("no key " + key);
        return it->second;
    }
    const Array& array() const { return *std::get<std::shared_ptr<Array>>(value); }
    const Object& object() const { return *std::get<std::shared_ptr<Object>>(value); }
    const std::string& str() const { return std::get<std::string>(value); }
    double num() const { return std::get<double>(value); }
    bool boolean() const { return std::get<bool>(value); }

    static Json parse(std::string_view text) {
        std::size_t i = 0;
        Json j = parse_value(text, i);
        skip(text, i);
        if (i != text.size()) throw std::runtime_error("trailing characters in JSON");
        return j;
    }

private:
    static void skip(std::string_view t, std::size_t& i) {
        while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r')) ++i;
    }
    static void expect(std::string_view t, std::size_t& i, char c) {
        skip(t, i);
        if (i >= t.size() || t[i] != c)
            throw std::runtime_error(std::string("JSON: expected ") + c + " at " + std::to_string(i));
        ++i;
    }
    static std::string parse_string(std::string_view t, std::size_t& i) {
        expect(t, i, '"');
        std::string out;
        while (i < t.size() && t[i] != '"') {
            char c = t[i++];
            if (static_cast<unsigned char>(c) < 0x20) throw std::runtime_error("JSON: control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i >= t.size()) break;
            const char e = t[i++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u': {
                    if (i + 4 > t.size()) throw std::runtime_error("JSON: bad \\u escape");
                    const long code = std::strtol(std::string(t.substr(i, 4)).c_str(), nullptr, 16);
                    i += 4;
                    out += code < 0x80 ? static_cast<char>(code) : '?';
                    break;
                }
                default: throw std::runtime_error("JSON: bad escape");
            }
        }
        expect(t, i, '"');
        return out;
    }
    static Json parse_value(std::string_view t, std::size_t& i) {
        skip(t, i);
        if (i >= t.size()) throw std::runtime_error("JSON: unexpected end");
        Json j;
        const char c = t[i];
        if (c == '{') {
            ++i;
            auto object = std::make_shared<Object>();
            skip(t, i);
            if (i < t.size() && t[i] == '}') {
                ++i;
            } else {
                for (;;) {
                    std::string key = parse_string(t, i);
                    expect(t, i, ':');
                    (*object)[key] = parse_value(t, i);
                    skip(t, i);
                    if (i < t.size() && t[i] == ',') {
                        ++i;
                        continue;
                    }
                    expect(t, i, '}');
                    break;
                }
            }
            j.value = object;
        } else if (c == '[') {
            ++i;
            auto array = std::make_shared<Array>();
            skip(t, i);
            if (i < t.size() && t[i] == ']') {
                ++i;
            } else {
                for (;;) {
                    array->push_back(parse_value(t, i));
                    skip(t, i);
                    if (i < t.size() && t[i] == ',') {
                        ++i;
                        continue;
                    }
                    expect(t, i, ']');
                    break;
                }
            }
            j.value = array;
        } else if (c == '"') {
            j.value = parse_string(t, i);
        } else if (t.substr(i, 4) == "true") {
            i += 4;
            j.value = true;
        } else if (t.substr(i, 5) == "false") {
            i += 5;
            j.value = false;
        } else if (t.substr(i, 4) == "null") {
            i += 4;
            j.value = nullptr;
        } else {
            const std::string rest(t.substr(i, 64));
            char* end = nullptr;
            const double d = std::strtod(rest.c_str(), &end);
            if (end == rest.c_str()) throw std::runtime_error("JSON: bad value at " + std::to_string(i));
            i += static_cast<std::size_t>(end - rest.c_str());
            j.value = d;
        }
        return j;
    }
};

}  // namespace regiond::testing

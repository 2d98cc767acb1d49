#include "links_file.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace wanproxy {

std::optional<double> parse_delay_ms(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    double value = 0;
    // chars_format::fixed accepts plain decimals only: no exponent, no
    // "inf"/"nan" spellings, no hex.
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
    if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value) || value < 0 ||
        value > kMaxDelayMs) {
        return std::nullopt;
    }
    return value;
}

std::int64_t delay_ms_to_ns(double ms) {
    return static_cast<std::int64_t>(std::llround(ms * 1e6));
}

std::string format_delay_ms(double ms) {
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ms);
    if (ec != std::errc{}) {
        return "?";
    }
    return std::string(buf, end);
}

Outcome<std::vector<LinkSpec>> parse_links_file(const std::string& path) {
    using R = Outcome<std::vector<LinkSpec>>;
    std::ifstream in(path);
    if (!in) {
        return R::fail(path + ": cannot open the links file");
    }
    std::vector<LinkSpec> links;
    std::set<std::string> names;
    std::set<std::string> listens;
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        const std::string where = path + ":" + std::to_string(line_no) + ": ";
        if (const auto hash = line.find('#'); hash != std::string::npos) {
            line.erase(hash);
        }
        std::istringstream fields(line);
        std::vector<std::string> words;
        for (std::string word; fields >> word;) {
            words.push_back(word);
        }
        if (words.empty()) {
            continue;
        }
        if (words.size() != 4) {
            return R::fail(where + "expected 4 fields 'NAME LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS', got " +
                           std::to_string(words.size()));
        }
        LinkSpec spec;
        spec.name = words[0];
        // '*' is the glob character of the control commands; a name holding
        // one could not be addressed on its own.
        if (spec.name.find('*') != std::string::npos) {
            return R::fail(where + "link name '" + spec.name + "' must not contain '*'");
        }
        if (!names.insert(spec.name).second) {
            return R::fail(where + "link name '" + spec.name + "' is defined twice");
        }
        auto listen = resolve_endpoint(words[1], true);
        if (!listen.value) {
            return R::fail(where + "listen address: " + listen.error);
        }
        auto target = resolve_endpoint(words[2], false);
        if (!target.value) {
            return R::fail(where + "target address: " + target.error);
        }
        if (!listens.insert(words[1]).second) {
            return R::fail(where + "listen address " + words[1] + " is used by an earlier link");
        }
        const auto delay = parse_delay_ms(words[3]);
        if (!delay) {
            return R::fail(where + "delay '" + words[3] +
                           "' must be a decimal number of milliseconds from 0 to 3600000, e.g. 17.5");
        }
        spec.listen = std::move(*listen.value);
        spec.target = std::move(*target.value);
        spec.delay_ms = *delay;
        links.push_back(std::move(spec));
    }
    if (in.bad()) {
        return R::fail(path + ": read error");
    }
    if (links.empty()) {
        return R::fail(path + ": no links defined; add lines 'NAME LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS'");
    }
    return R::ok(std::move(links));
}

}  // namespace wanproxy

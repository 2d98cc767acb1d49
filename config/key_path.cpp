#include "config/key_path.hpp"

#include <algorithm>
#include <cctype>

#include "config/quote.hpp"

namespace regiond::config::detail {
namespace {

bool is_bare_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

}  // namespace

std::string child_key(std::string_view parent, std::string_view key) {
    std::string out(parent);
    if (!out.empty()) out += '.';
    out += is_bare_key(key) ? std::string(key) : quote(key);
    return out;
}

std::string indexed_key(std::string_view parent, std::size_t index) {
    return std::string(parent) + '[' + std::to_string(index) + ']';
}

}  // namespace regiond::config::detail

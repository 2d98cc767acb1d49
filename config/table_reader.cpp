#include "config/table_reader.hpp"

#include <algorithm>

#include "config/key_path.hpp"

namespace regiond::config::detail {
namespace {

// Levenshtein distance, for "did you mean ...?" on misspelt keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string unknown_key_message(std::string_view key, const std::vector<std::string>& known,
                                std::string_view table_path) {
    std::string message = "unknown key";
    const std::string_view where = table_path.empty() ? "at the top level" : "here";
    const auto closest = std::min_element(known.begin(), known.end(), [&](const std::string& x, const std::string& y) {
        return edit_distance(key, x) < edit_distance(key, y);
    });
    if (closest != known.end() && edit_distance(key, *closest) <= 2 && edit_distance(key, *closest) < key.size())
        return message + "; did you mean \"" + *closest + "\"?";
    message += " (valid keys " + std::string(where) + ": ";
    for (std::size_t i = 0; i < known.size(); ++i) message += (i > 0 ? ", " : "") + known[i];
    return message + ")";
}

}  // namespace

TableReader::TableReader(const toml::table* table, Place place, DiagnosticSink& sink)
    : table_(table), place_(std::move(place)), sink_(sink) {}

const toml::node* TableReader::find(std::string_view key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
    return table_ != nullptr ? table_->get(key) : nullptr;
}

std::string TableReader::path_of(std::string_view key) const {
    return child_key(place_.path, key);
}

void TableReader::missing(std::string_view key) {
    if (!place_.report_missing) return;
    sink_.error(place_.where, path_of(key), "required key is missing" + place_.missing_hint);
}

bool TableReader::string(std::string_view key, std::string& out, StringCheck check) {
    const toml::node* node = find(key);
    if (node == nullptr) return false;
    auto value = read_string(*node, path_of(key), sink_, check);
    if (value) out = std::move(*value);
    return value.has_value();
}

bool TableReader::required_string(std::string_view key, std::string& out, StringCheck check) {
    if (find(key) == nullptr) {
        missing(key);
        return false;
    }
    return string(key, out, check);
}

bool TableReader::optional_string(std::string_view key, std::optional<std::string>& out, StringCheck check) {
    std::string value;
    if (!string(key, value, check)) return false;
    out = std::move(value);
    return true;
}

bool TableReader::duration(std::string_view key, std::chrono::nanoseconds& out, std::chrono::nanoseconds min,
                           std::chrono::nanoseconds max) {
    const toml::node* node = find(key);
    if (node == nullptr) return false;
    const auto value = read_duration(*node, path_of(key), sink_, min, max);
    if (value) out = *value;
    return value.has_value();
}

bool TableReader::size(std::string_view key, std::uint64_t& out, std::uint64_t min, std::uint64_t max,
                       SizeCheck check) {
    const toml::node* node = find(key);
    if (node == nullptr) return false;
    const auto value = read_size(*node, path_of(key), sink_, min, max, check);
    if (value) out = *value;
    return value.has_value();
}

void TableReader::finish() {
    if (table_ == nullptr) return;
    for (auto&& [key, value] : *table_) {
        (void)value;
        if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
        sink_.error(key.source(), path_of(key.str()), unknown_key_message(key.str(), known_, place_.path));
    }
}

}  // namespace regiond::config::detail

// Internal to regiond_config: reads the keys of one TOML table into settings.
//
// Every key the section code asks for is remembered; finish() then reports the
// keys nobody asked for, so a misspelt key ("max_lags") is an error instead of
// a setting silently left at its default.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "config/diagnostic_sink.hpp"
#include "config/value_readers.hpp"

namespace regiond::config::detail {

class TableReader {
public:
    // Where the table stands in the file, for "required key is missing".
    struct Place {
        std::string path;            // "daemon", "regions[1]", "" for the top level
        toml::source_region where;   // the table header, or the top of the file
        std::string missing_hint;    // appended to "required key is missing"
        bool report_missing = true;  // false when the table itself was invalid
    };

    // `table` may be null: the section is absent, so every key reads as absent.
    TableReader(const toml::table* table, Place place, DiagnosticSink& sink);

    TableReader(const TableReader&) = delete;
    TableReader& operator=(const TableReader&) = delete;

    // The value under `key`, or nullptr. Marks the key as known either way.
    const toml::node* find(std::string_view key);
    // "daemon.socket" for "socket".
    [[nodiscard]] std::string path_of(std::string_view key) const;
    // Reports `key` as required and missing, at the table.
    void missing(std::string_view key);

    // Each getter leaves `out` unchanged (the default) when the key is absent or
    // its value is invalid, and returns true only when it stored a value.
    bool string(std::string_view key, std::string& out, StringCheck check = nullptr);
    bool required_string(std::string_view key, std::string& out, StringCheck check = nullptr);
    bool optional_string(std::string_view key, std::optional<std::string>& out, StringCheck check = nullptr);
    bool duration(std::string_view key, std::chrono::nanoseconds& out, std::chrono::nanoseconds min,
                  std::chrono::nanoseconds max);
    bool size(std::string_view key, std::uint64_t& out, std::uint64_t min, std::uint64_t max,
              SizeCheck check = nullptr);

    template <typename Integer>
    bool integer(std::string_view key, Integer& out, std::int64_t min, std::int64_t max) {
        static_assert(std::numeric_limits<Integer>::is_integer);
        const toml::node* node = find(key);
        if (node == nullptr) return false;
        const auto value = read_integer(*node, path_of(key), sink_, min, max);
        if (value) out = static_cast<Integer>(*value);
        return value.has_value();
    }

    // Reports every key of the table that no getter or find() asked for.
    void finish();

    [[nodiscard]] const toml::table* table() const noexcept { return table_; }
    [[nodiscard]] const Place& place() const noexcept { return place_; }
    [[nodiscard]] DiagnosticSink& sink() noexcept { return sink_; }

private:
    const toml::table* table_;
    Place place_;
    DiagnosticSink& sink_;
    std::vector<std::string> known_;
};

}  // namespace regiond::config::detail

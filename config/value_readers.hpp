// Internal to regiond_config: reading one TOML value as a typed setting. Each
// reader reports a wrong type or a bad value to the sink, at the value, and
// returns nullopt; nothing is echoed that could be secret.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "config/diagnostic_sink.hpp"

namespace regiond::config::detail {

// A check on a string's content: nullopt when fine, else what is wrong.
using StringCheck = std::optional<std::string> (*)(std::string_view);
// A check on a size beyond its bounds (e.g. "a power of two").
using SizeCheck = std::optional<std::string> (*)(std::uint64_t);

// "a string", "an integer", ... for "expected X, got Y".
std::string_view describe_type(toml::node_type type) noexcept;

std::optional<std::string> read_string(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                                       StringCheck check = nullptr);

std::optional<std::int64_t> read_integer(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                                         std::int64_t min, std::int64_t max);

std::optional<std::chrono::nanoseconds> read_duration(const toml::node& node, const std::string& key,
                                                      DiagnosticSink& sink, std::chrono::nanoseconds min,
                                                      std::chrono::nanoseconds max);

std::optional<std::uint64_t> read_size(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                                       std::uint64_t min, std::uint64_t max, SizeCheck check = nullptr);

// The node as an array, or nullptr after reporting its type. `what` names the
// expected content: "an array of strings".
const toml::array* read_array(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                              std::string_view what);

// The node as a table, or nullptr after reporting its type. `what` says how to
// write it: "a table ([daemon])".
const toml::table* read_table(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                              std::string_view what);

}  // namespace regiond::config::detail

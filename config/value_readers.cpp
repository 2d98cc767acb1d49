#include "config/value_readers.hpp"

#include "config/duration.hpp"
#include "config/size.hpp"

namespace regiond::config::detail {
namespace {

std::string got(const toml::node& node) {
    return "got " + std::string(describe_type(node.type()));
}

std::string between(const std::string& min, const std::string& max) {
    return "must be between " + min + " and " + max;
}

}  // namespace

std::string_view describe_type(toml::node_type type) noexcept {
    switch (type) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a floating-point number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

std::optional<std::string> read_string(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                                       StringCheck check) {
    const auto* value = node.as_string();
    if (value == nullptr) {
        sink.error(node.source(), key, "expected a string, " + got(node));
        return std::nullopt;
    }
    if (check != nullptr) {
        if (auto problem = check(value->get())) {
            sink.error(node.source(), key, std::move(*problem));
            return std::nullopt;
        }
    }
    return value->get();
}

std::optional<std::int64_t> read_integer(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                                         std::int64_t min, std::int64_t max) {
    const auto* value = node.as_integer();
    if (value == nullptr) {
        sink.error(node.source(), key, "expected an integer, " + got(node));
        return std::nullopt;
    }
    const std::int64_t number = value->get();
    if (number < min || number > max) {
        sink.error(node.source(), key,
                   between(std::to_string(min), std::to_string(max)) + " (got " + std::to_string(number) + ")");
        return std::nullopt;
    }
    return number;
}

std::optional<std::chrono::nanoseconds> read_duration(const toml::node& node, const std::string& key,
                                                      DiagnosticSink& sink, std::chrono::nanoseconds min,
                                                      std::chrono::nanoseconds max) {
    const auto* value = node.as_string();
    if (value == nullptr) {
        // A bare number is the likely mistake: show how to write it.
        std::string message = "expected a duration string with a unit, e.g. \"250ms\" or \"5s\", " + got(node);
        if (const auto* number = node.as_integer())
            message +=
                " (write \"" + std::to_string(number->get()) + "s\" or \"" + std::to_string(number->get()) + "ms\")";
        sink.error(node.source(), key, std::move(message));
        return std::nullopt;
    }
    auto parsed = parse_duration(value->get());
    if (!parsed) {
        sink.error(node.source(), key, parsed.error());
        return std::nullopt;
    }
    if (parsed.value() < min || parsed.value() > max) {
        sink.error(
            node.source(), key,
            between(format_duration(min), format_duration(max)) + " (got " + format_duration(parsed.value()) + ")");
        return std::nullopt;
    }
    return parsed.value();
}

std::optional<std::uint64_t> read_size(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                                       std::uint64_t min, std::uint64_t max, SizeCheck check) {
    const auto* value = node.as_string();
    if (value == nullptr) {
        std::string message = "expected a size string with a unit, e.g. \"64MiB\", " + got(node);
        if (const auto* number = node.as_integer())
            message +=
                " (write \"" + std::to_string(number->get()) + "B\" or \"" + std::to_string(number->get()) + "MiB\")";
        sink.error(node.source(), key, std::move(message));
        return std::nullopt;
    }
    auto parsed = parse_size(value->get());
    if (!parsed) {
        sink.error(node.source(), key, parsed.error());
        return std::nullopt;
    }
    if (parsed.value() < min || parsed.value() > max) {
        sink.error(node.source(), key,
                   between(format_size(min), format_size(max)) + " (got " + format_size(parsed.value()) + ")");
        return std::nullopt;
    }
    if (check != nullptr) {
        if (auto problem = check(parsed.value())) {
            sink.error(node.source(), key, std::move(*problem));
            return std::nullopt;
        }
    }
    return parsed.value();
}

const toml::array* read_array(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                              std::string_view what) {
    const auto* array = node.as_array();
    if (array == nullptr) sink.error(node.source(), key, "expected " + std::string(what) + ", " + got(node));
    return array;
}

const toml::table* read_table(const toml::node& node, const std::string& key, DiagnosticSink& sink,
                              std::string_view what) {
    const auto* table = node.as_table();
    if (table == nullptr) sink.error(node.source(), key, "expected " + std::string(what) + ", " + got(node));
    return table;
}

}  // namespace regiond::config::detail

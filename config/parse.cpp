#include "config/parse.hpp"

#include <exception>

#include <toml++/toml.h>

#include "config/diagnostic_sink.hpp"
#include "config/quote.hpp"
#include "config/read_file.hpp"
#include "config/read_regions.hpp"
#include "config/read_sections.hpp"
#include "config/table_reader.hpp"
#include "config/toml_syntax.hpp"

namespace regiond::config {
namespace {

using detail::DiagnosticSink;
using detail::TableReader;

void check_local_region(const Config& config, const toml::node* region_node, const detail::RegionsRead& regions,
                        DiagnosticSink& sink) {
    if (region_node == nullptr || !regions.all_names_read || config.find_region(config.daemon.region) != nullptr)
        return;
    std::string names;
    for (const Region& region : config.regions) names += (names.empty() ? "" : ", ") + region.name;
    sink.error(
        region_node->source(), "daemon.region",
        "no [[regions]] table is named " + detail::quote(config.daemon.region) + " (the regions are: " + names + ")");
}

Config read_config(const toml::table& root, std::string_view source_name, DiagnosticSink& sink) {
    TableReader top(&root, {"", root.source(), "", true}, sink);
    Config config;
    config.source_path = std::string(source_name);
    const toml::node* region_node = detail::read_daemon(top, config.daemon);
    detail::read_cache(top, config.cache);
    detail::read_consistency(top, config.consistency);
    detail::read_lag(top, config.lag);
    detail::read_health(top, config.health);
    detail::RegionsRead regions = detail::read_regions(top);
    config.regions = std::move(regions.regions);
    check_local_region(config, region_node, regions, sink);
    top.finish();
    return config;
}

ParseOutcome finish(std::optional<Config> config, DiagnosticSink&& sink) {
    ParseOutcome outcome;
    if (sink.empty()) outcome.config = std::move(config);
    outcome.errors = std::move(sink).take_sorted();
    return outcome;
}

}  // namespace

ParseOutcome parse_config_string(std::string_view text, std::string_view source_name) {
    DiagnosticSink sink{std::string(source_name)};
    try {
        // toml++ is built with exceptions: a syntax error is a toml::parse_error.
        const toml::table root = toml::parse(text, source_name);
        Config config = read_config(root, source_name, sink);
        return finish(std::move(config), std::move(sink));
    } catch (const toml::parse_error& error) {
        const auto& where = error.source().begin;
        const std::string reason = detail::safe_syntax_message(error.description());
        const bool reads_on = reason.rfind("while parsing", 0) == 0;
        sink.error_at(static_cast<int>(where.line), static_cast<int>(where.column), "",
                      (reads_on ? "TOML syntax error " : "TOML syntax error: ") + reason);
    } catch (const std::exception& error) {
        // Only std::bad_alloc is expected here; the API promises not to throw.
        sink.error_at(0, 0, "", std::string("cannot check the configuration: ") + error.what());
    }
    return finish(std::nullopt, std::move(sink));
}

ParseOutcome parse_config_file(const std::string& path) {
    auto text = detail::read_text_file(path);
    if (!text) {
        ParseOutcome outcome;
        outcome.errors.push_back(Diagnostic{path, 0, 0, "", text.error()});
        return outcome;
    }
    return parse_config_string(text.value(), path);
}

}  // namespace regiond::config

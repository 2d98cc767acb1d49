#include "config/read_regions.hpp"

#include <algorithm>
#include <cctype>

#include "config/conninfo.hpp"
#include "config/key_path.hpp"
#include "config/quote.hpp"
#include "config/redis_url.hpp"

namespace regiond::config::detail {
namespace {

// Where a region's keys are, for the rules that compare regions.
// sites[k] describes regions[k]; file_index differs from k when an element of
// the array was not a table (and was skipped).
struct RegionSites {
    std::size_t file_index = 0;
    const toml::node* name = nullptr;     // set when the name was read
    const toml::node* primary = nullptr;  // set when the key is present, valid or not
};

// Region names appear in served_by ("eu-west-1/replica"), metric labels and log
// lines, so they are kept to characters that need no quoting anywhere.
std::optional<std::string> region_name_problem(std::string_view name) {
    const auto allowed = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    };
    if (name.empty() || name.size() > 63 || !std::isalnum(static_cast<unsigned char>(name.front())) ||
        !std::all_of(name.begin(), name.end(), allowed))
        return quote(name) +
               " is not a valid region name: use 1 to 63 letters, digits, '-', '_' "
               "or '.', starting with a letter or digit (e.g. \"eu-west-1\")";
    return std::nullopt;
}

std::optional<std::string> conninfo_check(std::string_view conninfo) {
    if (auto problem = conninfo_problem(conninfo)) return "invalid conninfo: " + *problem;
    return std::nullopt;
}

std::optional<std::string> redis_check(std::string_view url) {
    auto parsed = parse_redis_url(url);
    if (parsed) return std::nullopt;
    return parsed.error();
}

std::string line_of(const toml::node& node) {
    return "line " + std::to_string(node.source().begin.line);
}

void read_replicas(TableReader& region, Region& out) {
    const toml::node* node = region.find("replicas");
    if (node == nullptr) return;
    const std::string path = region.path_of("replicas");
    const toml::array* replicas = read_array(*node, path, region.sink(), "an array of conninfo strings");
    if (replicas == nullptr) return;
    for (std::size_t i = 0; i < replicas->size(); ++i)
        if (auto conninfo = read_string(*replicas->get(i), indexed_key(path, i), region.sink(), conninfo_check))
            out.replicas.push_back(std::move(*conninfo));
}

Region read_region(const toml::table& table, std::size_t index, DiagnosticSink& sink, RegionSites& sites) {
    TableReader region(&table, {indexed_key("regions", index), table.source(), " from this [[regions]] table", true},
                       sink);
    Region out;
    sites.file_index = index;
    if (region.required_string("name", out.name, region_name_problem)) sites.name = region.find("name");
    sites.primary = region.find("primary");
    region.optional_string("primary", out.primary, conninfo_check);
    read_replicas(region, out);
    region.required_string("redis", out.redis, redis_check);
    region.integer("pool_size", out.pool_size, 1, 1000);
    region.finish();
    return out;
}

void check_one_primary(const toml::array& array, const std::vector<RegionSites>& sites,
                       const std::vector<Region>& regions, DiagnosticSink& sink) {
    std::optional<std::size_t> first;
    for (std::size_t k = 0; k < sites.size(); ++k) {
        const RegionSites& site = sites[k];
        if (site.primary == nullptr) continue;
        if (!first) {
            first = k;
            continue;
        }
        const std::string& owner_name = regions[*first].name;
        const std::string owner = owner_name.empty() ? std::string() : " (" + quote(owner_name) + ")";
        sink.error(site.primary->source(), child_key(indexed_key("regions", site.file_index), "primary"),
                   "only one region may have a primary; regions[" + std::to_string(sites[*first].file_index) + "]" +
                       owner + " already has one at " + line_of(*sites[*first].primary));
    }
    if (!first)
        sink.error(array.source(), "regions",
                   "no region has a primary; exactly one [[regions]] table must set primary "
                   "(the conninfo of the PostgreSQL primary, where writes go)");
}

void check_unique_names(const std::vector<RegionSites>& sites, const std::vector<Region>& regions,
                        DiagnosticSink& sink) {
    for (std::size_t i = 0; i < sites.size(); ++i) {
        if (sites[i].name == nullptr) continue;
        const std::string& name = regions[i].name;
        for (std::size_t j = 0; j < i; ++j) {
            if (sites[j].name == nullptr || regions[j].name != name) continue;
            sink.error(sites[i].name->source(), child_key(indexed_key("regions", sites[i].file_index), "name"),
                       "region name " + quote(name) + " is already used by regions[" +
                           std::to_string(sites[j].file_index) + "] at " + line_of(*sites[j].name));
            break;
        }
    }
}

}  // namespace

RegionsRead read_regions(TableReader& top) {
    RegionsRead result;
    DiagnosticSink& sink = top.sink();
    const toml::node* node = top.find("regions");
    if (node == nullptr) {
        sink.error(top.place().where, "regions",
                   "required key is missing: add one [[regions]] table per region, exactly one "
                   "of them with a primary");
        result.all_names_read = false;
        return result;
    }
    const toml::array* array = read_array(*node, "regions", sink, "an array of tables (written [[regions]])");
    if (array == nullptr || array->empty()) {
        if (array != nullptr)
            sink.error(node->source(), "regions",
                       "at least one region is required, exactly one of them with a primary");
        result.all_names_read = false;
        return result;
    }

    std::vector<RegionSites> sites;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const toml::table* table =
            read_table(element, indexed_key("regions", i), sink, "a table (written [[regions]])");
        if (table == nullptr) {
            result.all_names_read = false;
            continue;
        }
        RegionSites site;
        result.regions.push_back(read_region(*table, i, sink, site));
        if (site.name == nullptr) result.all_names_read = false;
        sites.push_back(site);
    }

    check_one_primary(*array, sites, result.regions, sink);
    check_unique_names(sites, result.regions, sink);
    return result;
}

}  // namespace regiond::config::detail

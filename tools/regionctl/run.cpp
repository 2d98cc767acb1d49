#include "run.hpp"

#include <regiond/client.hpp>

#include <chrono>
#include <ostream>

#include "admin.hpp"

namespace regiond::ctl {

namespace {

constexpr std::chrono::milliseconds kAdminTimeout{30000};

int admin(const Options& o, const std::string& line, std::ostream& out, std::ostream& err) {
    const std::string path = admin_socket_path(o);
    const AdminReply reply = admin_request(path, line, kAdminTimeout);
    if (!reply.ok) {
        err << "regionctl: " << reply.error << '\n';
        return kExitFailure;
    }
    out << reply.body;
    if (!reply.body.empty() && reply.body.back() != '\n') out << '\n';
    return kExitOk;
}

int query(const Options& o, std::ostream& out, std::ostream& err) {
    Client client = Client::connect(o.socket ? std::optional<std::string_view>(*o.socket) : std::nullopt);
    if (!client) {
        err << "regionctl: " << client.connect_error() << '\n';
        return kExitFailure;
    }
    std::vector<Value> params;
    params.reserve(o.params.size());
    for (const auto& p : o.params) params.push_back(p ? Value(*p) : Value());
    Result result;
    switch (o.mode) {
        case QueryMode::local: result = client.read_local(o.sql, params); break;
        case QueryMode::primary: result = client.read_primary(o.sql, params); break;
        case QueryMode::consistent: result = client.read_consistent(o.token, o.sql, params); break;
        case QueryMode::cached:
            result = client.cached_read(o.cache_key, std::chrono::seconds(o.ttl_seconds), o.sql, params);
            break;
        case QueryMode::write: {
            std::vector<std::string_view> keys(o.invalidate_keys.begin(), o.invalidate_keys.end());
            result = client.write(o.sql, params, keys);
            break;
        }
    }
    if (!result) {
        err << "regionctl: " << result.error();
        if (!result.sqlstate().empty()) err << " (SQLSTATE " << result.sqlstate() << ")";
        err << '\n';
        return kExitFailure;
    }
    const Table table = table_from(result);
    out << (o.json ? format_json(table) : format_aligned(table));
    return kExitOk;
}

}  // namespace

Table table_from(const Result& result) {
    Table t;
    t.served_by = std::string(result.served_by());
    t.route_reason = std::string(result.route_reason());
    t.token = std::string(result.token());
    t.affected = result.affected();
    for (int c = 0; c < result.ncols(); ++c) t.columns.emplace_back(result.column(c));
    t.rows.reserve(static_cast<std::size_t>(result.nrows()));
    for (Row row : result) {
        auto& values = t.rows.emplace_back();
        values.reserve(static_cast<std::size_t>(row.size()));
        for (int c = 0; c < row.size(); ++c) {
            const Value v = row[c];
            values.push_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
        }
    }
    return t;
}

int run(const Options& o, std::ostream& out, std::ostream& err) {
    switch (o.command) {
        case Command::help: out << usage(); return kExitOk;
        case Command::status: return admin(o, o.json ? "status json" : "status", out, err);
        case Command::metrics: return admin(o, "metrics", out, err);
        case Command::cache_flush: {
            std::string line = "cache flush";
            for (const auto& k : o.keys) line += " " + k;
            return admin(o, line, out, err);
        }
        case Command::query: return query(o, out, err);
    }
    return kExitFailure;
}

int run_regionctl(std::span<const std::string_view> args, std::ostream& out, std::ostream& err) {
    const Parsed parsed = parse_command_line(args);
    if (!parsed.ok) {
        err << "regionctl: " << parsed.error << "\n(regionctl --help shows the usage)\n";
        return kExitUsage;
    }
    return run(parsed.options, out, err);
}

}  // namespace regiond::ctl

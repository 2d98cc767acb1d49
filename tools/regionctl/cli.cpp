#include "cli.hpp"

#include <cstdlib>

namespace regiond::ctl {

namespace {

// Reads the value of an option given as "--opt VALUE" or "--opt=VALUE".
// `i` points at the option and is advanced past its value.
bool option_value(std::span<const std::string_view> args, std::size_t& i, std::string_view name, std::string& value,
                  std::string& error) {
    const std::string_view arg = args[i];
    if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
        value = std::string(arg.substr(name.size() + 1));
        return true;
    }
    if (i + 1 >= args.size()) {
        error = std::string(name) + " needs a value";
        return false;
    }
    value = std::string(args[++i]);
    return true;
}

// Matches "--opt" and "--opt=...".
bool is_option(std::string_view arg, std::string_view name) {
    return arg == name || (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=');
}

bool parse_ttl(const std::string& text, unsigned& out) {
    if (text.empty() || text.size() > 9) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    out = value;
    return true;
}

Parsed fail(std::string error) {
    Parsed p;
    p.error = std::move(error);
    return p;
}

Parsed parse_query(std::span<const std::string_view> args, std::size_t i, Options o) {
    int modes = 0;
    bool ttl_given = false;
    bool sql_seen = false;
    for (; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        std::string value, error;
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg.size() < 2 || arg[0] != '-' || arg == "-") break;  // SQL
        if (arg == "--json") {
            o.json = true;
        } else if (arg == "--help" || arg == "-h") {
            o.command = Command::help;
            return Parsed{true, o, {}};
        } else if (arg == "--primary") {
            o.mode = QueryMode::primary;
            ++modes;
        } else if (arg == "--write") {
            o.mode = QueryMode::write;
            ++modes;
        } else if (is_option(arg, "--consistent")) {
            if (!option_value(args, i, "--consistent", o.token, error)) return fail(error);
            o.mode = QueryMode::consistent;
            ++modes;
        } else if (is_option(arg, "--cached")) {
            if (!option_value(args, i, "--cached", o.cache_key, error)) return fail(error);
            if (o.cache_key.empty()) return fail("--cached needs a non-empty KEY");
            o.mode = QueryMode::cached;
            ++modes;
        } else if (is_option(arg, "--ttl")) {
            if (!option_value(args, i, "--ttl", value, error)) return fail(error);
            if (!parse_ttl(value, o.ttl_seconds)) return fail("--ttl needs a number of seconds, not \"" + value + "\"");
            ttl_given = true;
        } else if (is_option(arg, "--invalidate")) {
            if (!option_value(args, i, "--invalidate", value, error)) return fail(error);
            o.invalidate_keys.push_back(value);
        } else if (is_option(arg, "--socket")) {
            if (!option_value(args, i, "--socket", value, error)) return fail(error);
            o.socket = value;
        } else {
            return fail("query: unknown option " + std::string(arg));
        }
    }
    if (modes > 1) return fail("query: choose at most one of --primary, --consistent, --cached, --write");
    if (ttl_given && o.mode != QueryMode::cached) return fail("query: --ttl goes with --cached");
    if (!o.invalidate_keys.empty() && o.mode != QueryMode::write) return fail("query: --invalidate goes with --write");
    if (i < args.size()) {
        o.sql = std::string(args[i++]);
        sql_seen = true;
    }
    if (!sql_seen) return fail("query: SQL is missing");
    for (; i < args.size(); ++i) {
        if (args[i] == kNullParam) {
            o.params.emplace_back(std::nullopt);
        } else {
            o.params.emplace_back(std::string(args[i]));
        }
    }
    return Parsed{true, std::move(o), {}};
}

}  // namespace

Parsed parse_command_line(std::span<const std::string_view> args) {
    Options o;
    std::size_t i = 0;
    // Global options, before the command.
    for (; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        std::string error, value;
        if (arg == "--help" || arg == "-h") {
            o.command = Command::help;
            return Parsed{true, o, {}};
        }
        if (is_option(arg, "--socket")) {
            if (!option_value(args, i, "--socket", value, error)) return fail(error);
            if (value.empty()) return fail("--socket needs a non-empty PATH");
            o.socket = value;
            continue;
        }
        if (!arg.empty() && arg[0] == '-') return fail("unknown option " + std::string(arg));
        break;
    }
    if (i >= args.size()) return fail("a command is missing (status, metrics, cache flush or query)");
    const std::string_view command = args[i++];

    if (command == "help") {
        o.command = Command::help;
        return Parsed{true, o, {}};
    }
    if (command == "query") {
        o.command = Command::query;
        return parse_query(args, i, std::move(o));
    }
    if (command == "status" || command == "metrics") {
        o.command = command == "status" ? Command::status : Command::metrics;
        for (; i < args.size(); ++i) {
            std::string error, value;
            if (args[i] == "--json" && o.command == Command::status) {
                o.json = true;
            } else if (args[i] == "--help" || args[i] == "-h") {
                o.command = Command::help;
                return Parsed{true, o, {}};
            } else if (is_option(args[i], "--socket")) {
                if (!option_value(args, i, "--socket", value, error)) return fail(error);
                o.socket = value;
            } else {
                return fail(std::string(command) + ": unexpected argument " + std::string(args[i]));
            }
        }
        return Parsed{true, o, {}};
    }
    if (command == "cache") {
        if (i >= args.size() || args[i] != "flush")
            return fail("cache: the only subcommand is \"cache flush [KEY...]\"");
        ++i;
        o.command = Command::cache_flush;
        for (; i < args.size(); ++i) {
            const std::string_view key = args[i];
            // The admin protocol is one line of words: a key cannot hold whitespace.
            for (char c : key)
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                    return fail("cache flush: key \"" + std::string(key) + "\" contains whitespace");
            if (key.empty()) return fail("cache flush: empty key");
            o.keys.emplace_back(key);
        }
        return Parsed{true, o, {}};
    }
    return fail("unknown command \"" + std::string(command) + "\" (status, metrics, cache flush or query)");
}

std::string usage() {
    return R"(usage:
  regionctl [--socket PATH] status [--json]   regions, endpoints, lag, health, cache, clients
  regionctl [--socket PATH] metrics           Prometheus text exposition
  regionctl [--socket PATH] cache flush [KEY...]
                                              evict KEYs (all keys without KEY) on this host
  regionctl [--socket PATH] query [--json] [--primary | --consistent TOKEN |
            --cached KEY [--ttl S] | --write [--invalidate KEY]...] SQL [PARAM...]
                                              run SQL through regiond (libregiond)

--socket PATH
  status, metrics, cache: regiond's ADMIN socket
      (default: $REGIOND_ADMIN_SOCKET, else /run/regiond/admin.sock)
  query: regiond's CLIENT socket, as any application uses it
      (default: $REGIOND_SOCKET, else /run/regiond/regiond.sock)

query:
  (no mode)          read from the nearest healthy replica
  --primary          read from the primary
  --consistent TOKEN read data at least as new as the write or read that returned
                     TOKEN (SYSTEMID/LSN, e.g. 7713697811223072330/0/41F2E80);
                     "" waits for nothing (served like no mode)
  --cached KEY       cache first (this host, then Redis), then the local replica;
  --ttl S            ... keeping the answer S seconds (default: the daemon's default_ttl)
  --write            write on the primary; prints the consistency token and rows affected
  --invalidate KEY   ... and evict KEY in every region (repeatable)
  --json             print {"served_by", "route_reason", "token", "affected", "columns",
                     "rows"} as JSON
  PARAM              the value of $1, $2, ... as text; \N is SQL NULL

  Rows print aligned like psql, then served_by (where the answer came from),
  route_reason (why it went there, when the daemon says) and token (the
  answer's consistency token, when it has one).

Exit status: 0 success, 1 failure (message on stderr), 64 usage error.
)";
}

std::string admin_socket_path(const Options& options) {
    if (options.socket) return *options.socket;
    const char* env = std::getenv("REGIOND_ADMIN_SOCKET");
    if (env != nullptr && *env != '\0') return env;
    return kDefaultAdminSocket;
}

}  // namespace regiond::ctl

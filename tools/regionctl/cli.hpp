// regionctl's command line (API.md):
//
//   regionctl [--socket PATH] status [--json]
//   regionctl [--socket PATH] metrics
//   regionctl [--socket PATH] cache flush [KEY...]
//   regionctl [--socket PATH] query [--json] [--primary | --consistent TOKEN |
//             --cached KEY [--ttl S] | --write [--invalidate KEY]...] SQL [PARAM...]
//
// --socket names the ADMIN socket for status, metrics and cache (default
// $REGIOND_ADMIN_SOCKET, else /run/regiond/admin.sock) and the CLIENT socket for
// query, which is a libregiond client (default $REGIOND_SOCKET, else
// /run/regiond/regiond.sock). A PARAM written as \N is SQL NULL (psql's COPY
// notation). Everything after SQL is a parameter, even if it starts with '-'.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 64;  // EX_USAGE

inline constexpr const char* kDefaultAdminSocket = "/run/regiond/admin.sock";
inline constexpr const char* kNullParam = "\\N";

enum class Command { help, status, metrics, cache_flush, query };
enum class QueryMode { local, primary, consistent, cached, write };

struct Options {
    Command command = Command::help;
    std::optional<std::string> socket;  ///< --socket
    bool json = false;                  ///< status --json, query --json
    std::vector<std::string> keys;      ///< cache flush KEY...
    // query
    QueryMode mode = QueryMode::local;
    std::string token;                         ///< --consistent
    std::string cache_key;                     ///< --cached
    unsigned ttl_seconds = 0;                  ///< --ttl (0: the daemon's default)
    std::vector<std::string> invalidate_keys;  ///< --invalidate (with --write)
    std::string sql;
    std::vector<std::optional<std::string>> params;  ///< nullopt: \N (SQL NULL)
};

struct Parsed {
    bool ok = false;
    Options options;
    std::string error;  ///< usage error, for stderr (exit 64)
};

/// Parses the arguments after the program name.
Parsed parse_command_line(std::span<const std::string_view> args);

/// The --help text.
std::string usage();

/// The admin socket for status/metrics/cache: --socket, else
/// $REGIOND_ADMIN_SOCKET, else kDefaultAdminSocket.
std::string admin_socket_path(const Options& options);

}  // namespace regiond::ctl

// The Redis address of a region: redis://[:password@]host:port[/db] or
// unix:///path. Parsed here once so the daemon and the checker agree on it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/value_or_error.hpp"

namespace regiond::config {

struct RedisEndpoint {
    enum class Transport { tcp, unix_socket };

    Transport transport = Transport::tcp;
    std::string host;                     // tcp: name, IPv4, or IPv6 without brackets
    std::uint16_t port = 0;               // tcp
    std::string socket_path;              // unix_socket
    std::optional<std::string> password;  // percent-decoded; never log it
    std::uint32_t db = 0;                 // SELECT index
};

// Error messages never contain any part of the URL (it may hold a password).
// The password is percent-decoded, so "%40" stands for "@"; an unencoded "@" in
// it also works, because the last "@" ends it.
Parsed<RedisEndpoint> parse_redis_url(std::string_view url);

}  // namespace regiond::config

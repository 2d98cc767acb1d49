#include "config/redis_url.hpp"

#include <sys/un.h>

#include <algorithm>
#include <cctype>

namespace regiond::config {
namespace {

using Result = Parsed<RedisEndpoint>;

constexpr std::string_view tcp_scheme = "redis://";
constexpr std::string_view unix_scheme = "unix://";

Result fail(std::string_view reason) {
    return Result::fail("invalid Redis URL: " + std::string(reason) +
                        "; expected redis://[:password@]host:port[/db] or unix:///path");
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
           });
}

bool all_digits(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Digits only, at most `max`; nullopt otherwise.
std::optional<std::uint64_t> small_number(std::string_view digits, std::uint64_t max) {
    if (!all_digits(digits) || digits.size() > 10) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : digits) value = value * 10 + static_cast<std::uint64_t>(c - '0');
    if (value > max) return std::nullopt;
    return value;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        const int high = hex_value(text[i + 1]);
        const int low = hex_value(text[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return out;
}

bool valid_host_name(std::string_view host) {
    return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    });
}

bool valid_ipv6_literal(std::string_view host) {
    return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
}

Result parse_unix(std::string_view rest) {
    // rest is what follows "unix://": an absolute path, so the URL has three slashes.
    if (rest.empty() || rest.front() != '/')
        return fail("a unix socket URL needs an absolute path: unix:///path/to/redis.sock");
    if (rest.find_first_of("?#") != std::string_view::npos)
        return fail("query parameters are not supported in a unix socket URL");
    if (rest.size() == 1 || rest.back() == '/') return fail("the unix socket path names a directory");
    if (rest.find('\0') != std::string_view::npos) return fail("the unix socket path contains a NUL character");
    if (rest.size() >= sizeof(sockaddr_un{}.sun_path))
        return fail("the unix socket path is longer than a socket address allows (" +
                    std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes)");
    RedisEndpoint endpoint;
    endpoint.transport = RedisEndpoint::Transport::unix_socket;
    endpoint.socket_path = std::string(rest);
    return Result::ok(std::move(endpoint));
}

Result parse_tcp(std::string_view rest) {
    RedisEndpoint endpoint;

    // The last '@' ends the userinfo: the host, port and db cannot contain one,
    // the password may.
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = rest.substr(0, at);
        rest.remove_prefix(at + 1);
        if (userinfo.empty() || userinfo.front() != ':')
            return fail("only a password may come before \"@\", written as :password@");
        auto password = percent_decode(userinfo.substr(1));
        if (!password) return fail("invalid percent-encoding (%XX) in the password");
        if (password->empty()) return fail("the password after \":\" is empty");
        endpoint.password = std::move(*password);
    }

    if (rest.find_first_of("?#") != std::string_view::npos) return fail("query parameters are not supported");

    const auto slash = rest.find('/');
    std::string_view host_port = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        const std::string_view db = rest.substr(slash + 1);
        if (!db.empty()) {
            const auto index = small_number(db, 2'147'483'647);
            if (!index) return fail("the database after \"/\" must be a number such as 0");
            endpoint.db = static_cast<std::uint32_t>(*index);
        }
    }

    std::string_view port;
    if (!host_port.empty() && host_port.front() == '[') {
        const auto close = host_port.find(']');
        if (close == std::string_view::npos) return fail("an IPv6 address must be closed with \"]\"");
        endpoint.host = std::string(host_port.substr(1, close - 1));
        if (!valid_ipv6_literal(endpoint.host)) return fail("malformed IPv6 address");
        host_port.remove_prefix(close + 1);
        if (host_port.empty() || host_port.front() != ':') return fail("missing :port after the host");
        port = host_port.substr(1);
    } else {
        const auto colon = host_port.rfind(':');
        if (colon == std::string_view::npos)
            return fail("missing :port after the host (Redis listens on :6379 by default)");
        endpoint.host = std::string(host_port.substr(0, colon));
        port = host_port.substr(colon + 1);
        if (endpoint.host.empty()) return fail("missing host");
        if (!valid_host_name(endpoint.host))
            return fail("the host must be a name, an IPv4 address or an [IPv6] address");
    }
    const auto port_number = small_number(port, 65535);
    if (!port_number || *port_number == 0) return fail("the port must be a number from 1 to 65535");
    endpoint.port = static_cast<std::uint16_t>(*port_number);
    return Result::ok(std::move(endpoint));
}

}  // namespace

Parsed<RedisEndpoint> parse_redis_url(std::string_view url) {
    if (url.empty()) return fail("it is empty");
    if (starts_with_ignoring_case(url, tcp_scheme)) return parse_tcp(url.substr(tcp_scheme.size()));
    if (starts_with_ignoring_case(url, unix_scheme)) return parse_unix(url.substr(unix_scheme.size()));
    if (starts_with_ignoring_case(url, "rediss://"))
        return fail("TLS (rediss://) is not supported by the Redis client library in use");
    return fail("unknown scheme");
}

}  // namespace regiond::config

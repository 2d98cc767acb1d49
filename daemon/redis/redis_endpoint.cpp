#include "daemon/redis/redis_endpoint.hpp"

#include "shm/base/redact.hpp"

namespace regiond::daemon {
namespace {

std::string shorten(std::string text, std::size_t max = 120) {
    if (text.size() > max) {
        text.resize(max);
        text += "...";
    }
    for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f) c = ' ';
    return text;
}

}  // namespace

std::string redis_display_name(const config::RedisEndpoint& endpoint) {
    if (endpoint.transport == config::RedisEndpoint::Transport::unix_socket) return endpoint.socket_path;
    if (endpoint.host.find(':') != std::string::npos) return "[" + endpoint.host + "]:" + std::to_string(endpoint.port);
    return endpoint.host + ":" + std::to_string(endpoint.port);
}

// A Redis error may quote the AUTH argument: "ERR unknown command 'AUTH', with args
// beginning with: 'PASSWORD'" when AUTH is renamed or disabled. The quoted args are
// dropped, the configured password removed wherever else it appears whole, and
// anything shaped like a secret redacted.
std::string redis_server_text(std::string_view server_text, const config::RedisEndpoint& endpoint) {
    std::string text(server_text);
    if (const auto args = text.find("args beginning with"); args != std::string::npos) {
        text.resize(args);
        text += "args beginning with: [redacted]";
    }
    if (const auto& password = endpoint.password; password && !password->empty())
        for (auto at = text.find(*password); at != std::string::npos; at = text.find(*password, at))
            text.replace(at, password->size(), "[redacted]");
    return shorten(base::redact_secrets(text));
}

int queue_redis_setup(RedisConnection& connection, const config::RedisEndpoint& endpoint,
                      const RedisConnection::ReplyCallback& on_reply) {
    int queued = 0;
    if (endpoint.password) {
        connection.command({"AUTH", *endpoint.password}, on_reply);
        ++queued;
    }
    if (endpoint.db != 0) {
        const std::string db = std::to_string(endpoint.db);
        connection.command({"SELECT", db}, on_reply);
        ++queued;
    }
    return queued;
}

}  // namespace regiond::daemon

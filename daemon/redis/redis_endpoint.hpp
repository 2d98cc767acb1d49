// What the Redis probe, the cache tier and the subscriber share about one
// configured Redis (config::RedisEndpoint): the name that is safe to show, the
// server's text with the password taken out, and the commands every new
// connection starts with (AUTH when the URL has a password, SELECT when it names
// a db), pipelined ahead of the first real command.
//
// Only the region and "host:port" (or the socket path) ever appear in messages:
// the URL may carry a password, and a Redis error may quote it.
#pragma once

#include <string>
#include <string_view>

#include "config/redis_url.hpp"
#include "daemon/redis/redis_connection.hpp"

namespace regiond::daemon {

/// "host:port", "[v6]:port" or the socket path.
std::string redis_display_name(const config::RedisEndpoint& endpoint);

/// Text from the server (an error reply) fit for logs and status: the quoted
/// arguments of "args beginning with" dropped, the configured password removed
/// wherever it appears whole, anything shaped like a secret redacted
/// (base::redact_secrets), control characters replaced, at most about 120
/// characters.
std::string redis_server_text(std::string_view text, const config::RedisEndpoint& endpoint);

/// Queues AUTH and SELECT (when the endpoint needs them) on a new connection;
/// `on_reply` gets each one's reply. Returns how many were queued.
int queue_redis_setup(RedisConnection& connection, const config::RedisEndpoint& endpoint,
                      const RedisConnection::ReplyCallback& on_reply);

}  // namespace regiond::daemon

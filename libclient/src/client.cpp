#include "client.hpp"

#include <cstdlib>
#include <limits>

#include "handshake.hpp"

namespace regiond::client {

namespace {

bool is_read(shm::Op op) noexcept {
    return op != shm::Op::write;
}

Clock::time_point handshake_deadline(Deadline deadline) {
    const auto bound = Clock::now() + kHandshakeTimeout;
    return deadline ? std::min(*deadline, bound) : bound;
}

}  // namespace

Deadline deadline_for(unsigned timeout_ms) {
    if (timeout_ms == 0) return std::nullopt;
    return Clock::now() + std::chrono::milliseconds(timeout_ms);
}

// The milliseconds the daemon has for this request (the request's timeout_ms):
// what is left of the caller's deadline, rounded up (so a fresh call carries the
// configured timeout exactly, and the daemon's deadline, which starts when it
// reads the request, never passes before the client's), at least 1 (0 would
// mean "the daemon's default").
std::uint32_t remaining_ms(Deadline deadline) {
    if (!deadline) return 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
    if (ms < 1) return 1;
    if (ms > std::numeric_limits<std::uint32_t>::max()) return std::numeric_limits<std::uint32_t>::max();
    return static_cast<std::uint32_t>(ms);
}

std::shared_ptr<Connection> usable_connection(rgd_client& client, Deadline deadline, std::string& error) {
    std::shared_ptr<Connection> current;
    {
        std::lock_guard lk(client.connection_mu);
        current = client.connection;
    }
    if (current && current->alive_fast()) return current;  // the fast path: no system call

    std::lock_guard lk(client.connection_mu);
    // Another thread may have reconnected while we looked.
    if (client.connection && client.connection != current && client.connection->alive_fast()) return client.connection;
    if (client.connection) client.connection->mark_dead("replaced by a new connection");
    client.connection.reset();
    auto opened = Connection::open(client.socket_path, handshake_deadline(deadline));
    if (!opened) {
        error = opened.error().message;
        return nullptr;
    }
    client.connection = *opened;
    return client.connection;
}

std::string resolve_socket_path(const char* socket_path) {
    if (socket_path != nullptr) return socket_path;
    const char* env = std::getenv("REGIOND_SOCKET");
    if (env != nullptr && *env != '\0') return env;
    return kDefaultSocket;
}

std::unique_ptr<rgd_client> connect(const char* socket_path, std::string& error) {
    auto client = std::make_unique<rgd_client>();
    client->socket_path = resolve_socket_path(socket_path);
    auto opened = Connection::open(client->socket_path, Clock::now() + kHandshakeTimeout);
    if (!opened) {
        error = opened.error().message;
        return nullptr;
    }
    client->connection = *opened;
    return client;
}

ResultPtr execute(rgd_client& client, shm::RequestView& request) {
    const unsigned timeout_ms = client.timeout_ms.load(std::memory_order_relaxed);
    const Deadline deadline = deadline_for(timeout_ms);
    int resends = 0;
    std::string lost_reason;
    for (;;) {
        std::string error;
        const std::shared_ptr<Connection> connection = usable_connection(client, deadline, error);
        if (!connection) {
            if (resends == 0) return make_error(std::move(error));
            return make_error(std::string(kConnectionLost) + " (reconnecting failed: " + error + ")");
        }
        request.timeout_ms = remaining_ms(deadline);
        const std::uint64_t request_id = client.next_request_id.fetch_add(1, std::memory_order_relaxed);
        CallOutcome outcome = connection->call(request, request_id, deadline);
        switch (outcome.kind) {
            case CallOutcome::Kind::answered: return make_result(std::move(outcome.response));
            case CallOutcome::Kind::timed_out:
                return make_error("timed out after " + std::to_string(timeout_ms) + " ms");
            case CallOutcome::Kind::failed: return make_error(std::move(outcome.message));
            case CallOutcome::Kind::lost: break;
        }
        // Lost: see client.hpp for why a consumed write is never re-sent.
        const bool resendable = !outcome.sent || !outcome.consumed || is_read(request.op);
        if (!resendable || resends >= kMaxResends || (deadline && Clock::now() >= *deadline))
            return make_error(kConnectionLost);
        ++resends;
    }
}

}  // namespace regiond::client

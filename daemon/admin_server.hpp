// The admin socket (daemon.admin_socket, mode 0660, group client_group): one
// command line in, one answer out, then the daemon closes the connection. The
// commands are parsed by admin_command.hpp and answered by a callback (the
// daemon formats its status). Two walls: at accept, the peer (SO_PEERCRED, read
// then) must pass the same AccessPolicy as clients; then a command that changes
// state (admin_command.hpp's table) is refused, before it runs, unless the peer
// is root, the daemon's user or a member of daemon.admin_group (check_admin).
// A peer that sends no complete line within 2 s, or more than 4 KiB, is closed;
// a peer that does not read its answer within 5 s is closed too.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>

#include "daemon/access_policy.hpp"
#include "daemon/admin_command.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/unix_listener.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon {

class AdminServer {
public:
    /// Returns the whole reply (admin_ok(...) or admin_error(...)).
    using Executor = std::function<std::string(const AdminCommand&)>;

    AdminServer(EventLoop& loop, UnixListenerOptions listener, AccessPolicy access, Executor executor);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    shm::Expected<void> listen();
    void close();
    void set_access(AccessPolicy access) { access_ = std::move(access); }

private:
    struct Connection {
        shm::UniqueFd fd;
        PeerCredentials peer;  ///< read at accept
        std::string input;
        std::string output;
        std::size_t sent = 0;
        bool replying = false;
        EventLoop::TimerId timer = 0;
    };

    void on_accept();
    void on_event(int fd, std::uint32_t events);
    std::string answer(const Connection& c, const AdminCommand& command);
    void reply(int fd, Connection& c, std::string text);
    void write_some(int fd, Connection& c);
    void end(int fd);

    EventLoop& loop_;
    UnixListenerOptions listener_options_;
    AccessPolicy access_;
    Executor executor_;
    UnixListener listener_;
    std::unordered_map<int, Connection> connections_;
};

}  // namespace regiond::daemon

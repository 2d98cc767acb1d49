#include "daemon/admin_server.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "daemon/log.hpp"

namespace regiond::daemon {
namespace {

constexpr std::size_t kMaxLine = 4096;
constexpr std::size_t kMaxConnections = 32;
constexpr auto kReadTimeout = std::chrono::seconds(2);
constexpr auto kWriteTimeout = std::chrono::seconds(5);

}  // namespace

AdminServer::AdminServer(EventLoop& loop, UnixListenerOptions listener, AccessPolicy access, Executor executor)
    : loop_(loop), listener_options_(std::move(listener)), access_(std::move(access)), executor_(std::move(executor)) {}

AdminServer::~AdminServer() {
    close();
}

shm::Expected<void> AdminServer::listen() {
    auto listener = listen_unix(listener_options_);
    if (!listener) return listener.error();
    listener_ = std::move(*listener);
    loop_.add(listener_.fd.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
    return {};
}

void AdminServer::close() {
    std::vector<int> fds;
    for (const auto& [fd, c] : connections_) fds.push_back(fd);
    for (int fd : fds) end(fd);
    if (listener_.fd) loop_.remove(listener_.fd.get());
    listener_.close_and_unlink();
}

void AdminServer::on_accept() {
    for (int i = 0; i < 16; ++i) {
        const int fd = ::accept4(listener_.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        shm::UniqueFd owned(fd);
        if (connections_.size() >= kMaxConnections)
            continue;  // closed: regionctl reports the daemon as unreachable, and a retry works
        Connection& c = connections_[fd];
        c.fd = std::move(owned);
        c.timer = loop_.add_timer(kReadTimeout, [this, fd] {
            if (auto it = connections_.find(fd); it != connections_.end()) it->second.timer = 0;
            end(fd);
        });
        loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t events) { on_event(fd, events); });
        const auto peer = read_peer_credentials(fd);
        if (!peer) {
            end(fd);
            continue;
        }
        c.peer = *peer;
        // Who may connect: the client socket's policy. Commands that change state
        // are checked once more, per command (answer()).
        if (const AccessDecision decision = check_access(*peer, access_); !decision.allowed) {
            log::warning("admin socket: refused pid " + std::to_string(peer->pid) + ": " + decision.message);
            reply(fd, c, admin_error(decision.message));
        }
    }
}

void AdminServer::on_event(int fd, std::uint32_t events) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    Connection& c = it->second;
    if (c.replying) {
        if ((events & (EPOLLHUP | EPOLLERR)) != 0) {
            end(fd);
            return;
        }
        write_some(fd, c);
        return;
    }
    char buffer[1024];
    for (;;) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            // EOF without a newline: a line that ends at EOF still counts.
            if (n == 0 && !c.input.empty()) break;
            end(fd);
            return;
        }
        c.input.append(buffer, static_cast<std::size_t>(n));
        if (c.input.find('\n') != std::string::npos) break;
        if (c.input.size() > kMaxLine) {
            reply(fd, c, admin_error("command longer than " + std::to_string(kMaxLine) + " bytes"));
            return;
        }
    }
    const std::size_t newline = c.input.find('\n');
    const std::string line = c.input.substr(0, newline);
    reply(fd, c, answer(c, parse_admin_command(line)));
}

std::string AdminServer::answer(const Connection& c, const AdminCommand& command) {
    if (command.kind == AdminCommand::Kind::invalid) return admin_error(command.error);
    if (admin_only(command.kind)) {
        // Authorization first: a refused peer learns nothing about the command's outcome.
        const AdminCommandInfo* info = admin_command_info(command.kind);
        const std::string_view name = info != nullptr ? info->name : std::string_view("this command");
        if (const AccessDecision decision = check_admin(c.peer, access_, name); !decision.allowed) {
            log::notice("admin socket: refused \"" + std::string(name) + "\" to pid " + std::to_string(c.peer.pid) +
                        ", " + uid_text(c.peer.uid) + " (not an admin)");
            return admin_error(decision.message);
        }
    }
    return executor_(command);
}

void AdminServer::reply(int fd, Connection& c, std::string text) {
    c.replying = true;
    c.output = std::move(text);
    c.sent = 0;
    if (c.timer != 0) loop_.cancel_timer(c.timer);
    c.timer = loop_.add_timer(kWriteTimeout, [this, fd] {
        if (auto it = connections_.find(fd); it != connections_.end()) it->second.timer = 0;
        end(fd);
    });
    ::shutdown(fd, SHUT_RD);  // nothing more is read
    loop_.modify(fd, EPOLLOUT);
    write_some(fd, c);
}

void AdminServer::write_some(int fd, Connection& c) {
    while (c.sent < c.output.size()) {
        const ssize_t n = ::send(fd, c.output.data() + c.sent, c.output.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        break;
    }
    end(fd);
}

void AdminServer::end(int fd) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    if (it->second.timer != 0) loop_.cancel_timer(it->second.timer);
    loop_.remove(fd);
    connections_.erase(it);
}

}  // namespace regiond::daemon

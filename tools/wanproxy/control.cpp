#include "control.hpp"

#include "log.hpp"
#include "shm/base/unix_socket_path.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace wanproxy {

namespace {

// A command line longer than this is not a command; the peer is told and
// dropped rather than buffered without bound.
constexpr std::size_t kMaxLine = 4096;

}  // namespace

Outcome<std::unique_ptr<ControlServer>> ControlServer::open(EventLoop& loop, Links& links, const std::string& path) {
    using R = Outcome<std::unique_ptr<ControlServer>>;
    using State = regiond::base::SocketPathClaim::State;
    const auto addr = regiond::base::unix_address(path);
    if (!addr) {
        return R::fail("control socket path '" + path + "' must be 1 to " +
                       std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes long");
    }
    // A stale socket left by a dead proxy is removed; a live one, or a file that
    // is not a socket, is never touched.
    const regiond::base::SocketPathClaim claim = regiond::base::claim_socket_path(path);
    switch (claim.state) {
        case State::free: break;
        case State::stale_removed: log_line("removed stale control socket " + path); break;
        case State::live:
            // Removing it would orphan the proxy behind it.
            return R::fail(path + " is served by a running process; stop it or choose another --control path");
        case State::not_a_socket: return R::fail(path + " exists and is not a socket; choose another --control path");
        case State::too_long: break;  // checked above
        case State::failed:
            return R::fail(std::string("cannot ") + claim.step + " the control socket " + path + ": " +
                           errno_text(claim.error));
    }
    Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener) {
        return R::fail("socket(AF_UNIX): " + errno_text(errno));
    }
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
        return R::fail("cannot bind control socket " + path + ": " + errno_text(errno));
    }
    if (::listen(listener.get(), 64) != 0) {
        return R::fail("listen on " + path + ": " + errno_text(errno));
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return R::fail("stat " + path + ": " + errno_text(errno));
    }
    return R::ok(std::unique_ptr<ControlServer>(
        new ControlServer(loop, links, path, std::move(listener), st.st_dev, st.st_ino)));
}

ControlServer::ControlServer(EventLoop& loop, Links& links, std::string path, Fd listener, dev_t dev, ino_t ino)
    : loop_(loop), links_(links), path_(std::move(path)), dev_(dev), ino_(ino), listener_(std::move(listener)) {
    listener_watch_ = loop_.watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
}

ControlServer::~ControlServer() {
    // Only remove the file if it is ours: another instance may have replaced
    // it after deciding ours was stale.
    regiond::base::unlink_if_same_file(path_, dev_, ino_);
}

void ControlServer::on_accept() {
    for (int i = 0; i < 16; ++i) {
        Fd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            return;  // EAGAIN, or an error that affects only this peer
        }
        const std::uint64_t id = next_session_id_++;
        auto session = std::make_unique<Session>();
        session->fd = std::move(fd);
        session->watch =
            loop_.watch(session->fd.get(), EPOLLIN, [this, id](std::uint32_t events) { on_session_event(id, events); });
        sessions_.emplace(id, std::move(session));
    }
}

void ControlServer::on_session_event(std::uint64_t id, std::uint32_t events) {
    const auto it = sessions_.find(id);
    if (it == sessions_.end()) {
        return;
    }
    Session& s = *it->second;
    if ((events & EPOLLERR) != 0) {
        end_session(id);
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP)) != 0 && !s.peer_done) {
        char buffer[4096];
        const ssize_t n = ::recv(s.fd.get(), buffer, sizeof buffer, 0);
        if (n > 0) {
            s.input.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0) {
            s.peer_done = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            end_session(id);
            return;
        }
        std::size_t newline = 0;
        while ((newline = s.input.find('\n')) != std::string::npos) {
            std::string line = s.input.substr(0, newline);
            s.input.erase(0, newline + 1);
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();  // tolerate CRLF from nc/telnet-style clients
            }
            for (const auto& reply_line : run_command(line, links_)) {
                s.output += reply_line;
                s.output += '\n';
            }
            s.output += ".\n";
        }
        if (s.input.size() > kMaxLine) {
            s.output += "error: command line longer than " + std::to_string(kMaxLine) + " bytes\n.\n";
            s.input.clear();
            s.peer_done = true;
        }
    }
    flush(id, s);
}

void ControlServer::flush(std::uint64_t id, Session& s) {
    while (!s.output.empty()) {
        const ssize_t n = ::send(s.fd.get(), s.output.data(), s.output.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            end_session(id);
            return;
        }
        s.output.erase(0, static_cast<std::size_t>(n));
    }
    if (s.peer_done && s.output.empty()) {
        end_session(id);
        return;
    }
    // Stop reading while a reply is pending: a client that sends commands
    // but never reads cannot make us buffer without bound.
    s.watch.set_events(s.output.empty() ? EPOLLIN : EPOLLOUT);
}

void ControlServer::end_session(std::uint64_t id) {
    const auto it = sessions_.find(id);
    if (it == sessions_.end()) {
        return;
    }
    it->second->watch.reset();
    it->second->fd.reset();
    // The session's callback may be running; erase it afterwards.
    loop_.defer([this, id] { sessions_.erase(id); });
}

}  // namespace wanproxy

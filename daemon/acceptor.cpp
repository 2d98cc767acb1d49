#include "daemon/acceptor.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/log.hpp"
#include "daemon/text.hpp"
#include "shm/fd_passing.hpp"
#include "shm/handshake.hpp"

namespace regiond::daemon {
namespace {

std::string sanitized_name(const char (&raw)[48]) {
    std::string name;
    for (char c : raw) {
        if (c == '\0') break;
        name += (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) ? '?' : c;
    }
    return name;
}

void copy_text(char* out, std::size_t capacity, std::string_view text) {
    const std::size_t n = std::min(text.size(), capacity - 1);
    std::memcpy(out, text.data(), n);
    out[n] = '\0';
}

shm::WelcomeMessage make_welcome(shm::WelcomeStatus status, std::string_view message) {
    shm::WelcomeMessage welcome{};
    std::memcpy(welcome.magic, shm::kWelcomeMagic, sizeof welcome.magic);
    welcome.protocol_version = shm::kProtocolVersion;
    welcome.status = static_cast<std::uint32_t>(status);
    copy_text(welcome.message, sizeof welcome.message, message);
    return welcome;
}

}  // namespace

Acceptor::Acceptor(EventLoop& loop, AcceptorSettings settings, ClientCount clients, Accepted accepted)
    : loop_(loop), settings_(std::move(settings)), clients_(std::move(clients)), accepted_(std::move(accepted)) {}

Acceptor::~Acceptor() {
    handshakes_.clear();  // their watches and timers first, then their sockets
    listener_watch_.reset();
    listener_.close_and_unlink();
}

shm::Expected<void> Acceptor::listen() {
    auto listener = listen_unix({settings_.socket_path, "client socket", settings_.mode, settings_.group});
    if (!listener) return listener.error();
    listener_ = std::move(*listener);
    accepting_ = true;
    watch_listener();
    return {};
}

void Acceptor::watch_listener() {
    listener_watch_ = loop_.watch(listener_.fd.get(), EPOLLIN, [this](std::uint32_t) { on_listener_readable(); });
}

void Acceptor::stop_accepting() {
    if (!accepting_) return;
    accepting_ = false;
    listener_pause_.cancel();
    listener_watch_.reset();
    listener_.close_and_unlink();
}

void Acceptor::close_handshakes() {
    handshakes_.clear();
}

void Acceptor::update(std::uint32_t max_clients, AccessPolicy access, std::uint32_t max_request) {
    settings_.max_clients = max_clients;
    settings_.access = std::move(access);
    settings_.max_request = max_request;
}

void Acceptor::pause_listener() {
    // Out of descriptors: a level-triggered listener would spin the loop. Look
    // again in 100 ms.
    listener_watch_.reset();
    listener_pause_ = loop_.timer(std::chrono::milliseconds(100), [this] {
        if (accepting_ && listener_.fd) watch_listener();
    });
}

void Acceptor::on_listener_readable() {
    for (int accepted = 0; accepted < 64; ++accepted) {
        const int fd = ::accept4(listener_.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log::error(std::string("cannot accept clients: ") + std::strerror(errno) +
                           " (raise LimitNOFILE or daemon.max_clients accordingly)");
                pause_listener();
            }
            return;  // EAGAIN, or a connection that died in the backlog
        }
        shm::UniqueFd owned(fd);
        if (handshakes_.size() >= settings_.max_pending_handshakes) {
            const auto now = EventLoop::Clock::now();
            if (now - last_refusal_log_ > std::chrono::seconds(10)) {
                last_refusal_log_ = now;
                log::warning("more than " + std::to_string(settings_.max_pending_handshakes) +
                             " connections without a hello: closing new ones until they finish");
            }
            continue;
        }
        Handshake& h = handshakes_[fd];
        h.fd = std::move(owned);
        h.timer = loop_.timer(std::chrono::duration_cast<EventLoop::Clock::duration>(settings_.handshake_timeout),
                              [this, fd] {
                                  log::info("closed a connection that sent no hello within " +
                                            format_duration(settings_.handshake_timeout));
                                  end_handshake(fd);
                              });
        h.watch = loop_.watch(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t) { on_handshake_readable(fd); });
    }
}

void Acceptor::end_handshake(int fd) {
    handshakes_.erase(fd);  // unwatches, cancels the timer, closes the socket unless it was moved out
}

void Acceptor::on_handshake_readable(int fd) {
    auto it = handshakes_.find(fd);
    if (it == handshakes_.end()) return;
    Handshake& h = it->second;
    const ssize_t n = ::recv(fd, h.buffer.data() + h.received, h.buffer.size() - h.received, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        end_handshake(fd);  // gone before saying hello: nothing worth a log line
        return;
    }
    h.received += static_cast<std::size_t>(n);
    if (h.received == h.buffer.size()) finish_handshake(fd);
}

void Acceptor::send_refusal(int fd, std::uint32_t status, const std::string& message) {
    const shm::WelcomeMessage welcome = make_welcome(static_cast<shm::WelcomeStatus>(status), message);
    // Best effort: a fresh socket's buffer takes 512 bytes; a peer that is gone
    // does not need the answer.
    [[maybe_unused]] const ssize_t sent = ::send(fd, &welcome, sizeof welcome, MSG_NOSIGNAL | MSG_DONTWAIT);
    end_handshake(fd);
}

void Acceptor::finish_handshake(int fd) {
    Handshake& h = handshakes_.at(fd);
    shm::HelloMessage hello;
    static_assert(sizeof hello == std::tuple_size_v<decltype(h.buffer)>);
    std::memcpy(&hello, h.buffer.data(), sizeof hello);

    if (std::memcmp(hello.magic, shm::kHelloMagic, sizeof hello.magic) != 0) {
        log::info("closed a connection that is not a regiond client (bad hello)");
        end_handshake(fd);
        return;
    }
    auto credentials = read_peer_credentials(fd);
    if (!credentials) {
        log::warning("closed a client connection: its credentials (SO_PEERCRED) are unavailable");
        end_handshake(fd);
        return;
    }
    const PeerCredentials& peer = *credentials;
    using shm::WelcomeStatus;
    if (hello.protocol_version != shm::kProtocolVersion) {
        const std::string message = "client protocol version " + std::to_string(hello.protocol_version) +
                                    ", this regiond speaks version " + std::to_string(shm::kProtocolVersion) +
                                    ": use a libregiond that matches the daemon";
        log::warning("refused pid " + std::to_string(peer.pid) + " uid " + std::to_string(peer.uid) + ": " + message);
        send_refusal(fd, static_cast<std::uint32_t>(WelcomeStatus::version_mismatch), message);
        return;
    }
    if (const AccessDecision decision = check_access(peer, settings_.access); !decision.allowed) {
        log::warning("refused pid " + std::to_string(peer.pid) + ": " + decision.message);
        send_refusal(fd, static_cast<std::uint32_t>(WelcomeStatus::permission_denied), decision.message);
        return;
    }
    if (!accepting_) {
        send_refusal(fd, static_cast<std::uint32_t>(WelcomeStatus::shutting_down), "regiond is shutting down");
        return;
    }
    if (clients_() >= settings_.max_clients) {
        const std::string message = "regiond serves at most " + std::to_string(settings_.max_clients) +
                                    " clients (daemon.max_clients): try again later or raise the limit";
        log::warning("refused pid " + std::to_string(peer.pid) + " uid " + std::to_string(peer.uid) + ": " + message);
        send_refusal(fd, static_cast<std::uint32_t>(WelcomeStatus::too_many_clients), message);
        return;
    }

    const ClientId id = next_id_++;
    shm::ClientSegmentOptions options;
    options.request_capacity = settings_.ring_size;
    options.response_capacity = settings_.ring_size;
    options.client_id = id;
    options.daemon_generation = settings_.generation;
    options.daemon_wake = shm::DaemonWake::eventfd;
    options.max_request = settings_.max_request;
    auto segment = shm::ClientSegmentOwner::create(options);
    if (!segment) {
        log::error("cannot serve pid " + std::to_string(peer.pid) + ": " + segment.error().message);
        send_refusal(fd, static_cast<std::uint32_t>(WelcomeStatus::internal_error),
                     "regiond cannot create the client segment: " + segment.error().message);
        return;
    }
    shm::UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!event) {
        const std::string message = std::string("regiond cannot create an eventfd: ") + std::strerror(errno);
        log::error("cannot serve pid " + std::to_string(peer.pid) + ": " + message);
        send_refusal(fd, static_cast<std::uint32_t>(WelcomeStatus::internal_error), message);
        return;
    }
    // A second eventfd for the other direction: a client that waits in an event
    // loop (rgd_event_fd) asks for it in its header (ClientHeader::client_wake).
    shm::UniqueFd client_event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!client_event) {
        const std::string message = std::string("regiond cannot create an eventfd: ") + std::strerror(errno);
        log::error("cannot serve pid " + std::to_string(peer.pid) + ": " + message);
        send_refusal(fd, static_cast<std::uint32_t>(WelcomeStatus::internal_error), message);
        return;
    }
    // The daemon starts asleep on this ring: the client's first request must
    // wake it (the ring is empty, so this always grants the sleep).
    (void)segment->requests().prepare_sleep();

    shm::WelcomeMessage welcome = make_welcome(WelcomeStatus::ok, "");
    welcome.client_id = id;
    welcome.daemon_generation = settings_.generation;
    copy_text(welcome.state_segment, sizeof welcome.state_segment, settings_.state_segment);
    const int fds[shm::kWelcomeFds] = {segment->fd(), event.get(), client_event.get()};
    const auto sent = shm::send_fds(fd, fds, std::as_bytes(std::span(&welcome, 1)));
    if (!sent) {
        log::info("client pid " + std::to_string(peer.pid) +
                  " went away during the handshake: " + sent.error().message);
        end_handshake(fd);
        return;
    }

    NewClient client{ClientInfo{id, peer.pid, peer.uid, sanitized_name(hello.client_name)}, std::move(*credentials),
                     std::move(h.fd), std::move(event), std::move(client_event), std::move(*segment)};
    end_handshake(fd);  // the socket was moved out: this only unregisters it
    accepted_(std::move(client));
}

}  // namespace regiond::daemon

#include "daemon/client_server.hpp"

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

ClientServer::ClientServer(EventLoop& loop, ClientServerSettings settings, Stats& stats)
    : loop_(loop), settings_(std::move(settings)), stats_(stats), spinner_(settings_.spin_max) {
    request_buffer_.resize(std::min<std::uint64_t>(settings_.max_request, max_payload()));
}

ClientServer::~ClientServer() {
    for (auto& [id, session] : sessions_) {
        loop_.remove(session->socket_fd());
        loop_.remove(session->eventfd());
        if (session->retry_timer != 0) loop_.cancel_timer(session->retry_timer);
    }
    for (auto& [fd, handshake] : handshakes_) {
        loop_.remove(fd);
        loop_.cancel_timer(handshake.timer);
    }
    if (listener_.fd) loop_.remove(listener_.fd.get());
    listener_.close_and_unlink();
}

std::uint32_t ClientServer::max_payload() const noexcept {
    return shm::ring_max_payload(settings_.ring_size);
}

shm::Expected<void> ClientServer::listen() {
    auto listener = listen_unix({settings_.socket_path, "client socket", settings_.mode, settings_.group});
    if (!listener) return listener.error();
    listener_ = std::move(*listener);
    loop_.add(listener_.fd.get(), EPOLLIN, [this](std::uint32_t) { on_listener_readable(); });
    accepting_ = true;
    return {};
}

void ClientServer::stop_accepting() {
    if (!accepting_) return;
    accepting_ = false;
    if (listener_.fd) loop_.remove(listener_.fd.get());
    listener_.close_and_unlink();
}

void ClientServer::update(std::uint32_t max_clients, std::uint64_t max_request, AccessPolicy access,
                          std::chrono::nanoseconds output_stall) {
    settings_.max_clients = max_clients;
    settings_.max_request = max_request;
    settings_.access = std::move(access);
    settings_.output_limits.max_stall = output_stall;
    request_buffer_.resize(std::min<std::uint64_t>(settings_.max_request, max_payload()));
}

void ClientServer::pause_listener() {
    // Out of descriptors: a level-triggered listener would spin the loop. Look
    // again in 100 ms.
    loop_.remove(listener_.fd.get());
    loop_.add_timer(std::chrono::milliseconds(100), [this] {
        if (accepting_ && listener_.fd)
            loop_.add(listener_.fd.get(), EPOLLIN, [this](std::uint32_t) { on_listener_readable(); });
    });
}

void ClientServer::on_listener_readable() {
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
        h.timer = loop_.add_timer(std::chrono::duration_cast<EventLoop::Clock::duration>(settings_.handshake_timeout),
                                  [this, fd] {
                                      if (auto found = handshakes_.find(fd); found != handshakes_.end())
                                          found->second.timer = 0;
                                      log::info("closed a connection that sent no hello within " +
                                                format_duration(settings_.handshake_timeout));
                                      end_handshake(fd);
                                  });
        loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t) { on_handshake_readable(fd); });
    }
}

void ClientServer::end_handshake(int fd) {
    auto it = handshakes_.find(fd);
    if (it == handshakes_.end()) return;
    if (it->second.timer != 0) loop_.cancel_timer(it->second.timer);
    loop_.remove(fd);
    handshakes_.erase(it);  // closes the socket unless it was moved into a session
}

void ClientServer::on_handshake_readable(int fd) {
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

void ClientServer::send_refusal(int fd, std::uint32_t status, const std::string& message) {
    const shm::WelcomeMessage welcome = make_welcome(static_cast<shm::WelcomeStatus>(status), message);
    // Best effort: a fresh socket's buffer takes 512 bytes; a peer that is gone
    // does not need the answer.
    [[maybe_unused]] const ssize_t sent = ::send(fd, &welcome, sizeof welcome, MSG_NOSIGNAL | MSG_DONTWAIT);
    end_handshake(fd);
}

void ClientServer::finish_handshake(int fd) {
    Handshake& h = handshakes_[fd];
    shm::HelloMessage hello;
    static_assert(sizeof hello == std::tuple_size_v<decltype(h.buffer)>);
    std::memcpy(&hello, h.buffer.data(), sizeof hello);

    if (std::memcmp(hello.magic, shm::kHelloMagic, sizeof hello.magic) != 0) {
        log::info("closed a connection that is not a regiond client (bad hello)");
        end_handshake(fd);
        return;
    }
    const auto credentials = read_peer_credentials(fd);
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
    if (sessions_.size() >= settings_.max_clients) {
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
    // The daemon starts asleep on this ring: the client's first request must
    // wake it (the ring is empty, so this always grants the sleep).
    (void)segment->requests().prepare_sleep();

    shm::WelcomeMessage welcome = make_welcome(WelcomeStatus::ok, "");
    welcome.client_id = id;
    welcome.daemon_generation = settings_.generation;
    copy_text(welcome.state_segment, sizeof welcome.state_segment, settings_.state_segment);
    const int fds[shm::kWelcomeFds] = {segment->fd(), event.get()};
    const auto sent = shm::send_fds(fd, fds, std::as_bytes(std::span(&welcome, 1)));
    if (!sent) {
        log::info("client pid " + std::to_string(peer.pid) +
                  " went away during the handshake: " + sent.error().message);
        end_handshake(fd);
        return;
    }

    ClientInfo info{id, peer.pid, peer.uid, sanitized_name(hello.client_name)};
    shm::UniqueFd socket = std::move(h.fd);
    end_handshake(fd);  // the socket was moved out: this only unregisters it
    auto session = std::make_shared<ClientSession>(std::move(info), std::move(socket), std::move(event),
                                                   std::move(*segment), settings_.output_limits);
    sessions_.emplace(id, session);
    loop_.add(session->socket_fd(), EPOLLIN | EPOLLRDHUP, [this, id](std::uint32_t) { on_socket_event(id); });
    loop_.add(session->eventfd(), EPOLLIN, [this, id](std::uint32_t) { on_eventfd(id); });
    stats_.add(shm::Counter::clients_connected);
    log::info(session->describe() + " connected");
    if (clients_changed_) clients_changed_();
}

ClientSession* ClientServer::find(ClientId id) {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : it->second.get();
}

std::vector<ClientInfo> ClientServer::clients() const {
    std::vector<ClientInfo> out;
    for (const auto& [id, session] : sessions_) out.push_back(session->info());
    return out;
}

void ClientServer::on_socket_event(ClientId id) {
    ClientSession* s = find(id);
    if (s == nullptr) return;
    char byte[16];
    const ssize_t n = ::recv(s->socket_fd(), byte, sizeof byte, MSG_DONTWAIT);
    if (n > 0) {
        drop_client(id, "it sent data on its socket after the handshake");
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    remove(*s, "disconnected", false);
}

void ClientServer::on_eventfd(ClientId id) {
    ClientSession* s = find(id);
    if (s == nullptr) return;
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(s->eventfd(), &count, sizeof count);  // resets it; EAGAIN is fine
    mark_hot(*s);
    if (!s->output().empty()) {
        bool wake = false;
        if (!s->flush(EventLoop::Clock::now(), wake)) {
            drop_client(id, "its response ring is corrupt");
            return;
        }
        after_output(*s, wake);
        maybe_resume(*s);
    }
    service(*s);
}

void ClientServer::mark_hot(ClientSession& s) {
    if (s.closing || s.hot) return;
    s.hot = true;
    // Clear the need-wake-up flag: while hot, the loop polls this ring itself,
    // and the client pushes without a system call.
    s.requests().end_sleep();
    hot_.push_back(s.id());
}

void ClientServer::service(ClientSession& s) {
    // A batch per turn keeps one busy client from starving the others; what is
    // left is found by the next before_block() (the client stays hot).
    constexpr int kBatch = 64;
    const ClientId id = s.id();
    for (int i = 0; i < kBatch && !s.closing; ++i) {
        if (s.in_flight >= settings_.max_in_flight_per_client || s.output().bytes() > settings_.ring_size) {
            s.paused = true;
            return;
        }
        const shm::PopResult r = s.requests().try_pop(request_buffer_);
        if (r.error == shm::RingError::empty) return;
        if (r.error == shm::RingError::corrupt) {
            drop_client(id, "its request ring is corrupt");
            return;
        }
        if (r.error == shm::RingError::too_large) {
            if (r.kind != shm::RecordKind::request) {
                drop_client(id, "it sent an oversized record of kind " + std::to_string(static_cast<int>(r.kind)));
                return;
            }
            ++s.in_flight;
            respond_error(id, r.request_id,
                          "request of " + format_size(r.size) + " exceeds max_request (" +
                              format_size(settings_.max_request) + ")");
            continue;
        }
        switch (r.kind) {
            case shm::RecordKind::request: {
                shm::RequestView request;
                const shm::CodecError e = shm::decode_request(std::span(request_buffer_.data(), r.size), request);
                if (e != shm::CodecError::ok) {
                    drop_client(id, std::string("it sent an undecodable request (") + shm::to_string(e) + ")");
                    return;
                }
                ++s.in_flight;
                if (handler_ != nullptr)
                    handler_->on_request(id, r.request_id, request);
                else
                    respond_error(id, r.request_id, "regiond is not ready");
                break;
            }
            case shm::RecordKind::cancel:
                if (handler_ != nullptr && handler_->on_cancel(id, r.request_id) && s.in_flight > 0) --s.in_flight;
                break;
            default:
                drop_client(id, "it sent a record of kind " + std::to_string(static_cast<int>(r.kind)) +
                                    " in its request ring");
                return;
        }
    }
}

bool ClientServer::before_block() {
    hot_.erase(std::remove_if(hot_.begin(), hot_.end(),
                              [this](ClientId id) {
                                  const ClientSession* s = find(id);
                                  return s == nullptr || !s->hot;
                              }),
               hot_.end());
    if (hot_.empty()) return false;

    // Not spinning while requests are pending (their answers come through
    // epoll): skipped, not set_max(0), so the budget learned while spinning
    // paid off is still there when the next request is due.
    const bool allowed = !spin_allowed_ || spin_allowed_();
    const std::vector<ClientId> batch = hot_;  // service() may add to hot_
    if (allowed && spin_on_hot_rings()) {
        for (ClientId id : batch)
            if (ClientSession* s = find(id); s != nullptr && !s->paused && s->requests().has_data()) service(*s);
        return true;
    }

    // Nothing arrived: every hot ring raises its need-wake-up flag before the
    // loop blocks. prepare_sleep() re-checks after its fence, closing the race
    // with a client that pushed just now.
    bool found = false;
    for (ClientId id : batch) {
        ClientSession* s = find(id);
        if (s == nullptr || s->closing) continue;
        if (s->paused) {
            s->hot = false;  // resumed (and re-polled) by maybe_resume()
            continue;
        }
        if (s->requests().prepare_sleep().may_sleep) {
            s->hot = false;
        } else {
            service(*s);
            found = true;
        }
    }
    return found;
}

bool ClientServer::spin_on_hot_rings() {
    // Nothing else runs while spinning, so the sessions stay alive: poll their
    // rings through plain pointers (one acquire load each per round).
    spin_rings_.clear();
    for (ClientId id : hot_)
        if (ClientSession* s = find(id); s != nullptr && !s->paused) spin_rings_.push_back(&s->requests());
    return spinner_.spin([this] {
        for (shm::RingConsumer* ring : spin_rings_)
            if (ring->has_data()) return true;
        return false;
    });
}

void ClientServer::respond(ClientId client, std::uint64_t request_id, std::vector<std::vector<std::byte>> chunks) {
    ClientSession* s = find(client);
    if (s == nullptr || s->closing) return;
    if (s->in_flight > 0) --s->in_flight;

    const std::uint32_t limit = s->responses().max_payload();
    const bool bad = chunks.empty() ||
                     std::any_of(chunks.begin(), chunks.end(), [limit](const auto& c) { return c.size() > limit; });
    if (bad) {
        log::error("internal error: a response for " + s->describe() + " does not fit its ring (" +
                   std::to_string(chunks.size()) + " chunks); answering with an error instead");
        shm::ResponseEncoder encoder(limit);
        shm::ResponseHeadView head;
        head.status = shm::Status::error;
        head.error = "internal error: the response did not fit the response ring";
        (void)encoder.begin(head);
        const auto chunk = encoder.take_chunk(true);
        chunks.assign(1, std::vector<std::byte>(chunk.begin(), chunk.end()));
    }

    const auto now = EventLoop::Clock::now();
    bool wake = false;
    const std::size_t n = chunks.size();
    for (std::size_t i = 0; i < n; ++i) {
        OutgoingRecord record{shm::RecordKind::response,
                              static_cast<std::uint16_t>(i + 1 == n ? shm::kRecordFlagLast : 0), request_id,
                              std::move(chunks[i])};
        if (!s->send(std::move(record), now, wake)) {
            drop_client(client, "its response ring is corrupt");
            return;
        }
    }
    after_output(*s, wake);
    if (s->closing) return;
    mark_hot(*s);  // an answered client is likely to send its next request soon
    maybe_resume(*s);
}

void ClientServer::respond_error(ClientId client, std::uint64_t request_id, std::string_view message) {
    stats_.add(shm::Counter::errors);
    if (find(client) == nullptr) return;
    shm::ResponseEncoder encoder(max_payload());
    shm::ResponseHeadView head;
    head.status = shm::Status::error;
    head.error = message;
    if (encoder.begin(head) != shm::CodecError::ok) {
        head.error = "error message too long";
        (void)encoder.begin(head);
    }
    const auto chunk = encoder.take_chunk(true);
    std::vector<std::vector<std::byte>> chunks;
    chunks.emplace_back(chunk.begin(), chunk.end());
    respond(client, request_id, std::move(chunks));
}

void ClientServer::after_output(ClientSession& s, bool wake) {
    if (wake) s.responses().wake_consumer_futex();
    if (s.output().empty()) return;
    switch (s.output().verdict(EventLoop::Clock::now())) {
        case OutputQueue::Verdict::too_large:
            drop_client(s.id(), "it does not read its responses (" + format_size(s.output().bytes()) +
                                    " queued, limit " + format_size(settings_.output_limits.max_bytes) + ")");
            return;
        case OutputQueue::Verdict::stalled:
            drop_client(s.id(),
                        "it has not read its responses for " + format_duration(settings_.output_limits.max_stall));
            return;
        case OutputQueue::Verdict::ok: break;
    }
    arm_retry(s);
}

void ClientServer::arm_retry(ClientSession& s) {
    if (s.retry_timer != 0 || s.closing) return;
    const ClientId id = s.id();
    s.retry_timer = loop_.add_timer(std::chrono::duration_cast<EventLoop::Clock::duration>(s.output().retry_delay()),
                                    [this, id] { on_retry(id); });
}

void ClientServer::on_retry(ClientId id) {
    ClientSession* s = find(id);
    if (s == nullptr) return;
    s->retry_timer = 0;
    bool wake = false;
    if (!s->flush(EventLoop::Clock::now(), wake)) {
        drop_client(id, "its response ring is corrupt");
        return;
    }
    after_output(*s, wake);
    if (!s->closing) maybe_resume(*s);
}

void ClientServer::maybe_resume(ClientSession& s) {
    if (!s.paused || s.closing || s.in_flight >= settings_.max_in_flight_per_client ||
        s.output().bytes() > settings_.ring_size)
        return;
    s.paused = false;
    mark_hot(s);
    const ClientId id = s.id();
    loop_.defer([this, id] {
        if (ClientSession* again = find(id); again != nullptr && !again->closing) service(*again);
    });
}

void ClientServer::drop_client(ClientId client, std::string_view reason) {
    if (ClientSession* s = find(client)) remove(*s, reason, true);
}

void ClientServer::remove(ClientSession& s, std::string_view reason, bool dropped) {
    if (s.closing) return;
    s.closing = true;
    const ClientId id = s.id();
    if (dropped) {
        stats_.add(shm::Counter::clients_dropped);
        log::warning(s.describe() + " dropped: " + std::string(reason));
    } else {
        log::info(s.describe() + " " + std::string(reason));
    }
    loop_.remove(s.socket_fd());
    loop_.remove(s.eventfd());
    if (s.retry_timer != 0) {
        loop_.cancel_timer(s.retry_timer);
        s.retry_timer = 0;
    }
    auto it = sessions_.find(id);
    std::shared_ptr<ClientSession> holder = std::move(it->second);
    sessions_.erase(it);
    if (handler_ != nullptr) handler_->on_client_gone(id);
    // Callers up the stack may still hold a reference to the session: destroy it
    // (unmap the segment, close the eventfd and socket) after this dispatch.
    loop_.defer([holder] {});
    if (clients_changed_) clients_changed_();
}

void ClientServer::flush_all() {
    const auto now = EventLoop::Clock::now();
    for (auto& [id, session] : sessions_) {
        bool wake = false;
        if (session->flush(now, wake) && wake) session->responses().wake_consumer_futex();
    }
}

void ClientServer::close_all() {
    std::vector<ClientId> ids;
    for (const auto& [id, session] : sessions_) ids.push_back(id);
    for (ClientId id : ids)
        if (ClientSession* s = find(id)) remove(*s, "closed: regiond is exiting", false);
    std::vector<int> fds;
    for (const auto& [fd, handshake] : handshakes_) fds.push_back(fd);
    for (int fd : fds) end_handshake(fd);
}

}  // namespace regiond::daemon

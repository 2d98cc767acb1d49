#include "daemon/client_server.hpp"

#include <cstdint>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "config/config.hpp"
#include "daemon/backlog.hpp"
#include "daemon/log.hpp"
#include "daemon/text.hpp"
#include "shm/base/size_text.hpp"

namespace regiond::daemon {

// config/ checks max_request against the ring with its own copy of the rule.
static_assert(config::ring_record_limit(1u << 20) == shm::ring_max_payload(1u << 20));

namespace {

std::uint32_t effective_limit(std::uint64_t max_request, std::uint32_t ring_size) {
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(max_request, shm::ring_max_payload(ring_size)));
}

// Every client segment carries the limit in effect, so libregiond refuses a
// larger request itself with the daemon's own message.
ClientServerSettings with_published_max_request(ClientServerSettings s) {
    s.acceptor.max_request = effective_limit(s.limits.max_request, s.acceptor.ring_size);
    return s;
}

}  // namespace

ClientServer::ClientServer(EventLoop& loop, ClientServerSettings settings, Stats& stats)
    : loop_(loop),
      settings_(with_published_max_request(std::move(settings))),
      stats_(stats),
      acceptor_(
          loop, settings_.acceptor, [this] { return sessions_.size(); },
          [this](NewClient&& client) { add_session(std::move(client)); }),
      ledger_(settings_.limits.max_in_flight_per_client),
      window_(stream_window(settings_.acceptor.ring_size)),
      spinner_(settings_.spin_max),
      scope_(loop) {
    request_buffer_.resize(effective_max_request());
    loop_.set_after_pass([this] { flush_wakeups(); });
}

ClientServer::~ClientServer() {
    loop_.set_after_pass(nullptr);
}

std::uint64_t ClientServer::effective_max_request() const noexcept {
    return effective_limit(settings_.limits.max_request, settings_.acceptor.ring_size);
}

void ClientServer::update(std::uint32_t max_clients, AccessPolicy access, ClientLimits limits) {
    settings_.limits = limits;
    const auto max_request = static_cast<std::uint32_t>(effective_max_request());
    acceptor_.update(max_clients, std::move(access), max_request);
    ledger_.set_cap(limits.max_in_flight_per_client);
    request_buffer_.resize(effective_max_request());
    for (auto& [id, session] : sessions_) session->set_max_request(max_request);
    for (auto& [id, session] : sessions_) session->output().set_limits(OutputLimits{limits.max_stall});

    // A narrower policy applies to those already connected too.
    std::vector<std::pair<ClientId, std::string>> refused;
    for (const auto& [id, session] : sessions_)
        if (const AccessDecision d = check_access(session->credentials(), acceptor_.access()); !d.allowed)
            refused.emplace_back(id, d.message);
    for (const auto& [id, message] : refused) drop_client(id, "it is no longer admitted after the reload: " + message);

    // A wider cap: no release marks the crossing, so look at every waiting client.
    std::vector<uid_t> unblocked;
    for (const auto& [uid, wait] : uid_waits_)
        if (wait.waiting && !ledger_.uid_blocked(uid)) unblocked.push_back(uid);
    for (uid_t uid : unblocked) resume_uid(uid);
    for (auto& [id, session] : sessions_) maybe_resume(*session);
    enforce_backlog_cap();
}

void ClientServer::add_session(NewClient&& client) {
    auto session = std::make_shared<ClientSession>(std::move(client.info), std::move(client.credentials),
                                                   std::move(client.socket), std::move(client.eventfd),
                                                   std::move(client.client_eventfd),
                                                   std::move(client.segment), OutputLimits{settings_.limits.max_stall});
    const ClientId id = session->id();
    session->socket_watch =
        loop_.watch(session->socket_fd(), EPOLLIN | EPOLLRDHUP, [this, id](std::uint32_t) { on_socket_event(id); });
    session->eventfd_watch = loop_.watch(session->eventfd(), EPOLLIN, [this, id](std::uint32_t) { on_eventfd(id); });
    ledger_.open(id, session->uid());
    sessions_.emplace(id, session);
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
    stats_.add(shm::Counter::daemon_wakeups);
    mark_hot(*s);
    flush(*s);
    if (!s->closing && !s->paused) service(*s);
}

void ClientServer::flush_wakeups() {
    if (owed_wakeups_.empty()) return;
    std::uint64_t woken = 0;
    for (ClientId id : owed_wakeups_) {
        ClientSession* s = find(id);
        if (s == nullptr || !s->wake_pending) continue;  // gone meanwhile
        s->wake_pending = false;
        s->wake_client();
        ++woken;
    }
    owed_wakeups_.clear();
    stats_.add(shm::Counter::client_wakeups, woken);
}

ClientServer::WaitCensus ClientServer::wait_census() const noexcept {
    WaitCensus census;
    for (const auto& [id, session] : sessions_) {
        switch (session->wait_state()) {
            case shm::ClientWaitState::spinning: ++census.spinning; break;
            case shm::ClientWaitState::sleeping: ++census.sleeping; break;
            case shm::ClientWaitState::idle: break;
        }
    }
    return census;
}

void ClientServer::grant_spin_permits(std::uint32_t permits, std::uint32_t permit_ns,
                                      EventLoop::Clock::time_point now) {
    // Candidates: clients that sent a request recently (they wait now, or will
    // soon). Holders keep their permit while it suffices (a permit that flips
    // at each decision would make a steady client sleep every other call);
    // the rest take turns for what is left.
    const auto since = now - kPermitActivity;
    permit_scratch_.clear();
    std::uint32_t granted = 0;
    for (auto& [id, session] : sessions_) {
        ClientSession& s = *session;
        s.permit_granted = false;
        if (s.closing || s.last_request < since) continue;
        if (s.spin_permit() != 0 && granted < permits) {
            s.permit_granted = true;
            ++granted;
        } else {
            permit_scratch_.push_back(&s);
        }
    }
    const std::size_t n = permit_scratch_.size();
    for (std::size_t i = 0; i < n && granted < permits; ++i) {
        ClientSession& s = *permit_scratch_[(permit_turn_ + i) % n];
        s.permit_granted = true;
        ++granted;
    }
    if (n != 0) permit_turn_ = (permit_turn_ + 1) % n;
    for (auto& [id, session] : sessions_) session->set_spin_permit(session->permit_granted ? permit_ns : 0);
}

void ClientServer::mark_hot(ClientSession& s) {
    if (s.closing || s.hot) return;
    s.hot = true;
    // Clear the need-wake-up flag: while hot, the loop polls this ring itself,
    // and the client pushes without a system call.
    s.requests().end_sleep();
    hot_.push_back(s.id());
}

bool ClientServer::may_take(ClientSession& s) {
    if (ledger_.client_full(s.id()) || s.output().bytes() > window_) return false;
    if (!ledger_.uid_blocked(s.uid())) return true;
    note_uid_waits(s.uid());
    return false;
}

void ClientServer::note_uid_waits(uid_t uid) {
    UidWait& w = uid_waits_[uid];
    if (w.waiting) return;
    w.waiting = true;
    const auto now = EventLoop::Clock::now();
    if (w.logged != EventLoop::Clock::time_point{} && now - w.logged < std::chrono::minutes(1)) {
        ++w.unlogged;
        return;
    }
    std::string line = "uid " + std::to_string(uid) + " has " + std::to_string(ledger_.orphans(uid)) +
                       " requests of disconnected clients still running on the servers "
                       "(daemon.max_in_flight_per_client " +
                       std::to_string(ledger_.cap()) + "): its clients' new requests wait until they end";
    if (w.unlogged != 0) line += " (it had to wait " + std::to_string(w.unlogged) + " more times in the last minute)";
    log::warning(line);
    w.logged = now;
    w.unlogged = 0;
    w.announce_end = true;
}

bool ClientServer::take(ClientSession& s, std::uint64_t request_id, std::span<const std::byte> bytes) {
    shm::RequestView request;
    const shm::CodecError e = shm::decode_request(bytes, request);
    if (e != shm::CodecError::ok) {
        drop_client(s.id(), std::string("it sent an undecodable request (") + shm::to_string(e) + ")");
        return false;
    }
    ledger_.take(s.id());
    ++requests_taken_;
    s.last_request = EventLoop::Clock::now();
    handler_->on_request(s.id(), request_id, request);
    return !s.closing;
}

void ClientServer::service(ClientSession& s) {
    // A batch per turn keeps one busy client from starving the others; what is
    // left is found by the next before_block() (the client stays hot).
    constexpr int kBatch = 64;
    const ClientId id = s.id();
    for (int i = 0; i < kBatch && !s.closing; ++i) {
        if (s.parked) {
            if (!may_take(s)) {
                s.paused = true;
                return;
            }
            const ParkedRequest parked = std::move(*s.parked);
            s.parked.reset();
            if (!take(s, parked.request_id, parked.bytes)) return;
            continue;
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
            // Consumed unread; answered without counting (no job).
            respond_error(id, r.request_id, base::request_exceeds_max_request(r.size, effective_max_request()));
            continue;
        }
        const std::span<const std::byte> bytes(request_buffer_.data(), r.size);
        switch (r.kind) {
            case shm::RecordKind::request:
                if (handler_ == nullptr) {
                    respond_error(id, r.request_id, "regiond is not ready");
                    break;
                }
                if (!may_take(s)) {
                    // It cannot start now: keep it aside (the cancels ahead of
                    // it were read) and read no further until it can.
                    s.parked = ParkedRequest{r.request_id, std::vector<std::byte>(bytes.begin(), bytes.end())};
                    s.paused = true;
                    return;
                }
                if (!take(s, r.request_id, bytes)) return;
                break;
            case shm::RecordKind::cancel:
                if (handler_ != nullptr) handler_->on_cancel(id, r.request_id);
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

bool ClientServer::send(ClientSession& s, OutgoingRecord record, bool& wake) {
    const std::size_t before = s.output().bytes();
    if (!s.send(std::move(record), EventLoop::Clock::now(), wake)) {
        drop_client(s.id(), "its response ring is corrupt");
        return false;
    }
    backlog_total_ += s.output().bytes() - before;
    return true;
}

void ClientServer::flush(ClientSession& s) {
    if (s.output().empty()) return;
    const std::size_t before = s.output().bytes();
    bool wake = false;
    bool progress = false;
    if (!s.flush(EventLoop::Clock::now(), wake, progress)) {
        drop_client(s.id(), "its response ring is corrupt");
        return;
    }
    backlog_total_ -= before - s.output().bytes();
    after_output(s, wake);
    if (s.closing || !progress) return;
    if (s.window_full && s.output().bytes() < window_ / 2) {
        s.window_full = false;
        const ClientId id = s.id();
        scope_.defer([this, id] {
            if (handler_ != nullptr) handler_->on_window_open(id);
        });
    }
    maybe_resume(s);
}

void ClientServer::respond(ClientId client, std::uint64_t request_id, std::vector<std::vector<std::byte>> chunks) {
    ClientSession* s = find(client);
    if (s == nullptr || s->closing) return;

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

    bool wake = false;
    const std::size_t n = chunks.size();
    for (std::size_t i = 0; i < n; ++i) {
        OutgoingRecord record{shm::RecordKind::response,
                              static_cast<std::uint16_t>(i + 1 == n ? shm::kRecordFlagLast : 0), request_id,
                              std::move(chunks[i])};
        if (!send(*s, std::move(record), wake)) return;
    }
    after_output(*s, wake);
    if (s->closing) return;
    enforce_backlog_cap();
    if (s->closing) return;
    mark_hot(*s);  // an answered client is likely to send its next request soon
    maybe_resume(*s);
}

void ClientServer::respond_error(ClientId client, std::uint64_t request_id, std::string_view message) {
    stats_.add(shm::Counter::errors);
    if (find(client) == nullptr) return;
    shm::ResponseEncoder encoder(shm::ring_max_payload(settings_.acceptor.ring_size));
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

bool ClientServer::stream(ClientId client, std::uint64_t request_id, std::vector<std::byte>&& chunk) {
    ClientSession* s = find(client);
    if (s == nullptr || s->closing) return true;  // nobody to pause for: the chunk is dropped
    if (chunk.size() > s->responses().max_payload()) {
        log::error("internal error: a streamed chunk of " + base::format_size(chunk.size()) + " for " + s->describe() +
                   " does not fit its ring");
        drop_client(client, "internal error: a streamed response did not fit its ring");
        return true;
    }
    bool wake = false;
    if (!send(*s, OutgoingRecord{shm::RecordKind::response, 0, request_id, std::move(chunk)}, wake)) return true;
    after_output(*s, wake);
    if (s->closing) return true;
    enforce_backlog_cap();
    if (s->closing) return true;
    if (s->output().bytes() <= window_) return true;
    s->window_full = true;
    return false;
}

void ClientServer::release(ClientId client) {
    const InFlightLedger::Released r = ledger_.release(client);
    if (!r.known) return;
    if (r.client_below_cap)
        if (ClientSession* s = find(client)) maybe_resume(*s);
    if (r.uid_below_cap) resume_uid(r.uid);
}

void ClientServer::resume_uid(uid_t uid) {
    if (auto it = uid_waits_.find(uid); it != uid_waits_.end() && it->second.waiting) {
        it->second.waiting = false;
        if (it->second.announce_end)
            log::notice("uid " + std::to_string(uid) +
                        ": fewer requests of its disconnected clients are running than "
                        "daemon.max_in_flight_per_client now; its clients are served again");
        it->second.announce_end = false;
    }
    for (auto& [id, session] : sessions_)
        if (session->uid() == uid) maybe_resume(*session);
}

void ClientServer::after_output(ClientSession& s, bool wake) {
    if (wake && !s.wake_pending) {
        s.wake_pending = true;
        owed_wakeups_.push_back(s.id());
    }
    if (s.output().empty()) {
        s.retry_timer.cancel();
        return;
    }
    if (s.output().verdict(EventLoop::Clock::now()) == OutputQueue::Verdict::stalled) {
        drop_client(s.id(), "it has not read its responses for " + format_duration(settings_.limits.max_stall) + " (" +
                                base::format_size(s.output().bytes()) + " queued)");
        return;
    }
    if (s.retry_timer.pending()) return;
    const ClientId id = s.id();
    s.retry_timer = loop_.timer(std::chrono::duration_cast<EventLoop::Clock::duration>(s.output().retry_delay()),
                                [this, id] { on_retry(id); });
}

void ClientServer::enforce_backlog_cap() {
    const std::size_t max = settings_.limits.max_backlog;
    while (backlog_total_ > max) {
        std::vector<ClientBacklog> backlogs;
        backlogs.reserve(sessions_.size());
        for (const auto& [id, session] : sessions_)
            if (!session->closing) backlogs.push_back({id, session->output().bytes()});
        const auto victim = backlog_victim(backlogs, max);
        if (!victim) return;
        drop_client(victim->client, "it does not read its responses: its backlog of " +
                                        base::format_size(victim->bytes) + " is the largest and over its share (" +
                                        base::format_size(victim->share) + ") of daemon.max_backlog (" +
                                        base::format_size(max) + "), with " + base::format_size(victim->total) +
                                        " queued for " + std::to_string(victim->clients) +
                                        (victim->clients == 1 ? " client" : " clients"));
    }
}

void ClientServer::on_retry(ClientId id) {
    if (ClientSession* s = find(id)) flush(*s);
}

void ClientServer::maybe_resume(ClientSession& s) {
    if (!s.paused || s.closing || !may_take(s)) return;
    s.paused = false;
    mark_hot(s);
    // Deferred: release() and flushes run inside the handler's and the
    // endpoint's calls, which service() must not re-enter.
    const ClientId id = s.id();
    scope_.defer([this, id] {
        if (ClientSession* again = find(id); again != nullptr && !again->closing && !again->paused) service(*again);
    });
}

void ClientServer::drop_client(ClientId client, std::string_view reason) {
    if (ClientSession* s = find(client)) remove(*s, reason, true);
}

namespace {
std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}
}  // namespace

std::uint64_t ClientServer::client_cache_hits() const noexcept {
    std::uint64_t total = departed_cache_hits_;
    for (const auto& [id, session] : sessions_) total = saturating_add(total, session->cache_hits());
    return total;
}

void ClientServer::remove(ClientSession& s, std::string_view reason, bool dropped) {
    if (s.closing) return;
    s.closing = true;
    departed_cache_hits_ = saturating_add(departed_cache_hits_, s.cache_hits());
    const ClientId id = s.id();
    if (dropped) {
        stats_.add(shm::Counter::clients_dropped);
        log::warning(s.describe() + " dropped: " + std::string(reason));
    } else {
        log::info(s.describe() + " " + std::string(reason));
    }
    s.socket_watch.reset();
    s.eventfd_watch.reset();
    s.retry_timer.cancel();
    backlog_total_ -= s.output().bytes();
    s.output().clear();
    s.parked.reset();
    ledger_.close(id);  // what it has in flight becomes orphans of its uid

    auto it = sessions_.find(id);
    std::shared_ptr<ClientSession> holder = std::move(it->second);
    sessions_.erase(it);
    // The handler cancels the client's jobs; deferred, since this may run
    // inside one of its own calls.
    scope_.defer([this, id] {
        if (handler_ != nullptr) handler_->on_client_gone(id);
    });
    // Callers up the stack may still hold a reference to the session: destroy it
    // (unmap the segment, close the eventfd and socket) after this dispatch.
    loop_.defer([holder] {});
    if (clients_changed_) clients_changed_();
}

void ClientServer::flush_all() {
    const auto now = EventLoop::Clock::now();
    for (auto& [id, session] : sessions_) {
        bool wake = false;
        bool progress = false;
        const std::size_t before = session->output().bytes();
        if (session->flush(now, wake, progress) && wake && !session->wake_pending) {
            session->wake_pending = true;
            owed_wakeups_.push_back(session->id());
        }
        backlog_total_ -= before - session->output().bytes();
    }
    flush_wakeups();
}

void ClientServer::close_all() {
    std::vector<ClientId> ids;
    for (const auto& [id, session] : sessions_) ids.push_back(id);
    for (ClientId id : ids)
        if (ClientSession* s = find(id)) remove(*s, "closed: regiond is exiting", false);
    acceptor_.close_handshakes();
}

}  // namespace regiond::daemon

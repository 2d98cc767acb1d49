#include "connection.hpp"

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "handshake.hpp"
#include "shm/base/size_text.hpp"
#include "shm/layout.hpp"
#include "shm/ring.hpp"
#include "shm/wait_policy.hpp"

namespace regiond::client {

namespace {

using shm::Error;

/// Records the leader pops before it looks at its own call and the deadline again.
constexpr int kDrainBatch = 256;
/// Longest pause between two attempts to push into a full request ring.
constexpr std::chrono::microseconds kMaxPushBackoff{1000};

void pause_for(std::chrono::microseconds d) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(d.count() / 1'000'000);
    ts.tv_nsec = static_cast<long>(d.count() % 1'000'000) * 1000;
    ::nanosleep(&ts, nullptr);  // EINTR: simply try again sooner
}

}  // namespace

// ---------------------------------------------------------------------------
// Setup

shm::Expected<std::shared_ptr<Connection>> Connection::open(const std::string& socket_path,
                                                            Clock::time_point handshake_deadline) {
    auto welcomed = handshake(socket_path, handshake_deadline);
    if (!welcomed) return welcomed.error();
    Welcomed& w = *welcomed;

    auto segment = shm::ClientSegment::attach(w.memfd.get());
    if (!segment)
        return Error::invalid("regiond at " + socket_path +
                              " sent an unusable client segment: " + segment.error().message);

    // attach() validated the header; the copy we read here through our own mapping
    // is checked again, since the daemon could rewrite it in between.
    const std::size_t size = segment->size();
    void* probe = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, w.memfd.get(), 0);
    if (probe == MAP_FAILED) return Error::system(errno, "mapping the client segment read-only");
    auto* probe_base = static_cast<std::byte*>(probe);
    const auto* header = shm::shared_at<shm::ClientHeader>(probe_base);
    const std::uint64_t request_offset = header->request_ring_offset;
    if (request_offset % shm::kCacheLine != 0 || !shm::range_within(request_offset, sizeof(shm::RingControl), size)) {
        ::munmap(probe, size);
        return Error::invalid("regiond at " + socket_path + " sent a malformed client segment (request ring offset)");
    }
    const auto* request_control = shm::shared_at<shm::RingControl>(probe_base + request_offset);

    const std::string state_name(w.welcome.state_segment);
    auto state = shm::StateView::open(state_name);
    if (!state) {
        ::munmap(probe, size);
        return Error{state.error().code, "connected to regiond at " + socket_path +
                                             " but cannot map its state segment: " + state.error().message};
    }
    return std::shared_ptr<Connection>(new Connection(socket_path, std::move(w.socket), std::move(w.eventfd),
                                                      std::move(w.client_eventfd), std::move(*segment), std::move(*state), request_control,
                                                      probe_base, size));
}

Connection::Connection(std::string path, shm::UniqueFd socket, shm::UniqueFd eventfd, shm::UniqueFd client_eventfd,
                       shm::ClientSegment segment,
                       shm::StateView state, const shm::RingControl* request_control, std::byte* probe_base,
                       std::size_t probe_size)
    : path_(std::move(path)),
      socket_(std::move(socket)),
      eventfd_(std::move(eventfd)),
      client_eventfd_(std::move(client_eventfd)),
      segment_(std::move(segment)),
      state_(std::move(state)),
      cache_reader_(state_.cache_reader()),
      daemon_wake_(segment_.daemon_wake()),
      max_request_(segment_.requests().max_payload()),
      client_id_(segment_.client_id()),
      request_control_(request_control),
      probe_base_(probe_base),
      probe_size_(probe_size),
      pop_buffer_(segment_.responses().max_payload()) {}

Connection::~Connection() {
    if (probe_base_ != nullptr) ::munmap(probe_base_, probe_size_);
    // socket_ closes last among the members that matter: the daemon sees the
    // hang-up and frees this client's slot and in-flight work.
}

// ---------------------------------------------------------------------------
// Liveness

bool Connection::socket_hung_up() const noexcept {
    pollfd p{socket_.get(), POLLIN | POLLRDHUP, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, 0);
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0) return false;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) return true;
    if (p.revents & POLLIN) {
        // Nothing is ever sent after the welcome: readable means EOF (or a peer
        // breaking the protocol, which is not our concern here).
        char byte;
        const ssize_t n = ::recv(socket_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0;
    }
    return false;
}

bool Connection::alive_fast() noexcept {
    if (dead()) return false;
    if (state_.heartbeat_age() <= kHeartbeatStale) return true;  // no system call (vDSO clock)
    if (!socket_hung_up()) return true;                          // stalled perhaps, but still there
    try {
        mark_dead("regiond's heartbeat stopped and its socket hung up");
    } catch (...) {
        dead_.store(true, std::memory_order_release);  // out of memory for the reason: still dead
    }
    return false;
}

bool Connection::cache_lookup(std::string_view key, std::string_view sql,
                              std::span<const std::optional<std::string_view>> params, std::vector<std::byte>& blob) {
    // One clock read for both the heartbeat and the entries' expiry.
    const std::uint64_t now = shm::monotonic_now_ns();
    const std::uint64_t beat = state_.heartbeat_ns();
    // A beat after `now` (stored between the two loads) is fresh.
    const auto stale = static_cast<std::uint64_t>(std::chrono::nanoseconds(kHeartbeatStale).count());
    if (dead() || (now > beat && now - beat > stale)) return false;
    if (!cache_reader_.lookup(key, sql, params, now, blob)) return false;
    segment_.add_cache_hit();
    return true;
}

void Connection::mark_dead(const std::string& reason) {
    std::lock_guard lk(route_mu_);
    if (dead_.load(std::memory_order_relaxed)) return;
    dead_reason_ = reason;
    dead_.store(true, std::memory_order_release);
    bool event_calls = false;
    for (auto& [id, q] : pending_) {
        if (!q->complete) {
            q->lost = true;
            q->complete = true;
            if (q->event_call) {
                finish_event_call_locked(q);
                event_calls = true;
            }
        }
        q->cv.notify_one();
    }
    pending_.clear();
    if (event_calls) notify_finished_locked();
}

std::uint64_t Connection::request_ring_tail() const noexcept {
    // SYNC POINT (tail): acquire pairs with the daemon's release store of the tail
    // after it copied a request out (RingConsumer::publish_tail). Read only once the
    // connection is dead, when the value no longer moves.
    return request_control_->tail.load(std::memory_order_acquire);
}

// ---------------------------------------------------------------------------
// Sending

void Connection::wake_daemon() noexcept {
    if (daemon_wake_ == shm::DaemonWake::eventfd) {
        shm::Waker::eventfd(eventfd_.get()).wake();
    } else {
        segment_.requests().wake_consumer_futex();
    }
}

Connection::SendStatus Connection::send(const shm::RequestView& request, std::uint64_t request_id, std::size_t size,
                                        Deadline deadline, std::uint64_t& sent_end) {
    auto next_probe = Clock::now() + kLivenessProbe;
    std::chrono::microseconds backoff{0};
    for (;;) {
        bool wake = false;
        shm::RingError error;
        {
            std::lock_guard lk(produce_mu_);
            if (dead()) return SendStatus::lost;
            shm::RingProducer& ring = segment_.requests();
            // Encoded in place: no intermediate copy of large requests.
            const shm::Reservation reservation = ring.try_reserve(static_cast<std::uint32_t>(size));
            error = reservation.error;
            if (reservation) {
                if (shm::encode_request(request, reservation.payload) != size) return SendStatus::failed;
                const shm::PushResult pushed = ring.commit(shm::RecordKind::request, shm::kRecordFlagLast, request_id,
                                                           static_cast<std::uint32_t>(size));
                if (!pushed) return SendStatus::failed;
                // Relaxed: this thread (under produce_mu_) just stored it in commit();
                // we are the only writer of head.
                sent_end = request_control_->head.load(std::memory_order_relaxed);
                wake = pushed.needs_wakeup;
            }
        }
        if (error == shm::RingError::ok) {
            if (wake) wake_daemon();  // only when the daemon said it sleeps
            return SendStatus::sent;
        }
        if (error == shm::RingError::corrupt) {
            mark_dead("protocol error: the request ring is corrupt");
            return SendStatus::lost;
        }
        if (error != shm::RingError::full) return SendStatus::failed;

        // The ring is full: wait for the daemon to take requests out, bounded by the
        // deadline. Meanwhile drain responses if no one else does: a daemon that
        // cannot push answers may stop taking requests.
        const auto now = Clock::now();
        if (deadline && now >= *deadline) return SendStatus::timed_out;
        help_drain();
        if (now >= next_probe) {
            if (socket_hung_up()) {
                mark_dead("regiond hung up while the request ring was full");
                return SendStatus::lost;
            }
            next_probe = now + kLivenessProbe;
        }
        if (dead()) return SendStatus::lost;
        if (backoff.count() == 0) {
            std::this_thread::yield();
            backoff = std::chrono::microseconds(10);
        } else {
            auto pause = backoff;
            if (deadline)
                pause = std::min(pause, std::chrono::duration_cast<std::chrono::microseconds>(*deadline - now));
            if (pause.count() > 0) pause_for(pause);
            backoff = std::min(backoff * 2, kMaxPushBackoff);
        }
    }
}

void Connection::send_cancel(std::uint64_t request_id) noexcept {
    bool wake = false;
    {
        std::lock_guard lk(produce_mu_);
        if (dead()) return;
        // Best effort: a full ring means the daemon is busy and will drop the answer
        // for an unknown id on our side anyway.
        const shm::PushResult pushed = segment_.requests().try_push(shm::RecordKind::cancel, shm::kRecordFlagLast,
                                                                    request_id, std::span<const std::byte>{});
        wake = pushed && pushed.needs_wakeup;
    }
    if (wake) wake_daemon();
}

// ---------------------------------------------------------------------------
// Receiving

void Connection::hand_off_locked(const Pending* skip) {
    for (auto& [id, q] : pending_) {
        if (q.get() != skip && q->waiting && !q->complete) {
            q->cv.notify_one();
            return;
        }
    }
    // No blocking call waits to lead: the event loop must drain and re-arm
    // for its calls (the flag this leader slept with is down again).
    if (event_calls_in_flight_ > 0 && !event_pump_leads_) notify_finished_locked();
}

void Connection::help_drain() {
    {
        std::lock_guard lk(route_mu_);
        if (leader_active_) return;
        leader_active_ = true;
    }
    drain(nullptr);
    std::lock_guard lk(route_mu_);
    leader_active_ = false;
    hand_off_locked(nullptr);
}

void Connection::wait_for(Pending& mine, Deadline deadline) {
    std::unique_lock lk(route_mu_);
    for (;;) {
        if (mine.complete) return;
        if (deadline && Clock::now() >= *deadline) return;
        if (!leader_active_) {
            leader_active_ = true;
            lk.unlock();
            lead(mine, deadline);
            lk.lock();
            leader_active_ = false;
            hand_off_locked(&mine);
            continue;
        }
        mine.waiting = true;
        if (deadline) {
            mine.cv.wait_until(lk, *deadline);
        } else {
            mine.cv.wait(lk);
        }
        mine.waiting = false;
    }
}

void Connection::lead(Pending& mine, Deadline deadline) {
    for (;;) {
        if (drain(&mine)) return;
        if (dead()) return;
        const auto now = Clock::now();
        if (deadline && now >= *deadline) return;
        auto slice = std::chrono::duration_cast<std::chrono::nanoseconds>(kLivenessProbe);
        if (deadline) slice = std::min(slice, std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - now));
        // Spins while an answer is expected soon (ExpectedWaitSpinner), then
        // sleeps on the response ring's futex word with the need-wake-up flag set.
        //
        // How long it spins is decided for the whole host: the daemon's permit
        // for this client caps the spinner's own expectation (shm/wait_policy.hpp),
        // so spinners never take the cores the daemon and the database need.
        // The permit is worth nothing once the daemon's heartbeat is stale.
        shm::RingConsumer& responses = segment_.responses();
        const auto waiting_since = Clock::now();
        const auto own = static_cast<std::uint32_t>(std::min<std::int64_t>(spinner_.budget().count(), UINT32_MAX));
        const std::chrono::nanoseconds limit{
            shm::client_spin_ns(own, segment_.spin_permit(), state_.heartbeat_age() <= kHeartbeatStale)};
        bool ready = false;
        if (limit.count() > 0) {
            segment_.set_wait_state(shm::ClientWaitState::spinning);
            ready = spinner_.spin_for(limit, [&responses] { return responses.has_data(); });
        } else {
            ready = responses.has_data();
        }
        if (!ready) {
            segment_.set_wait_state(shm::ClientWaitState::sleeping);
            const bool timed_out = responses.wait(nullptr, slice) == shm::WaitResult::timed_out;
            if (timed_out && socket_hung_up()) {
                segment_.set_wait_state(shm::ClientWaitState::idle);
                mark_dead("regiond hung up while a call was waiting for its answer");
                return;
            }
        }
        segment_.set_wait_state(shm::ClientWaitState::idle);
        if (limit.count() > 0) segment_.count_wait(false);
        if (!ready) segment_.count_wait(true);
        spinner_.observe(Clock::now() - waiting_since);
    }
}

bool Connection::drain(const Pending* mine) {
    bool mine_done = false;
    for (int i = 0; i < kDrainBatch; ++i) {
        const shm::PopResult r = segment_.responses().try_pop(pop_buffer_);
        if (r.error == shm::RingError::empty) break;
        if (r.error == shm::RingError::corrupt) {
            mark_dead("protocol error: regiond's response ring is corrupt");
            break;
        }
        if (r.kind != shm::RecordKind::response) {
            mark_dead("protocol error: unexpected record kind " + std::to_string(static_cast<unsigned>(r.kind)) +
                      " in the response ring");
            break;
        }
        if (r.error == shm::RingError::too_large) continue;  // cannot happen: the buffer is max_payload
        if (route(r.request_id, r.flags, r.size, mine)) mine_done = true;
    }
    return mine_done;
}

bool Connection::route(std::uint64_t request_id, std::uint16_t flags, std::size_t size, const Pending* mine) {
    std::shared_ptr<Pending> q;
    {
        std::lock_guard lk(route_mu_);
        const auto it = pending_.find(request_id);
        if (it == pending_.end()) return false;  // its caller gave up: drop the chunk
        q = it->second;
    }
    // Only the leader feeds decoders, so this needs no lock; the caller reads the
    // decoder only after seeing `complete` under route_mu_.
    const shm::CodecError e = q->decoder.feed(std::span<const std::byte>(pop_buffer_.data(), size));
    std::string failure;
    if (e != shm::CodecError::ok) {
        failure = std::string("malformed response from regiond (") + shm::to_string(e) + ")";
    } else if (!q->decoder.complete()) {
        if ((flags & shm::kRecordFlagLast) == 0) return false;  // more chunks to come
        failure = "malformed response from regiond (its last record is not the last chunk)";
    }
    std::lock_guard lk(route_mu_);
    if (!q->complete) {
        q->failure = std::move(failure);
        q->complete = true;
        if (q->event_call) {
            finish_event_call_locked(q);
            if (!event_pump_leads_) notify_finished_locked();  // a blocking leader routed it
        }
    }
    if (const auto it = pending_.find(request_id); it != pending_.end() && it->second == q) pending_.erase(it);
    q->cv.notify_one();
    return q.get() == mine;
}

// ---------------------------------------------------------------------------
// A call

std::optional<std::string> Connection::refuse_size(std::size_t size) const {
    if (size == 0)
        return "request exceeds the protocol's limits (a value of 4 GiB or more, or more than 65535 "
               "parameters or invalidate keys)";
    // The daemon publishes its daemon.max_request in the client segment (0 from
    // a daemon that does not): the same refusal it would answer, without the
    // round trip. The ring's record limit bounds it anyway.
    if (const std::uint32_t daemon_max = segment_.max_request();
        daemon_max != 0 && size > daemon_max && daemon_max <= max_request_)
        return base::request_exceeds_max_request(size, daemon_max);
    if (size > max_request_) return base::request_exceeds_ring(size, max_request_);
    return std::nullopt;
}

CallOutcome Connection::call(const shm::RequestView& request, std::uint64_t request_id, Deadline deadline) {
    CallOutcome out;
    const std::size_t size = shm::encoded_request_size(request);
    if (auto refused = refuse_size(size)) {
        out.message = std::move(*refused);
        return out;
    }

    auto mine = std::make_shared<Pending>(request_id);
    {
        std::lock_guard lk(route_mu_);
        if (dead()) {
            out.kind = CallOutcome::Kind::lost;
            return out;
        }
        // Registered before the push, so the answer always finds it.
        pending_.emplace(request_id, mine);
    }
    auto forget = [&] {
        std::lock_guard lk(route_mu_);
        if (const auto it = pending_.find(request_id); it != pending_.end() && it->second == mine) pending_.erase(it);
    };

    std::uint64_t sent_end = 0;
    switch (send(request, request_id, size, deadline, sent_end)) {
        case SendStatus::sent: break;
        case SendStatus::timed_out:
            forget();
            out.kind = CallOutcome::Kind::timed_out;
            return out;
        case SendStatus::lost:
            forget();
            out.kind = CallOutcome::Kind::lost;
            return out;
        case SendStatus::failed:
            forget();
            out.message = "internal error: could not encode the request into the ring";
            return out;
    }
    out.sent = true;

    wait_for(*mine, deadline);

    std::unique_lock lk(route_mu_);
    if (!mine->complete) {
        lk.unlock();
        forget();  // a late answer is dropped by route()
        send_cancel(request_id);
        out.kind = CallOutcome::Kind::timed_out;
        return out;
    }
    if (mine->lost) {
        out.message = dead_reason_;
        lk.unlock();
        out.kind = CallOutcome::Kind::lost;
        // The daemon's tail passed our record only if it copied the request out.
        out.consumed = request_ring_tail() >= sent_end;
        return out;
    }
    if (!mine->failure.empty()) {
        out.message = std::move(mine->failure);
        return out;
    }
    lk.unlock();
    out.kind = CallOutcome::Kind::answered;
    out.response = mine->decoder.take();
    return out;
}

}  // namespace regiond::client

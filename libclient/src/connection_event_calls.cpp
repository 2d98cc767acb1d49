// Connection's half of the event-loop interface: pushing without waiting,
// draining when no thread leads, arming the daemon's eventfd wake-up, and
// handing finished calls over (see connection.hpp for how they share the
// rings and the leader role with blocking calls).
#include <unistd.h>

#include <cstdint>

#include "connection.hpp"
#include "shm/ring.hpp"

namespace regiond::client {

namespace {

/// Rounds of up to kDrainBatch records one pump() drains before it returns to
/// the event loop (which comes back at once while the eventfd is readable).
constexpr int kPumpRounds = 16;

}  // namespace

Connection::StartStatus Connection::start(const shm::RequestView& request, std::uint64_t request_id,
                                          std::string& message) {
    const std::size_t size = shm::encoded_request_size(request);
    if (auto refused = refuse_size(size)) {
        message = std::move(*refused);
        return StartStatus::failed;
    }
    auto call = std::make_shared<Pending>(request_id);
    call->event_call = true;
    {
        std::lock_guard lk(route_mu_);
        if (dead()) return StartStatus::lost;
        // Registered before the push, so the answer always finds it.
        pending_.emplace(request_id, call);
        ++event_calls_in_flight_;
    }
    auto unregister = [&] {
        std::lock_guard lk(route_mu_);
        if (const auto it = pending_.find(request_id); it != pending_.end() && it->second == call) {
            pending_.erase(it);
            --event_calls_in_flight_;
        }
    };

    bool wake = false;
    shm::RingError error;
    {
        std::lock_guard lk(produce_mu_);
        if (dead()) {
            error = shm::RingError::corrupt;  // reported as lost below
        } else {
            shm::RingProducer& ring = segment_.requests();
            const shm::Reservation reservation = ring.try_reserve(static_cast<std::uint32_t>(size));
            error = reservation.error;
            if (reservation) {
                if (shm::encode_request(request, reservation.payload) != size) {
                    unregister();
                    message = "internal error: could not encode the request into the ring";
                    return StartStatus::failed;
                }
                const shm::PushResult pushed = ring.commit(shm::RecordKind::request, shm::kRecordFlagLast, request_id,
                                                           static_cast<std::uint32_t>(size));
                if (!pushed) {
                    unregister();
                    message = "internal error: could not publish the request in the ring";
                    return StartStatus::failed;
                }
                // Relaxed: this thread (under produce_mu_) just stored it in commit().
                call->sent_end = request_control_->head.load(std::memory_order_relaxed);
                wake = pushed.needs_wakeup;
            }
        }
    }
    if (error == shm::RingError::ok) {
        if (wake) wake_daemon();
        return StartStatus::sent;
    }
    unregister();
    if (dead()) return StartStatus::lost;
    if (error == shm::RingError::full) return StartStatus::ring_full;
    if (error == shm::RingError::corrupt) {
        mark_dead("protocol error: the request ring is corrupt");
        return StartStatus::lost;
    }
    message = "internal error: could not reserve space in the request ring";
    return StartStatus::failed;
}

void Connection::finish_event_call_locked(const std::shared_ptr<Pending>& q) {
    finished_event_calls_.push_back(q);
    if (event_calls_in_flight_ > 0) --event_calls_in_flight_;
}

void Connection::notify_finished_locked() noexcept {
    if (finished_notify_fd_ < 0) return;
    const std::uint64_t one = 1;
    // EAGAIN (counter full) cannot happen at 1 per write; any error leaves the
    // event loop to its next liveness tick, which pumps anyway.
    [[maybe_unused]] const ssize_t n = ::write(finished_notify_fd_, &one, sizeof one);
}

void Connection::set_finished_notify(int fd) {
    std::lock_guard lk(route_mu_);
    finished_notify_fd_ = fd;
}

void Connection::take_finished(std::vector<std::pair<std::uint64_t, CallOutcome>>& out) {
    std::vector<std::shared_ptr<Pending>> finished;
    std::string dead_reason;
    {
        std::lock_guard lk(route_mu_);
        finished.swap(finished_event_calls_);
        dead_reason = dead_reason_;
    }
    for (const auto& q : finished) {
        // complete was set under route_mu_ before the Pending was listed, and
        // nobody feeds its decoder any more: reading it needs no lock.
        CallOutcome outcome;
        outcome.sent = true;
        if (q->lost) {
            outcome.kind = CallOutcome::Kind::lost;
            outcome.message = dead_reason;
            // The daemon's tail passed our record only if it copied the request out.
            outcome.consumed = request_ring_tail() >= q->sent_end;
        } else if (!q->failure.empty()) {
            outcome.kind = CallOutcome::Kind::failed;
            outcome.message = q->failure;
        } else {
            outcome.kind = CallOutcome::Kind::answered;
            outcome.response = q->decoder.take();
        }
        out.emplace_back(q->request_id, std::move(outcome));
    }
}

void Connection::pump() {
    {
        std::lock_guard lk(route_mu_);
        if (leader_active_) return;  // a blocking call leads: it routes our answers and notifies
        leader_active_ = true;
        event_pump_leads_ = true;
    }
    // Awake now: the daemon need not wake us while we drain.
    segment_.responses().end_sleep();
    for (int round = 0; round < kPumpRounds && !dead(); ++round) {
        if (!segment_.responses().has_data()) break;
        drain(nullptr);
    }
    std::lock_guard lk(route_mu_);
    leader_active_ = false;
    // Still marked as the pump's: handing off must not signal the event loop
    // about itself (a system call per pump otherwise).
    hand_off_locked(nullptr);
    event_pump_leads_ = false;
}

bool Connection::arm() {
    std::lock_guard lk(route_mu_);  // no thread becomes leader while we look
    if (leader_active_ || dead()) return true;
    // Stored before prepare_sleep()'s seq_cst fence (ClientHeader::client_wake).
    segment_.request_eventfd_wake();
    return segment_.responses().prepare_sleep().may_sleep;
}

void Connection::abandon(std::uint64_t request_id) {
    bool was_pending = false;
    {
        std::lock_guard lk(route_mu_);
        if (const auto it = pending_.find(request_id); it != pending_.end()) {
            if (it->second->event_call && !it->second->complete && event_calls_in_flight_ > 0)
                --event_calls_in_flight_;
            pending_.erase(it);  // a late answer is dropped by route()
            was_pending = true;
        }
    }
    if (was_pending) send_cancel(request_id);
}

bool Connection::check_hang_up() {
    if (dead()) return true;
    if (!socket_hung_up()) return false;
    mark_dead("regiond hung up while calls were in flight");
    return true;
}

}  // namespace regiond::client

#include "event_loop_calls.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client.hpp"

namespace regiond::client {

namespace {

// epoll tags of the descriptors inside the event descriptor.
constexpr std::uint32_t kTagFinished = 1;
constexpr std::uint32_t kTagTimer = 2;
constexpr std::uint32_t kTagClientEvent = 3;
constexpr std::uint32_t kTagSocket = 4;

/// While requests wait for ring space, how soon the library tries again
/// (the daemon may take requests without answering yet: no answer would wake us).
constexpr std::chrono::milliseconds kRingFullRetry{2};
/// While the daemon is down, how often a re-sent call looks for it again.
constexpr std::chrono::milliseconds kReconnectRetry{50};
/// How long a lost call that may be re-sent looks for a restarting daemon
/// (bounded by its deadline) before it fails as the blocking calls do.
constexpr std::chrono::milliseconds kRestartGrace{2000};
/// Reconnects one progress() makes at most (a daemon that dies at once again).
constexpr int kMaxReconnectsPerProgress = 3;
/// arm() found an answer already there: pump and try again, this many times.
constexpr int kMaxArmRounds = 8;

void drain_counter(int fd) noexcept {
    std::uint64_t value;
    // Resets an eventfd/timerfd; EAGAIN (already zero) is fine.
    [[maybe_unused]] const ssize_t n = ::read(fd, &value, sizeof value);
}

bool epoll_add(int epoll, int fd, std::uint32_t events, std::uint32_t tag) noexcept {
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = tag;
    return ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------
// OwnedRequest

OwnedRequest OwnedRequest::copy_of(const shm::RequestView& view) {
    OwnedRequest r;
    r.op = view.op;
    r.ttl_seconds = view.ttl_seconds;
    r.key = view.key;
    r.token = view.token;
    r.sql = view.sql;
    r.params.reserve(view.params.size());
    for (const auto& p : view.params) {
        if (p) {
            r.params.emplace_back(std::string(*p));
        } else {
            r.params.emplace_back(std::nullopt);
        }
    }
    r.invalidate_keys.assign(view.invalidate_keys.begin(), view.invalidate_keys.end());
    return r;
}

shm::RequestView OwnedRequest::view() const {
    shm::RequestView v;
    v.op = op;
    v.ttl_seconds = ttl_seconds;
    v.key = key;
    v.token = token;
    v.sql = sql;
    v.params.reserve(params.size());
    for (const auto& p : params) {
        if (p) {
            v.params.emplace_back(std::string_view(*p));
        } else {
            v.params.emplace_back(std::nullopt);
        }
    }
    v.invalidate_keys.assign(invalidate_keys.begin(), invalidate_keys.end());
    return v;
}

// ---------------------------------------------------------------------------
// Setup

std::unique_ptr<EventLoopCalls> EventLoopCalls::create(std::string& error) {
    shm::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    shm::UniqueFd finished(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    shm::UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!epoll || !finished || !timer) {
        error = std::string("cannot create the event descriptor: ") + std::strerror(errno);
        return nullptr;
    }
    if (!epoll_add(epoll.get(), finished.get(), EPOLLIN, kTagFinished) ||
        !epoll_add(epoll.get(), timer.get(), EPOLLIN, kTagTimer)) {
        error = std::string("cannot set up the event descriptor: ") + std::strerror(errno);
        return nullptr;
    }
    return std::unique_ptr<EventLoopCalls>(new EventLoopCalls(std::move(epoll), std::move(finished), std::move(timer)));
}

EventLoopCalls::EventLoopCalls(shm::UniqueFd epoll, shm::UniqueFd finished, shm::UniqueFd timer)
    : epoll_(std::move(epoll)), finished_(std::move(finished)), timer_(std::move(timer)) {}

EventLoopCalls::~EventLoopCalls() {
    std::lock_guard lk(mu_);
    // The connection may outlive us (another thread's blocking call holds it):
    // it must not write our eventfd after it closes.
    if (watched_) watched_->set_finished_notify(-1);
}

// ---------------------------------------------------------------------------
// Starting, cancelling, counting

std::uint64_t EventLoopCalls::start(rgd_client& client, const shm::RequestView& request) {
    std::lock_guard lk(mu_);
    const std::uint64_t id = client.next_request_id.fetch_add(1, std::memory_order_relaxed);
    Call call;
    call.request = OwnedRequest::copy_of(request);
    call.timeout_ms = client.timeout_ms.load(std::memory_order_relaxed);
    call.deadline = deadline_for(call.timeout_ms);
    if (call.deadline) deadlines_.emplace(*call.deadline, id);
    calls_.emplace(id, std::move(call));
    queue_.push_back(id);
    progress(client, false);  // sends it now if it can, and arms the wake-up
    if (!finished_results_.empty()) raise_finished_signal();
    return id;
}

std::uint64_t EventLoopCalls::start_finished(rgd_client& client, ResultPtr result) {
    std::lock_guard lk(mu_);
    const std::uint64_t id = client.next_request_id.fetch_add(1, std::memory_order_relaxed);
    finished_results_.emplace_back(id, std::move(result));
    raise_finished_signal();
    return id;
}

std::size_t EventLoopCalls::pending() const {
    std::lock_guard lk(mu_);
    return calls_.size() + finished_results_.size();
}

bool EventLoopCalls::cancel(std::uint64_t id) {
    std::lock_guard lk(mu_);
    const auto it = calls_.find(id);
    if (it == calls_.end()) return false;
    if (it->second.stage == Stage::sent && it->second.connection) it->second.connection->abandon(id);
    finish(id, make_error("cancelled"));
    raise_finished_signal();
    return true;
}

// ---------------------------------------------------------------------------
// Collecting

ResultPtr EventLoopCalls::collect(rgd_client& client, std::uint64_t& id) {
    std::lock_guard lk(mu_);
    if (finished_results_.empty()) progress(client, true);
    if (finished_results_.empty()) {
        id = 0;
        return nullptr;
    }
    auto [done, result] = std::move(finished_results_.front());
    finished_results_.pop_front();
    // Level-triggered for a loop that collects one result per wake-up.
    if (!finished_results_.empty()) raise_finished_signal();
    id = done;
    return std::move(result);
}

void EventLoopCalls::progress(rgd_client& client, bool woken) {
    // What woke us: reset each signal before looking at what it signals, so a
    // signal raised while we look is seen at the next wake-up. A start skips
    // this (one system call per call otherwise): what it leaves raised wakes
    // the loop, which collects.
    epoll_event events[8];
    const int n = woken ? ::epoll_wait(epoll_.get(), events, 8, 0) : 0;
    bool hang_up = false;
    for (int i = 0; i < n; ++i) {
        switch (events[i].data.u32) {
            case kTagFinished: reset_finished_signal(); break;
            case kTagTimer:
                drain_counter(timer_.get());
                timer_at_ = Clock::time_point::max();
                break;
            case kTagClientEvent:
                if (watched_) drain_counter(watched_->client_eventfd());
                break;
            case kTagSocket: hang_up = true; break;
            default: break;
        }
    }
    if (hang_up && watched_) watched_->check_hang_up();
    // The liveness check of the blocking calls: no system call while the
    // daemon's heartbeat is fresh; a stale one with a hung-up socket is dead.
    if (watched_ && !deadlines_.empty()) (void)watched_->alive_fast();

    follow_connection(client);
    if (watched_) {
        watched_->pump();
        take_finished_from(*watched_);
        follow_connection(client);
    }
    send_queued(client);
    const auto now = Clock::now();
    expire(now);
    // Sleep only with the wake-up armed and nothing left in the ring.
    if (watched_ && calls_.size() > queue_.size()) {
        for (int round = 0; round < kMaxArmRounds; ++round) {
            if (watched_->arm()) break;
            watched_->pump();
            take_finished_from(*watched_);
        }
    }
    arm_timer(now);
}

void EventLoopCalls::follow_connection(rgd_client& client) {
    std::shared_ptr<Connection> current;
    {
        std::lock_guard lk(client.connection_mu);
        current = client.connection;
    }
    if (watched_ && (watched_ != current || watched_->dead())) {
        // Dead or replaced (its calls were failed as lost): take them before
        // letting it go.
        take_finished_from(*watched_);
        unwatch();
    }
    if (!watched_ && current && !current->dead()) watch(current);
}

void EventLoopCalls::watch(const std::shared_ptr<Connection>& connection) {
    watched_ = connection;
    // Adding fails only without memory for the epoll entry (ENOMEM); then the
    // calls on this connection end at their deadlines.
    (void)epoll_add(epoll_.get(), connection->client_eventfd(), EPOLLIN, kTagClientEvent);
    (void)epoll_add(epoll_.get(), connection->socket_fd(), EPOLLRDHUP, kTagSocket);
    connection->set_finished_notify(finished_.get());
}

void EventLoopCalls::unwatch() {
    if (!watched_) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watched_->client_eventfd(), nullptr);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watched_->socket_fd(), nullptr);
    watched_->set_finished_notify(-1);
    watched_.reset();
}

void EventLoopCalls::take_finished_from(Connection& connection) {
    scratch_.clear();
    connection.take_finished(scratch_);
    const auto now = Clock::now();
    for (auto& [id, outcome] : scratch_) {
        const auto it = calls_.find(id);
        if (it == calls_.end()) continue;  // cancelled or timed out meanwhile
        Call& call = it->second;
        switch (outcome.kind) {
            case CallOutcome::Kind::answered: finish(id, make_result(std::move(outcome.response))); break;
            case CallOutcome::Kind::failed: finish(id, make_error(std::move(outcome.message))); break;
            case CallOutcome::Kind::timed_out:
                finish(id, make_error("timed out after " + std::to_string(call.timeout_ms) + " ms"));
                break;
            case CallOutcome::Kind::lost: {
                // Lost with its connection: re-sent when that is safe (client.hpp
                // says why a write the daemon took is never re-sent).
                const bool resendable = !outcome.consumed || call.request.op != shm::Op::write;
                const bool in_time = !call.deadline || now < *call.deadline;
                if (resendable && in_time && call.resends < kMaxResends) {
                    ++call.resends;
                    if (!call.lost_since) call.lost_since = now;
                    call.stage = Stage::queued;
                    call.connection.reset();
                    queue_.push_back(id);
                } else {
                    finish(id, make_error(kConnectionLost));
                }
                break;
            }
        }
    }
    scratch_.clear();
}

void EventLoopCalls::send_queued(rgd_client& client) {
    int reconnects = 0;
    while (!queue_.empty()) {
        const std::uint64_t id = queue_.front();
        const auto it = calls_.find(id);
        if (it == calls_.end() || it->second.stage != Stage::queued) {
            queue_.pop_front();  // finished meanwhile (cancelled, timed out)
            continue;
        }
        Call& call = it->second;
        if (!watched_) {
            const auto now = Clock::now();
            // A fresh call tries at once (as a blocking call would); re-sent
            // ones wait for the retry timer while the daemon is down.
            if ((call.resends > 0 && now < next_connect_) || reconnects >= kMaxReconnectsPerProgress) return;
            ++reconnects;
            std::string error;
            // May make a new connection: the one handshake a start or a
            // collect can wait for (bounded; see client.h).
            const std::shared_ptr<Connection> connection = usable_connection(client, call.deadline, error);
            if (!connection) {
                // Fresh calls fail at once with the daemon's error, as the
                // blocking calls do; re-sent ones look for the daemon again
                // for kRestartGrace (a restart), then fail as lost.
                next_connect_ = now + kReconnectRetry;
                for (auto q = queue_.begin(); q != queue_.end();) {
                    const auto c = calls_.find(*q);
                    if (c == calls_.end() || c->second.stage != Stage::queued) {
                        q = queue_.erase(q);
                        continue;
                    }
                    const Call& waiting = c->second;
                    const std::uint64_t failed = *q;
                    if (waiting.resends == 0) {
                        q = queue_.erase(q);
                        finish(failed, make_error(error));
                    } else if (waiting.lost_since && now >= *waiting.lost_since + kRestartGrace) {
                        q = queue_.erase(q);
                        finish(failed, make_error(std::string(kConnectionLost) + " (reconnecting failed: " + error + ")"));
                    } else {
                        ++q;
                    }
                }
                return;
            }
            follow_connection(client);
            if (!watched_) return;
            continue;
        }
        shm::RequestView view = call.request.view();
        view.timeout_ms = remaining_ms(call.deadline);
        std::string message;
        switch (watched_->start(view, id, message)) {
            case Connection::StartStatus::sent:
                call.stage = Stage::sent;
                call.connection = watched_;
                queue_.pop_front();
                break;
            case Connection::StartStatus::ring_full: return;  // the timer or the next answer comes back
            case Connection::StartStatus::lost: follow_connection(client); break;
            case Connection::StartStatus::failed:
                queue_.pop_front();
                finish(id, make_error(std::move(message)));
                break;
        }
    }
}

void EventLoopCalls::expire(Clock::time_point now) {
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        const std::uint64_t id = deadlines_.begin()->second;
        const auto it = calls_.find(id);
        if (it == calls_.end()) {
            deadlines_.erase(deadlines_.begin());
            continue;
        }
        if (it->second.stage == Stage::sent && it->second.connection) it->second.connection->abandon(id);
        finish(id, make_error("timed out after " + std::to_string(it->second.timeout_ms) + " ms"));
    }
}

void EventLoopCalls::arm_timer(Clock::time_point now) {
    auto next = Clock::time_point::max();
    if (!deadlines_.empty()) next = deadlines_.begin()->first;
    if (!queue_.empty()) next = std::min(next, watched_ ? now + kRingFullRetry : std::max(next_connect_, now));
    // No periodic tick while calls are in flight: answers wake us through the
    // client eventfd and a dead daemon through its socket's hang-up, so a lost
    // wake-up would show as a timeout (and fail the tests), not hide behind a poll.
    // An armed timer that fires no later than needed is kept: re-arming at
    // every collect would cost a system call each.
    if (timer_at_ != Clock::time_point::max() && timer_at_ > now && timer_at_ <= next) return;
    if (next == Clock::time_point::max() && timer_at_ == Clock::time_point::max()) return;
    itimerspec spec{};
    if (next != Clock::time_point::max()) {
        // steady_clock is CLOCK_MONOTONIC on Linux; 0 would disarm, so at least 1 ns.
        const auto ns = std::max<std::int64_t>(
            1, std::chrono::duration_cast<std::chrono::nanoseconds>(next.time_since_epoch()).count());
        spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) == 0) timer_at_ = next;
}

void EventLoopCalls::finish(std::uint64_t id, ResultPtr result) {
    const auto it = calls_.find(id);
    if (it == calls_.end()) return;
    forget_deadline(id, it->second);
    calls_.erase(it);
    finished_results_.emplace_back(id, std::move(result));
}

void EventLoopCalls::forget_deadline(std::uint64_t id, const Call& call) {
    if (!call.deadline) return;
    auto [first, last] = deadlines_.equal_range(*call.deadline);
    for (auto d = first; d != last; ++d) {
        if (d->second == id) {
            deadlines_.erase(d);
            return;
        }
    }
}

void EventLoopCalls::reset_finished_signal() noexcept {
    drain_counter(finished_.get());
    finished_raised_ = false;
}

void EventLoopCalls::raise_finished_signal() noexcept {
    if (finished_raised_) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(finished_.get(), &one, sizeof one);
    finished_raised_ = true;
}

}  // namespace regiond::client

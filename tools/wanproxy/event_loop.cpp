#include "event_loop.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <array>
#include <cerrno>
#include <ctime>
#include <system_error>
#include <utility>

namespace wanproxy {

namespace {

[[noreturn]] void throw_errno(const char* what) {
    throw std::system_error(errno, std::generic_category(), what);
}

constexpr std::uint64_t kTimerToken = 0;

}  // namespace

std::int64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// ---- Watch ----

Watch::Watch(Watch&& other) noexcept
    : loop_(std::exchange(other.loop_, nullptr)),
      token_(std::exchange(other.token_, 0)),
      events_(std::exchange(other.events_, 0)) {}

Watch& Watch::operator=(Watch&& other) noexcept {
    if (this != &other) {
        reset();
        loop_ = std::exchange(other.loop_, nullptr);
        token_ = std::exchange(other.token_, 0);
        events_ = std::exchange(other.events_, 0);
    }
    return *this;
}

void Watch::set_events(std::uint32_t events) {
    if (loop_ != nullptr && events != events_) {
        loop_->modify(token_, events);
        events_ = events;
    }
}

void Watch::reset() noexcept {
    if (loop_ != nullptr) {
        loop_->unwatch(token_);
        loop_ = nullptr;
        token_ = 0;
        events_ = 0;
    }
}

// ---- TimerHandle ----

TimerHandle::TimerHandle(TimerHandle&& other) noexcept
    : loop_(std::exchange(other.loop_, nullptr)), id_(std::exchange(other.id_, 0)) {}

TimerHandle& TimerHandle::operator=(TimerHandle&& other) noexcept {
    if (this != &other) {
        cancel();
        loop_ = std::exchange(other.loop_, nullptr);
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

bool TimerHandle::pending() const noexcept {
    return loop_ != nullptr && loop_->timer_pending(id_);
}

void TimerHandle::cancel() noexcept {
    if (loop_ != nullptr) {
        loop_->cancel_timer(id_);
        loop_ = nullptr;
        id_ = 0;
    }
}

// ---- EventLoop ----

EventLoop::EventLoop()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), timerfd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (!epoll_) {
        throw_errno("epoll_create1");
    }
    if (!timerfd_) {
        throw_errno("timerfd_create");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTimerToken;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timerfd_.get(), &ev) != 0) {
        throw_errno("epoll_ctl(ADD timerfd)");
    }
}

Watch EventLoop::watch(int fd, std::uint32_t events, FdCallback callback) {
    const std::uint64_t token = next_token_++;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = token;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        throw_errno("epoll_ctl(ADD)");
    }
    fds_.emplace(token, std::make_unique<FdEntry>(FdEntry{fd, std::move(callback)}));
    return Watch(this, token, events);
}

void EventLoop::modify(std::uint64_t token, std::uint32_t events) {
    const auto it = fds_.find(token);
    if (it == fds_.end()) {
        return;
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = token;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second->fd, &ev) != 0) {
        throw_errno("epoll_ctl(MOD)");
    }
}

void EventLoop::unwatch(std::uint64_t token) noexcept {
    const auto it = fds_.find(token);
    if (it == fds_.end()) {
        return;
    }
    // An error here only means the descriptor is already closed, which also
    // removed it from the epoll set.
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd, nullptr);
    try {
        graveyard_.push_back(std::move(it->second));
    } catch (...) {
        // Out of memory while unwatching: leaking the entry is safer than
        // destroying a callback that may be running right now.
        (void)it->second.release();
    }
    fds_.erase(it);
}

TimerHandle EventLoop::at(std::int64_t deadline_ns, Task callback) {
    const std::uint64_t id = next_timer_id_++;
    timers_.emplace(id, TimerEntry{deadline_ns, std::move(callback)});
    timer_heap_.push(TimerSlot{deadline_ns, id});
    return TimerHandle(this, id);
}

void EventLoop::cancel_timer(std::uint64_t id) noexcept {
    timers_.erase(id);
}

bool EventLoop::timer_pending(std::uint64_t id) const noexcept {
    return timers_.contains(id);
}

void EventLoop::defer(Task task) {
    deferred_.push_back(std::move(task));
}

void EventLoop::compact_timer_heap() {
    std::vector<TimerSlot> live;
    live.reserve(timers_.size());
    for (const auto& [id, entry] : timers_) {
        live.push_back(TimerSlot{entry.deadline, id});
    }
    timer_heap_ = decltype(timer_heap_)(std::greater<>{}, std::move(live));
}

void EventLoop::arm_timerfd() {
    if (timer_heap_.size() > 4096 && timer_heap_.size() > 2 * timers_.size()) {
        compact_timer_heap();
    }
    // Drop cancelled timers from the top so the timerfd never wakes us for
    // nothing.
    while (!timer_heap_.empty() && !timers_.contains(timer_heap_.top().id)) {
        timer_heap_.pop();
    }
    const std::int64_t wanted = timer_heap_.empty() ? -1 : timer_heap_.top().deadline;
    if (wanted == armed_deadline_) {
        return;
    }
    itimerspec spec{};
    if (wanted >= 0) {
        // A zero it_value would disarm the timer, so a deadline at 0 becomes
        // 1 ns, which is in the past and fires at once.
        const std::int64_t at = wanted > 0 ? wanted : 1;
        spec.it_value.tv_sec = at / 1'000'000'000;
        spec.it_value.tv_nsec = at % 1'000'000'000;
    }
    if (::timerfd_settime(timerfd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
        throw_errno("timerfd_settime");
    }
    armed_deadline_ = wanted;
}

void EventLoop::run_due_timers() {
    const std::int64_t now = monotonic_ns();
    // Collect first, run after: a callback that schedules a timer which is
    // already due must not keep this loop spinning; it runs next round.
    std::vector<Task> due;
    while (!timer_heap_.empty() && timer_heap_.top().deadline <= now) {
        const auto it = timers_.find(timer_heap_.top().id);
        timer_heap_.pop();
        if (it != timers_.end()) {
            due.push_back(std::move(it->second.task));
            timers_.erase(it);
        }
    }
    for (auto& task : due) {
        task();
        run_deferred();
    }
}

void EventLoop::run_deferred() {
    // Tasks may defer more tasks; keep going until none are left.
    while (!deferred_.empty()) {
        std::vector<Task> batch;
        batch.swap(deferred_);
        for (auto& task : batch) {
            task();
        }
    }
    graveyard_.clear();
}

void EventLoop::run() {
    running_ = true;
    std::array<epoll_event, 256> events{};
    while (running_) {
        arm_timerfd();
        const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("epoll_wait");
        }
        bool timer_fired = false;
        for (int i = 0; i < n && running_; ++i) {
            const std::uint64_t token = events[static_cast<std::size_t>(i)].data.u64;
            if (token == kTimerToken) {
                timer_fired = true;
                continue;
            }
            // The entry may be gone if an earlier event in this batch closed
            // it; tokens are never reused, so a stale event cannot reach a
            // new owner of the same descriptor number.
            const auto it = fds_.find(token);
            if (it != fds_.end()) {
                FdEntry* entry = it->second.get();
                entry->callback(events[static_cast<std::size_t>(i)].events);
                run_deferred();
            }
        }
        if (timer_fired) {
            std::uint64_t expirations = 0;
            // Drain the expiration count; EAGAIN just means it raced to zero.
            (void)::read(timerfd_.get(), &expirations, sizeof expirations);
            armed_deadline_ = -1;  // an absolute one-shot timer is spent once it fires
        }
        // Timers are checked on every round, not only when the timerfd fires,
        // because a deadline may have passed while we handled other events.
        run_due_timers();
        run_deferred();
    }
}

}  // namespace wanproxy

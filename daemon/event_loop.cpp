#include "daemon/event_loop.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace regiond::daemon {

EventLoop::EventLoop() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    post_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (post_fd_ < 0) {
        const int error = errno;
        close(epoll_fd_);
        throw std::system_error(error, std::generic_category(), "eventfd");
    }
    add(post_fd_, EPOLLIN, [this](std::uint32_t) { run_posted(); });
}

EventLoop::~EventLoop() {
    if (post_fd_ >= 0) close(post_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
}

void EventLoop::post(std::function<void()> fn) {
    {
        std::lock_guard lock(post_mu_);
        posted_.push_back(std::move(fn));
    }
    const std::uint64_t one = 1;
    // EAGAIN (counter saturated) still leaves the eventfd readable: nothing lost.
    [[maybe_unused]] const ssize_t n = write(post_fd_, &one, sizeof one);
}

void EventLoop::run_posted() {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = read(post_fd_, &count, sizeof count);
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard lock(post_mu_);
        batch.swap(posted_);
    }
    for (auto& fn : batch) fn();
}

Watch EventLoop::watch(int fd, std::uint32_t events, FdHandler handler) {
    add(fd, events, std::move(handler));
    return Watch(this, fd, handlers_.at(fd).serial, events);
}

TimerHandle EventLoop::timer(Clock::time_point when, std::function<void()> fn) {
    return TimerHandle(this, add_timer(when, std::move(fn)));
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
    if (loop_ != nullptr) loop_->cancel_timer(id_);
    loop_ = nullptr;
    id_ = 0;
}

// ---- Watch ----

Watch::Watch(Watch&& other) noexcept
    : loop_(std::exchange(other.loop_, nullptr)),
      fd_(std::exchange(other.fd_, -1)),
      serial_(std::exchange(other.serial_, 0)),
      events_(std::exchange(other.events_, 0)) {}

Watch& Watch::operator=(Watch&& other) noexcept {
    if (this != &other) {
        reset();
        loop_ = std::exchange(other.loop_, nullptr);
        fd_ = std::exchange(other.fd_, -1);
        serial_ = std::exchange(other.serial_, 0);
        events_ = std::exchange(other.events_, 0);
    }
    return *this;
}

void Watch::set_events(std::uint32_t events) {
    if (loop_ == nullptr || events == events_) return;
    loop_->modify(fd_, events);
    events_ = events;
}

void Watch::reset() noexcept {
    // Only our own registration: the fd number may have been removed and
    // registered again by someone else since (the serial tells them apart).
    if (loop_ != nullptr && loop_->registration_serial(fd_) == serial_) loop_->remove(fd_);
    loop_ = nullptr;
    fd_ = -1;
    serial_ = 0;
    events_ = 0;
}

// ---- LoopScope ----

void LoopScope::defer(std::function<void()> fn) {
    std::weak_ptr<const bool> alive = alive_;
    loop_.defer([alive, fn = std::move(fn)] {
        if (!alive.expired()) fn();
    });
}

void EventLoop::add(int fd, std::uint32_t events, FdHandler handler) {
    const std::uint64_t serial = next_serial_++;
    epoll_event ev{};
    ev.events = events;
    // The serial, not the fd, travels in the event: a stale event for a removed
    // (and possibly reused) fd number is recognised and dropped at dispatch.
    ev.data.u64 = (serial << 32) | static_cast<std::uint32_t>(fd);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        throw std::system_error(errno, std::generic_category(), "epoll_ctl(ADD, fd " + std::to_string(fd) + ")");
    }
    handlers_[fd] = Registration{serial, std::make_shared<FdHandler>(std::move(handler))};
}

void EventLoop::modify(int fd, std::uint32_t events) {
    auto it = handlers_.find(fd);
    if (it == handlers_.end()) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = (it->second.serial << 32) | static_cast<std::uint32_t>(fd);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
        throw std::system_error(errno, std::generic_category(), "epoll_ctl(MOD, fd " + std::to_string(fd) + ")");
    }
}

void EventLoop::remove(int fd) {
    if (handlers_.erase(fd) != 0) {
        // ENOENT/EBADF are harmless here: the fd may already be closed by its owner.
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    }
}

EventLoop::TimerId EventLoop::add_timer(Clock::time_point when, std::function<void()> fn) {
    const TimerId id = next_timer_++;
    timer_fns_.emplace(id, std::move(fn));
    timer_heap_.push(Timer{when, id});
    return id;
}

void EventLoop::cancel_timer(TimerId id) {
    // Lazy deletion: the heap entry stays and is skipped when it comes due.
    timer_fns_.erase(id);
}

void EventLoop::defer(std::function<void()> fn) {
    deferred_.push_back(std::move(fn));
}

void EventLoop::run_deferred() {
    // Calls deferred from within deferred calls run in the next round, so a
    // handler that keeps deferring cannot starve the fds.
    std::vector<std::function<void()>> batch;
    batch.swap(deferred_);
    for (auto& fn : batch) fn();
}

void EventLoop::run_due_timers() {
    const auto now = Clock::now();
    while (!timer_heap_.empty() && timer_heap_.top().when <= now) {
        const TimerId id = timer_heap_.top().id;
        timer_heap_.pop();
        auto it = timer_fns_.find(id);
        if (it == timer_fns_.end()) continue;  // cancelled
        auto fn = std::move(it->second);
        timer_fns_.erase(it);
        fn();
    }
}

int EventLoop::run_once(Clock::duration max_wait) {
    run_deferred();
    run_due_timers();
    // What the deferred calls and timers owe (wake-ups) is done before the
    // loop spins or blocks.
    if (after_pass_) after_pass_();
    if (!deferred_.empty()) max_wait = Clock::duration::zero();
    if (before_block_ && max_wait > Clock::duration::zero() && before_block_()) {
        max_wait = Clock::duration::zero();
    }
    // The hook may have deferred work (or a timer handler above may have): it must
    // not wait for the next fd event or timer.
    if (!deferred_.empty()) max_wait = Clock::duration::zero();
    // Drop cancelled timers at the top so they do not shorten the wait.
    while (!timer_heap_.empty() && timer_fns_.count(timer_heap_.top().id) == 0) timer_heap_.pop();
    if (!timer_heap_.empty()) {
        const auto until_timer = timer_heap_.top().when - Clock::now();
        if (until_timer < max_wait)
            max_wait = until_timer < Clock::duration::zero() ? Clock::duration::zero() : until_timer;
    }
    // Round up so a timer 0.3 ms away does not turn into a busy loop of 0 ms waits.
    const auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(max_wait).count();
    epoll_event events[64];
    const int n = epoll_wait(epoll_fd_, events, 64, static_cast<int>(wait_ms));
    if (n < 0) {
        if (errno == EINTR) {
            if (after_pass_) after_pass_();
            return 0;
        }
        throw std::system_error(errno, std::generic_category(), "epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
        const int fd = static_cast<int>(static_cast<std::uint32_t>(events[i].data.u64));
        const std::uint64_t serial = events[i].data.u64 >> 32;
        auto it = handlers_.find(fd);
        if (it == handlers_.end() || (it->second.serial & 0xffffffffu) != serial) continue;
        // Hold a reference: the handler may remove itself while it runs.
        auto handler = it->second.handler;
        (*handler)(events[i].events);
    }
    run_due_timers();
    if (after_pass_) after_pass_();
    return n;
}

void EventLoop::run() {
    while (!stopped_) run_once(std::chrono::seconds(1));
}

}  // namespace regiond::daemon

// The daemon's single event loop: epoll for file descriptors, a timer heap for
// deadlines, and a queue of deferred calls. Everything the daemon does runs on
// this one thread (DESIGN.md: one loop until a benchmark shows the need for more),
// so handlers never lock.
//
// Handlers may add or remove any fd (their own included) and any timer while
// they run: dispatch looks each fd up again by a registration serial, so a
// handler removed earlier in the same batch is never called, and an fd number
// reused by a new registration in the same batch does not receive the old events.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <vector>

namespace regiond::daemon {

class EventLoop;

/// A one-shot timer of the EventLoop; cancelled when the handle is destroyed or
/// reset, so a callback can never outlive the object that owns the handle.
class TimerHandle {
public:
    TimerHandle() = default;
    TimerHandle(const TimerHandle&) = delete;
    TimerHandle& operator=(const TimerHandle&) = delete;
    TimerHandle(TimerHandle&& other) noexcept;
    TimerHandle& operator=(TimerHandle&& other) noexcept;
    ~TimerHandle() { cancel(); }

    /// True until the timer fired or was cancelled.
    [[nodiscard]] bool pending() const noexcept;
    void cancel() noexcept;

private:
    friend class EventLoop;
    TimerHandle(EventLoop* loop, std::uint64_t id) : loop_(loop), id_(id) {}

    EventLoop* loop_ = nullptr;
    std::uint64_t id_ = 0;
};

/// The registration of one descriptor; removed from the loop when the handle is
/// destroyed or reset. Declare it after the descriptor's owner (so it is
/// destroyed first).
class Watch {
public:
    Watch() = default;
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    Watch(Watch&& other) noexcept;
    Watch& operator=(Watch&& other) noexcept;
    ~Watch() { reset(); }

    [[nodiscard]] bool active() const noexcept { return loop_ != nullptr; }
    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] std::uint32_t events() const noexcept { return events_; }
    /// EPOLL_CTL_MOD, only when the set changes.
    void set_events(std::uint32_t events);
    void reset() noexcept;

private:
    friend class EventLoop;
    Watch(EventLoop* loop, int fd, std::uint64_t serial, std::uint32_t events)
        : loop_(loop), fd_(fd), serial_(serial), events_(events) {}

    EventLoop* loop_ = nullptr;
    int fd_ = -1;
    std::uint64_t serial_ = 0;
    std::uint32_t events_ = 0;
};

/// Deferred calls tied to an owner: defer() runs the call on the loop unless
/// the scope was destroyed first. Replaces the weak_ptr<bool> "alive" guards.
class LoopScope {
public:
    explicit LoopScope(EventLoop& loop) : loop_(loop) {}
    LoopScope(const LoopScope&) = delete;
    LoopScope& operator=(const LoopScope&) = delete;
    ~LoopScope() = default;

    void defer(std::function<void()> fn);
    /// A token that expires with the scope, for callbacks handed to others.
    [[nodiscard]] std::weak_ptr<const bool> token() const { return alive_; }
    EventLoop& loop() const noexcept { return loop_; }

private:
    EventLoop& loop_;
    std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
};

class EventLoop {
public:
    using Clock = std::chrono::steady_clock;
    using FdHandler = std::function<void(std::uint32_t epoll_events)>;
    using TimerId = std::uint64_t;

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Registers fd for `events` (EPOLLIN, EPOLLOUT, ...). The loop does not own fd:
    // remove it before closing it.
    void add(int fd, std::uint32_t events, FdHandler handler);
    void modify(int fd, std::uint32_t events);
    void remove(int fd);
    bool watching(int fd) const { return handlers_.count(fd) != 0; }
    /// The serial of fd's current registration, 0 when it has none.
    std::uint64_t registration_serial(int fd) const {
        auto it = handlers_.find(fd);
        return it == handlers_.end() ? 0 : it->second.serial;
    }
    /// add() with a handle that removes the registration when destroyed.
    [[nodiscard]] Watch watch(int fd, std::uint32_t events, FdHandler handler);

    TimerId add_timer(Clock::time_point when, std::function<void()> fn);
    TimerId add_timer(Clock::duration after, std::function<void()> fn) {
        return add_timer(Clock::now() + after, std::move(fn));
    }
    void cancel_timer(TimerId id);
    /// add_timer() with a handle that cancels the timer when destroyed.
    [[nodiscard]] TimerHandle timer(Clock::time_point when, std::function<void()> fn);
    [[nodiscard]] TimerHandle timer(Clock::duration after, std::function<void()> fn) {
        return timer(Clock::now() + after, std::move(fn));
    }
    bool timer_pending(TimerId id) const { return timer_fns_.count(id) != 0; }

    // Runs fn on the loop after the current dispatch (never re-entrantly).
    void defer(std::function<void()> fn);

    // The one call that is safe from another thread: runs fn on the loop soon
    // (wakes epoll_wait through an eventfd). For helper threads that hand a
    // result back (e.g. a blocking PQcancel done off the loop).
    void post(std::function<void()> fn);

    // Called once per iteration before the loop blocks; returns true when it found
    // work (the loop then polls without blocking). The daemon uses it for a
    // bounded spin on the client rings right after activity (ENVIRONMENT.md: each
    // sleep/wake hand-off costs ~20 us here).
    void set_before_block(std::function<bool()> fn) { before_block_ = std::move(fn); }
    /// Called twice in every run_once(): after the deferred calls and due
    /// timers (before the loop spins or blocks), and at the end, after the fd
    /// handlers. The ClientServer performs the wake-ups the pass owes there.
    void set_after_pass(std::function<void()> fn) { after_pass_ = std::move(fn); }

    // One iteration: deferred calls, due timers, then epoll_wait for at most
    // max_wait (shortened to the next timer). Returns the number of fd events.
    int run_once(Clock::duration max_wait);
    // Runs until stop() is called.
    void run();
    void stop() { stopped_ = true; }
    bool stopped() const { return stopped_; }

private:
    struct Registration {
        std::uint64_t serial;
        std::shared_ptr<FdHandler> handler;
    };
    struct Timer {
        Clock::time_point when;
        TimerId id;
        bool operator>(const Timer& o) const { return when > o.when || (when == o.when && id > o.id); }
    };

    void run_deferred();
    void run_due_timers();
    void run_posted();

    int epoll_fd_ = -1;
    int post_fd_ = -1;  ///< eventfd: post() from other threads wakes the loop
    std::mutex post_mu_;
    std::vector<std::function<void()>> posted_;  ///< guarded by post_mu_
    std::uint64_t next_serial_ = 1;
    std::unordered_map<int, Registration> handlers_;
    TimerId next_timer_ = 1;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timer_heap_;
    std::unordered_map<TimerId, std::function<void()>> timer_fns_;
    std::vector<std::function<void()>> deferred_;
    std::function<bool()> before_block_;
    std::function<void()> after_pass_;
    bool stopped_ = false;
};

/// A configured duration as the loop's timers take it.
inline EventLoop::Clock::duration loop_duration(std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<EventLoop::Clock::duration>(d);
}

}  // namespace regiond::daemon

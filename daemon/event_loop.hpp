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
#include <queue>
#include <unordered_map>
#include <vector>

namespace regiond::daemon {

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

    TimerId add_timer(Clock::time_point when, std::function<void()> fn);
    TimerId add_timer(Clock::duration after, std::function<void()> fn) {
        return add_timer(Clock::now() + after, std::move(fn));
    }
    void cancel_timer(TimerId id);

    // Runs fn on the loop after the current dispatch (never re-entrantly).
    void defer(std::function<void()> fn);

    // Called once per iteration before the loop blocks; returns true when it found
    // work (the loop then polls without blocking). The daemon uses it for a
    // bounded spin on the client rings right after activity (ENVIRONMENT.md: each
    // sleep/wake hand-off costs ~20 us here).
    void set_before_block(std::function<bool()> fn) { before_block_ = std::move(fn); }

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

    int epoll_fd_ = -1;
    std::uint64_t next_serial_ = 1;
    std::unordered_map<int, Registration> handlers_;
    TimerId next_timer_ = 1;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timer_heap_;
    std::unordered_map<TimerId, std::function<void()>> timer_fns_;
    std::vector<std::function<void()>> deferred_;
    std::function<bool()> before_block_;
    bool stopped_ = false;
};

}  // namespace regiond::daemon

// Single-threaded event loop: epoll for descriptors, one timerfd for all
// timers (nanosecond deadlines on CLOCK_MONOTONIC), and deferred tasks that
// run after the current event so objects can ask to be destroyed from inside
// their own callbacks.
#pragma once

#include "fd.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <unordered_map>
#include <vector>

namespace wanproxy {

// CLOCK_MONOTONIC in nanoseconds: release times must not jump with the wall
// clock.
std::int64_t monotonic_ns();

class EventLoop;

// Registration of one descriptor in the loop; unregisters on destruction.
// Declare it after the Fd it watches so it is destroyed first.
class Watch {
public:
    Watch() = default;
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    Watch(Watch&& other) noexcept;
    Watch& operator=(Watch&& other) noexcept;
    ~Watch() { reset(); }

    [[nodiscard]] bool active() const noexcept { return loop_ != nullptr; }
    [[nodiscard]] std::uint32_t events() const noexcept { return events_; }
    void set_events(std::uint32_t events);
    void reset() noexcept;

private:
    friend class EventLoop;
    Watch(EventLoop* loop, std::uint64_t token, std::uint32_t events) : loop_(loop), token_(token), events_(events) {}

    EventLoop* loop_ = nullptr;
    std::uint64_t token_ = 0;
    std::uint32_t events_ = 0;
};

// A one-shot timer; cancelled on destruction.
class TimerHandle {
public:
    TimerHandle() = default;
    TimerHandle(const TimerHandle&) = delete;
    TimerHandle& operator=(const TimerHandle&) = delete;
    TimerHandle(TimerHandle&& other) noexcept;
    TimerHandle& operator=(TimerHandle&& other) noexcept;
    ~TimerHandle() { cancel(); }

    [[nodiscard]] bool pending() const noexcept;
    void cancel() noexcept;

private:
    friend class EventLoop;
    TimerHandle(EventLoop* loop, std::uint64_t id) : loop_(loop), id_(id) {}

    EventLoop* loop_ = nullptr;
    std::uint64_t id_ = 0;
};

class EventLoop {
public:
    using FdCallback = std::function<void(std::uint32_t events)>;
    using Task = std::function<void()>;

    EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    ~EventLoop() = default;

    // Level-triggered registration; `callback` gets the epoll event mask.
    [[nodiscard]] Watch watch(int fd, std::uint32_t events, FdCallback callback);
    // Runs `callback` once, at or after `deadline_ns` (monotonic_ns() scale).
    [[nodiscard]] TimerHandle at(std::int64_t deadline_ns, Task callback);
    // Runs `task` after the current callback has returned.
    void defer(Task task);

    // Runs until stop() is called. Throws std::system_error if the kernel
    // refuses an epoll or timerfd operation, which is a bug or resource
    // exhaustion rather than anything a peer can cause.
    void run();
    void stop() noexcept { running_ = false; }

private:
    friend class Watch;
    friend class TimerHandle;

    struct FdEntry {
        int fd;
        FdCallback callback;
    };
    struct TimerSlot {
        std::int64_t deadline;
        std::uint64_t id;
        bool operator>(const TimerSlot& other) const noexcept {
            return deadline != other.deadline ? deadline > other.deadline : id > other.id;
        }
    };

    void modify(std::uint64_t token, std::uint32_t events);
    void unwatch(std::uint64_t token) noexcept;
    void cancel_timer(std::uint64_t id) noexcept;
    [[nodiscard]] bool timer_pending(std::uint64_t id) const noexcept;
    void run_due_timers();
    void run_deferred();
    void arm_timerfd();
    void compact_timer_heap();

    Fd epoll_;
    Fd timerfd_;
    std::uint64_t next_token_ = 1;  // token 0 is the timerfd itself
    // Entries are heap-allocated so that a callback which unregisters its own
    // watch keeps running on a live object: the entry moves to graveyard_,
    // which is emptied only between events.
    std::unordered_map<std::uint64_t, std::unique_ptr<FdEntry>> fds_;
    std::vector<std::unique_ptr<FdEntry>> graveyard_;

    std::uint64_t next_timer_id_ = 1;
    struct TimerEntry {
        std::int64_t deadline;
        Task task;
    };
    // Cancelled timers stay in the heap and are skipped when they surface;
    // the map is the source of truth. compact_timer_heap() keeps long delays
    // with many short-lived connections from growing the heap without bound.
    std::priority_queue<TimerSlot, std::vector<TimerSlot>, std::greater<>> timer_heap_;
    std::unordered_map<std::uint64_t, TimerEntry> timers_;
    std::int64_t armed_deadline_ = -1;  // -1: timerfd disarmed

    std::vector<Task> deferred_;
    bool running_ = false;
};

}  // namespace wanproxy

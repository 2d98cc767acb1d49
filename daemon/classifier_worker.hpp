// Classifies long SQL texts on a thread of its own, so that a request of a few
// hundred KiB (up to ~2 us per byte for a deeply nested expression, see
// statement_classifier.hpp) never holds the daemon's loop: every other client
// is served meanwhile. Short texts and cache hits stay on the loop (classifying
// a one-table SELECT costs ~10 us, less than the hand-off would).
//
// One thread, started with the first task, one task at a time in arrival order.
// The queue needs no bound of its own: every task is a request in flight, and
// those are bounded per client (daemon.max_in_flight_per_client) and by
// max_request each. Results come back on the loop thread (EventLoop::post).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "daemon/event_loop.hpp"
#include "daemon/pg/statement_classifier.hpp"

namespace regiond::daemon {

class ClassifierWorker {
public:
    using Done = std::function<void(std::shared_ptr<const pg::Classification>)>;

    explicit ClassifierWorker(EventLoop& loop);
    /// Stops the thread after the task it is running; tasks not started are
    /// dropped, and results not yet delivered are never delivered.
    ~ClassifierWorker();
    ClassifierWorker(const ClassifierWorker&) = delete;
    ClassifierWorker& operator=(const ClassifierWorker&) = delete;

    /// Classifies `sql` as `op` off the loop; `done` runs later on the loop
    /// thread (never inside this call).
    void classify(std::string sql, pg::Operation op, Done done);

private:
    struct Task {
        std::string sql;
        pg::Operation op;
        Done done;
    };
    void run();

    EventLoop& loop_;
    /// Shared with results posted to the loop: a result that arrives after the
    /// worker is gone sees it expired and is dropped.
    std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
    std::mutex mu_;
    std::condition_variable wake_;
    std::deque<Task> tasks_;  ///< guarded by mu_
    bool stopping_ = false;   ///< guarded by mu_
    std::thread thread_;      ///< started by the first classify(); loop thread only
};

}  // namespace regiond::daemon

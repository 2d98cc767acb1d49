// Sends PostgreSQL cancel requests off the loop thread.
//
// libpq 15's PQcancel is a blocking round trip (connect, send the key, wait for
// the server to close) and PQcancelCreate (non-blocking) only exists from libpq
// 17. A Canceller owns one worker thread, started with the first request, that
// runs the requests one after another; each result is handed back to the loop
// with EventLoop::post and its callback runs there.
//
// Destruction never waits for the network: pending requests are dropped, an
// idle worker is joined, and a worker blocked inside PQcancel (a dead network:
// libpq 15's cancel connect has no timeout) is detached. It owns only its
// PGcancel and the shared state below, which no longer points to the loop, so
// it touches nothing of the daemon when PQcancel finally returns (when the
// kernel gives up on the socket, or with the process).
#pragma once

#include <libpq-fe.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "daemon/event_loop.hpp"

namespace regiond::daemon::pg {

class Canceller {
public:
    /// ok: the server accepted the request (the statement may still finish
    /// normally: the cancel and its end race); error: libpq's message.
    using Done = std::function<void(bool ok, const std::string& error)>;

    explicit Canceller(EventLoop& loop);
    ~Canceller();
    Canceller(const Canceller&) = delete;
    Canceller& operator=(const Canceller&) = delete;

    /// Takes ownership of `cancel` (from PQgetCancel). `done` runs on the loop,
    /// never from inside this call, unless the Canceller is destroyed first.
    void request(PGcancel* cancel, Done done);

private:
    struct CancelFree {
        void operator()(PGcancel* c) const { PQfreeCancel(c); }
    };
    struct Request {
        std::unique_ptr<PGcancel, CancelFree> cancel;
        Done done;
    };
    /// Shared with the worker; guarded by mu. Invariant: loop is nullptr once
    /// the Canceller is gone, and the worker reads it only under mu (so a post
    /// never reaches a destroyed loop).
    struct Shared {
        std::mutex mu;
        std::condition_variable wake;
        std::deque<Request> queue;
        EventLoop* loop = nullptr;
        bool stopping = false;
        bool busy = false;  ///< the worker is inside PQcancel
    };

    static void run(std::shared_ptr<Shared> shared, std::weak_ptr<const bool> alive);

    std::shared_ptr<Shared> shared_;
    std::thread worker_;
    LoopScope scope_;  ///< posted results check its token: none runs after destruction
};

}  // namespace regiond::daemon::pg

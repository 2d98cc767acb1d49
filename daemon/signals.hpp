// Signals as loop events (STYLE.md): SIGTERM, SIGINT and SIGHUP are blocked and
// read from a signalfd in the event loop, so no work ever runs in a signal
// handler. SIGPIPE is ignored (a client that vanishes mid-write is an EPIPE).
#pragma once

#include <functional>

#include "daemon/event_loop.hpp"
#include "shm/error.hpp"
#include "shm/unique_fd.hpp"

namespace regiond::daemon {

class SignalSource {
public:
    using Handler = std::function<void(int signal)>;

    /// Blocks the signals in the calling thread (call before any thread starts),
    /// ignores SIGPIPE and registers the signalfd with `loop`.
    static shm::Expected<std::unique_ptr<SignalSource>> create(EventLoop& loop, Handler handler);
    ~SignalSource();
    SignalSource(const SignalSource&) = delete;
    SignalSource& operator=(const SignalSource&) = delete;

private:
    SignalSource(EventLoop& loop, shm::UniqueFd fd, Handler handler);
    void on_readable();

    EventLoop& loop_;
    shm::UniqueFd fd_;
    Handler handler_;
};

}  // namespace regiond::daemon

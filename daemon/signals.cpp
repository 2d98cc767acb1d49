#include "daemon/signals.hpp"

#include <sys/signalfd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace regiond::daemon {

shm::Expected<std::unique_ptr<SignalSource>> SignalSource::create(EventLoop& loop, Handler handler) {
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
        return shm::Error::system(errno, "cannot block SIGTERM/SIGINT/SIGHUP");
    shm::UniqueFd fd(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd) return shm::Error::system(errno, "cannot create a signalfd");
    return std::unique_ptr<SignalSource>(new SignalSource(loop, std::move(fd), std::move(handler)));
}

SignalSource::SignalSource(EventLoop& loop, shm::UniqueFd fd, Handler handler)
    : loop_(loop), fd_(std::move(fd)), handler_(std::move(handler)) {
    loop_.add(fd_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(); });
}

SignalSource::~SignalSource() {
    loop_.remove(fd_.get());
}

void SignalSource::on_readable() {
    for (;;) {
        signalfd_siginfo info{};
        const ssize_t n = ::read(fd_.get(), &info, sizeof info);
        if (n != static_cast<ssize_t>(sizeof info)) return;  // EAGAIN: all read
        handler_(static_cast<int>(info.ssi_signo));
    }
}

}  // namespace regiond::daemon

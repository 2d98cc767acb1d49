#include "serve.hpp"

#include "buffer_pool.hpp"
#include "commands.hpp"
#include "control.hpp"
#include "event_loop.hpp"
#include "link.hpp"
#include "links_file.hpp"
#include "log.hpp"

#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <csignal>
#include <cstdio>
#include <exception>

namespace wanproxy {

namespace {

void prepare_process() {
    // A peer that closes while we write must cost an EPIPE, not the process.
    std::signal(SIGPIPE, SIG_IGN);
    // The kernel's default 50 us timer slack would swamp sub-millisecond
    // delays such as 0.05 ms; ask for the tightest wake-ups.
    (void)::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    // Each proxied connection costs two descriptors; benchmarks open many.
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &limit);
    }
}

// SIGTERM/SIGINT become readable events on a signalfd, so shutdown happens
// in the loop, never inside a signal handler.
Fd block_termination_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
        return Fd();
    }
    return Fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}

int serve(const std::string& links_path, const std::string& control_path) {
    auto specs = parse_links_file(links_path);
    if (!specs.value) {
        std::fprintf(stderr, "rgd-wanproxy: %s\n", specs.error.c_str());
        return 2;
    }
    prepare_process();
    Fd signals = block_termination_signals();
    if (!signals) {
        std::perror("rgd-wanproxy: signalfd");
        return 1;
    }

    // Declaration order is destruction order in reverse: the loop outlives
    // the links, the links outlive the control server that points at them.
    EventLoop loop;
    BufferPool buffers;
    Links links;
    for (auto& spec : *specs.value) {
        links.push_back(std::make_unique<Link>(loop, buffers, std::move(spec)));
        if (auto error = links.back()->start()) {
            std::fprintf(stderr, "rgd-wanproxy: %s\n", error->c_str());
            return 1;
        }
    }
    // The control socket appears only once every link listens, so a script
    // that waits for it knows the proxy is ready.
    auto control = ControlServer::open(loop, links, control_path);
    if (!control.value) {
        std::fprintf(stderr, "rgd-wanproxy: %s\n", control.error.c_str());
        return 1;
    }
    Watch signal_watch = loop.watch(signals.get(), EPOLLIN, [&](std::uint32_t) {
        signalfd_siginfo info{};
        if (::read(signals.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            log_line(std::string("received ") + (info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM") + ", shutting down");
        }
        loop.stop();
    });

    for (const auto& link : links) {
        log_line(link->status_line());
    }
    log_line("ready: " + std::to_string(links.size()) + " links, control socket " + control_path);
    loop.run();
    // Destructors close every connection and remove the control socket.
    return 0;
}

}  // namespace

int run_serve(const std::string& links_path, const std::string& control_path) {
    try {
        return serve(links_path, control_path);
    } catch (const std::exception& e) {
        // Only kernel refusals of epoll/timerfd operations and allocation
        // failures get here; report them instead of aborting.
        std::fprintf(stderr, "rgd-wanproxy: fatal: %s\n", e.what());
        return 1;
    }
}

}  // namespace wanproxy

#include "clients.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace regiond::testing::isolation {
namespace {

using Clock = std::chrono::steady_clock;

void read_available(int fd, std::string& into) {
    char buffer[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            into.append(buffer, static_cast<std::size_t>(n));
            continue;
        }
        return;  // 0 (EOF) or EAGAIN
    }
}

int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

Spawned::Spawned(const std::string& program, const std::vector<std::string>& args) : started_(Clock::now()) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
        ::dup2(out[1], STDOUT_FILENO);
        ::dup2(err[1], STDERR_FILENO);
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(program.c_str()));
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
    ::fcntl(out_, F_SETFL, O_NONBLOCK);
    ::fcntl(err_, F_SETFL, O_NONBLOCK);
}

Spawned::Spawned(Spawned&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      out_(std::exchange(other.out_, -1)),
      err_(std::exchange(other.err_, -1)),
      started_(other.started_) {}

Spawned::~Spawned() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
}

Command Spawned::wait(Clock::time_point deadline) {
    Command c;
    for (;;) {
        read_available(out_, c.out);
        read_available(err_, c.err);
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            c.ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
            pid_ = -1;
            read_available(out_, c.out);
            read_available(err_, c.err);
            c.status = exit_code(status);
            return c;
        }
        if (Clock::now() >= deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
            c.ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
            c.status = -1;
            return c;
        }
        pollfd fds[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
        ::poll(fds, 2, 2);
    }
}

Command run_command(const std::string& program, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout) {
    Spawned s(program, args);
    return s.wait(Clock::now() + timeout);
}

Children::Children(int n, const std::function<std::string(int)>& body) {
    for (int i = 0; i < n; ++i) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::close(p[0]);
            std::string line;
            try {
                line = body(i);
            } catch (const std::exception& e) {
                line = std::string("exception: ") + e.what();
            }
            const char* data = line.data();
            std::size_t left = line.size();
            while (left > 0) {
                const ssize_t w = ::write(p[1], data, left);
                if (w <= 0) break;
                data += w;
                left -= static_cast<std::size_t>(w);
            }
            ::_exit(0);
        }
        ::close(p[1]);
        ::fcntl(p[0], F_SETFL, O_NONBLOCK);
        Child c;
        c.pid = pid;
        c.fd = p[0];
        children_.push_back(c);
    }
}

Children::~Children() {
    for (auto& c : children_) {
        if (!c.exited && c.pid > 0) {
            ::kill(c.pid, SIGKILL);
            ::waitpid(c.pid, &c.status, 0);
        }
        if (c.fd >= 0) ::close(c.fd);
    }
}

void Children::drain(Child& c) {
    read_available(c.fd, c.line);
}

bool Children::done() {
    bool all = true;
    for (auto& c : children_) {
        drain(c);
        if (c.exited) continue;
        const pid_t r = ::waitpid(c.pid, &c.status, WNOHANG);
        if (r == c.pid) {
            c.exited = true;
            drain(c);
        } else {
            all = false;
        }
    }
    return all;
}

std::vector<std::string> Children::collect(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::vector<std::string> lines;
    for (auto& c : children_) {
        if (!c.exited) {
            ::kill(c.pid, SIGKILL);
            ::waitpid(c.pid, &c.status, 0);
            c.exited = true;
            lines.push_back("<killed>");
            continue;
        }
        drain(c);
        const int code = exit_code(c.status);
        lines.push_back(code == 0 ? c.line : "<exit " + std::to_string(code) + "> " + c.line);
    }
    return lines;
}

std::vector<std::string> run_children(int n, const std::function<std::string(int)>& body,
                                      std::chrono::milliseconds timeout) {
    Children children(n, body);
    return children.collect(timeout);
}

double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name (which may hold spaces, in parentheses).
    const auto close = text.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream fields(text.substr(close + 2));
    std::string f;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
        if (i == 14) utime = std::stoul(f);
        if (i == 15) stime = std::stoul(f);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::uint64_t rss_bytes(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
}

}  // namespace regiond::testing::isolation

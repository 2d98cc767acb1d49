#include "regiond_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace regiond::testing {
namespace {

sockaddr_un address_of(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) throw std::runtime_error("socket path too long: " + path);
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

std::string regiond_binary() {
    const char* bin = std::getenv("REGIOND_BIN");
    if (bin == nullptr || *bin == '\0') throw std::runtime_error("REGIOND_BIN is not set (meson test sets it)");
    return bin;
}

NotifySocket::NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const sockaddr_un address = address_of(path_);
    ::unlink(path_.c_str());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw std::runtime_error("cannot bind the notify socket " + path_ + ": " + std::strerror(errno));
}

NotifySocket::~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
}

void NotifySocket::drain(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) return;
        messages_.emplace_back(buffer, static_cast<std::size_t>(n));
    }
}

bool NotifySocket::wait_for(const std::string& line, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        for (const std::string& m : messages_) {
            std::istringstream lines(m);
            std::string l;
            while (std::getline(lines, l))
                if (l == line) return true;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        drain(static_cast<int>(std::min<long>(left.count(), 100)));
    }
}

const std::vector<std::string>& NotifySocket::messages() {
    drain(0);
    return messages_;
}

void NotifySocket::clear() {
    drain(0);
    messages_.clear();
}

DaemonSetup DaemonSetup::from(const std::string& source, const std::string& extra_daemon_keys) {
    DaemonSetup s;
    char pattern[] = "/tmp/rgd-daemon-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    s.dir = pattern;
    ::chmod(s.dir.c_str(), 0755);  // traversable by an unprivileged test peer
    s.config_path = s.dir + "/regiond.toml";
    s.socket = s.dir + "/regiond.sock";
    s.admin_socket = s.dir + "/admin.sock";
    static int counter = 0;
    s.state_segment = "/rgd-daemon-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);

    std::ifstream in(source);
    if (!in) throw std::runtime_error("cannot read " + source);
    std::ofstream out(s.config_path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("socket = ", 0) == 0)
            line = "socket = \"" + s.socket + "\"";
        else if (line.rfind("admin_socket = ", 0) == 0)
            line = "admin_socket = \"" + s.admin_socket + "\"";
        else if (line.rfind("state_segment = ", 0) == 0)
            line = "state_segment = \"" + s.state_segment + "\"";
        out << line << '\n';
        if (line == "[daemon]" && !extra_daemon_keys.empty()) out << extra_daemon_keys << '\n';
    }
    return s;
}

void DaemonSetup::set_key(const std::string& key, const std::string& value_toml) const {
    const std::string text = read_file(config_path);
    std::istringstream in(text);
    std::ostringstream out;
    std::string line;
    bool found = false;
    while (std::getline(in, line)) {
        if (line.rfind(key + " = ", 0) == 0) {
            line = key + " = " + value_toml;
            found = true;
        }
        out << line << '\n';
    }
    if (!found) throw std::runtime_error("no key " + key + " in " + config_path);
    std::ofstream(config_path) << out.str();
}

DaemonSetup::~DaemonSetup() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    const std::string shm_path = "/dev/shm" + state_segment;
    ::unlink(shm_path.c_str());
}

RegiondProcess::RegiondProcess(const std::string& binary, const std::string& config, const std::string& log_path,
                               const std::string& notify_socket, unsigned long watchdog_usec)
    : log_path_(log_path) {
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot open " + log_path);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
        // A test process that dies (a crash, Catch2 aborting) must not leave its
        // daemons running: SIGTERM makes them drain and remove their segment.
        // Forked from the test's main thread, which lives as long as the test.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
        ::dup2(log_fd, STDOUT_FILENO);
        ::dup2(log_fd, STDERR_FILENO);
        if (notify_socket.empty())
            ::unsetenv("NOTIFY_SOCKET");
        else
            ::setenv("NOTIFY_SOCKET", notify_socket.c_str(), 1);
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
        if (watchdog_usec != 0) {
            ::setenv("WATCHDOG_USEC", std::to_string(watchdog_usec).c_str(), 1);
            ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
        }
        ::execl(binary.c_str(), binary.c_str(), "--config", config.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(log_fd);
    if (pid_ < 0) throw std::runtime_error("fork failed");
}

RegiondProcess::~RegiondProcess() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
    }
}

void RegiondProcess::signal(int sig) const {
    ::kill(pid_, sig);
}

int RegiondProcess::wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!reaped_) {
        const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            break;
        }
        if (std::chrono::steady_clock::now() > deadline) return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
    return -1;
}

bool RegiondProcess::running() {
    return wait_exit(std::chrono::milliseconds(0)) == -1;
}

std::string RegiondProcess::log() const {
    return read_file(log_path_);
}

std::string admin_command(const std::string& admin_socket, const std::string& line) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_un address = address_of(admin_socket);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot connect to " + admin_socket + ": " + std::strerror(errno));
    }
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string request = line + "\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string reply;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        reply.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return reply;
}

}  // namespace regiond::testing

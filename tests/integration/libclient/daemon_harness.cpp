#include "daemon_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regiond/client.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "../cluster_env.hpp"

extern char** environ;

namespace regiond::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string env_or_throw(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0')
        throw std::runtime_error(std::string("$") + name + " is not set (run through meson test)");
    return v;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The cluster's config with the [daemon] socket, admin_socket and state_segment
// lines replaced.
std::string rewrite_config(const std::string& source, const std::string& socket, const std::string& admin,
                           const std::string& segment) {
    std::istringstream in(source);
    std::ostringstream out;
    std::string line, section;
    while (std::getline(in, line)) {
        const auto first = line.find_first_not_of(" \t");
        const std::string trimmed = first == std::string::npos ? "" : line.substr(first);
        if (!trimmed.empty() && trimmed[0] == '[') section = trimmed;
        auto key_is = [&](const std::string& key) {
            return trimmed.rfind(key, 0) == 0 && trimmed.find_first_not_of(" \t", key.size()) != std::string::npos &&
                   trimmed[trimmed.find_first_not_of(" \t", key.size())] == '=';
        };
        if (section == "[daemon]" && key_is("socket")) {
            out << "socket = \"" << socket << "\"\n";
        } else if (section == "[daemon]" && key_is("admin_socket")) {
            out << "admin_socket = \"" << admin << "\"\n";
        } else if (section == "[daemon]" && key_is("state_segment")) {
            out << "state_segment = \"" << segment << "\"\n";
        } else {
            out << line << '\n';
        }
    }
    return out.str();
}

}  // namespace

std::string regiond_binary() {
    return env_or_throw("REGIOND_BIN");
}
std::string regionctl_binary() {
    return env_or_throw("REGIONCTL_BIN");
}

DaemonHarness::DaemonHarness(std::chrono::milliseconds ready_timeout) {
    const ClusterEnv& env = ClusterEnv::get();
    char tmpl[] = "/tmp/rgd-libclient-it.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    socket_ = dir_ + "/regiond.sock";
    admin_socket_ = dir_ + "/admin.sock";
    state_segment_ = "/rgd-libclient-it-" + std::to_string(::getpid());
    config_ = dir_ + "/regiond.toml";
    log_path_ = dir_ + "/regiond.log";
    const std::string source = read_file(env.regiond_config("eu-west-1"));
    if (source.empty()) throw std::runtime_error("cannot read " + env.regiond_config("eu-west-1"));
    std::ofstream(config_) << rewrite_config(source, socket_, admin_socket_, state_segment_);
    start(ready_timeout);
}

DaemonHarness::~DaemonHarness() {
    try {
        stop(std::chrono::seconds(5));
    } catch (...) {}
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

void DaemonHarness::start(std::chrono::milliseconds ready_timeout) {
    if (pid_ > 0) throw std::logic_error("regiond is already running");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const std::string binary = regiond_binary();
    std::vector<char*> argv = {const_cast<char*>(binary.c_str()), const_cast<char*>("--config"),
                               const_cast<char*>(config_.c_str()), nullptr};
    // No NOTIFY_SOCKET: readiness is "a client can connect".
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e)
        if (std::string_view(*e).rfind("NOTIFY_SOCKET=", 0) != 0) envp.push_back(*e);
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        pid_ = -1;
        throw std::runtime_error("cannot start " + binary);
    }

    const auto deadline = Clock::now() + ready_timeout;
    std::string last_error;
    for (;;) {
        char error[512] = "";
        rgd_client* c = rgd_connect(socket_.c_str(), error, sizeof error);
        if (c != nullptr) {
            // Accepting clients is not enough: the endpoints the tests use must
            // have passed their first health checks.
            rgd_result* h = rgd_health(c);
            bool primary = false, replica = false;
            for (int r = 0; r < rgd_nrows(h); ++r) {
                const std::string region = rgd_value(h, r, 0) ? rgd_value(h, r, 0) : "";
                const std::string role = rgd_value(h, r, 2) ? rgd_value(h, r, 2) : "";
                const bool healthy = rgd_value(h, r, 3) != nullptr && std::string(rgd_value(h, r, 3)) == "t";
                primary |= region == "us-east-1" && role == "primary" && healthy;
                replica |= region == "eu-west-1" && role == "replica" && healthy;
            }
            last_error = rgd_ok(h) ? "endpoints not healthy yet" : rgd_error(h);
            rgd_free(h);
            rgd_disconnect(c);
            if (primary && replica) return;
        } else {
            last_error = error;
        }
        if (!running()) throw std::runtime_error("regiond exited during start-up; its log:\n" + log());
        if (Clock::now() >= deadline) {
            const std::string l = log();
            stop(std::chrono::seconds(2));
            throw std::runtime_error("regiond was not ready within " + std::to_string(ready_timeout.count()) +
                                     " ms (last error: " + last_error + "); its log:\n" + l);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling interval, not synchronisation
    }
}

bool DaemonHarness::running() {
    if (pid_ <= 0) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        pid_ = -1;
        return false;
    }
    return true;
}

void DaemonHarness::kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

void DaemonHarness::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (running()) {
        if (Clock::now() >= deadline) {
            kill9();
            return;
        }
        std::this_thread::sleep_for(
            std::chrono::milliseconds(10));  // polling interval of the exit wait (deadline above)
    }
}

std::string DaemonHarness::log() const {
    return read_file(log_path_);
}

Command run_command(const std::string& program, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout) {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    std::vector<char*> argv = {const_cast<char*>(program.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (rc != 0) {
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        throw std::runtime_error("cannot run " + program);
    }
    return collect_child_output(pid, out_pipe[0], err_pipe[0], Clock::now() + timeout);
}

}  // namespace regiond::testing

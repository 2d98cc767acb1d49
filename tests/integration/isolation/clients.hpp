// Real client processes for the isolation tests: regionctl runs (spawned, with
// a deadline), and forked children that use libregiond directly and report one
// line each through a pipe. The children never touch Catch2; the parent checks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace regiond::testing::isolation {

struct Command {
    int status = -1;  ///< exit code; -1 when killed at the deadline
    std::string out, err;
    double ms = 0;  ///< wall time until it exited
};

/// Runs `program args...`, captures stdout and stderr; kills it at `timeout`.
Command run_command(const std::string& program, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// A started command, for running many at once.
class Spawned {
public:
    Spawned(const std::string& program, const std::vector<std::string>& args);
    ~Spawned();
    Spawned(Spawned&& other) noexcept;
    Spawned(const Spawned&) = delete;
    Spawned& operator=(const Spawned&) = delete;
    Spawned& operator=(Spawned&&) = delete;
    /// Waits (reading its output) until it exits or the deadline passes (then kills it).
    Command wait(std::chrono::steady_clock::time_point deadline);

private:
    pid_t pid_ = -1;
    int out_ = -1;
    int err_ = -1;
    std::chrono::steady_clock::time_point started_;
};

/// Forks `n` children; child i runs body(i) and its returned line goes back
/// through a pipe. Returns the lines in child order ("<killed>" for a child
/// that did not finish by `timeout`, "<exit N>" for one that died).
std::vector<std::string> run_children(int n, const std::function<std::string(int)>& body,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// Forked children running in the background while the parent polls something.
class Children {
public:
    Children(int n, const std::function<std::string(int)>& body);
    ~Children();
    Children(const Children&) = delete;
    Children& operator=(const Children&) = delete;
    /// True once every child has exited (non-blocking).
    bool done();
    /// Waits for all (killing them at the deadline) and returns their lines.
    std::vector<std::string> collect(std::chrono::milliseconds timeout = std::chrono::seconds(60));

private:
    struct Child {
        pid_t pid = -1;
        int fd = -1;
        std::string line;
        bool exited = false;
        int status = 0;
    };
    void drain(Child& c);
    std::vector<Child> children_;
};

/// CPU seconds (user + system) a process has used (/proc/PID/stat).
double cpu_seconds(pid_t pid);
/// Resident set size in bytes (/proc/PID/status VmRSS).
std::uint64_t rss_bytes(pid_t pid);

}  // namespace regiond::testing::isolation

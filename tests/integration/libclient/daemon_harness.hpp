// Runs the real regiond for the libregiond integration tests: a test-owned copy
// of the cluster's eu-west-1 config ($REGIOND_CLUSTER_DIR/regiond-eu-west-1.toml)
// whose client socket, admin socket and state segment are moved into a fresh
// directory (so it never collides with another daemon on the cluster), the
// daemon's stderr in a log file there, readiness awaited by polling until a
// client can connect and rgd_health shows the us-east-1 primary and the
// eu-west-1 replica healthy (with a deadline, never a fixed sleep), and teardown that
// stops what is left even when a test fails.
#pragma once

#include <sys/types.h>
#include "../child_output.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace regiond::testing {

class DaemonHarness {
public:
    /// Prepares the runtime directory and starts the daemon; throws with the
    /// daemon's log when it does not accept clients within `ready_timeout`.
    explicit DaemonHarness(std::chrono::milliseconds ready_timeout = std::chrono::seconds(20));
    ~DaemonHarness();
    DaemonHarness(const DaemonHarness&) = delete;
    DaemonHarness& operator=(const DaemonHarness&) = delete;

    /// (Re)starts the daemon and waits until it is ready (see above).
    void start(std::chrono::milliseconds ready_timeout = std::chrono::seconds(20));
    /// SIGKILL and reap: a crash.
    void kill9();
    /// SIGTERM, wait (then SIGKILL after `grace`).
    void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
    bool running();
    /// The daemon's pid (-1 when it is not running).
    pid_t pid() const { return pid_; }

    const std::string& socket() const { return socket_; }
    const std::string& admin_socket() const { return admin_socket_; }
    const std::string& dir() const { return dir_; }
    std::string log() const;

private:
    std::string dir_;
    std::string config_;
    std::string socket_;
    std::string admin_socket_;
    std::string state_segment_;
    std::string log_path_;
    pid_t pid_ = -1;
};

/// $REGIOND_BIN / $REGIONCTL_BIN (set by meson).
std::string regiond_binary();
std::string regionctl_binary();

using Command = ChildOutput;
/// Runs a program with arguments; captures stdout and stderr.
Command run_command(const std::string& program, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace regiond::testing

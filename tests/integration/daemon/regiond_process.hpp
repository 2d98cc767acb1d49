// Running the real regiond binary in a test: a test-owned runtime directory (its
// own sockets and state segment name, so it never collides with another daemon
// on the cluster), a NOTIFY_SOCKET the test listens on, the daemon's log in a
// file, and teardown that kills what is left even when a test fails.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace regiond::testing {

/// A unix datagram socket playing systemd's notify socket.
class NotifySocket {
public:
    explicit NotifySocket(std::string path);
    ~NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    const std::string& path() const { return path_; }
    /// Waits until a message containing the line `line` (e.g. "READY=1") has
    /// arrived since the last successful wait for it... or ever: every message
    /// is kept, so a line seen before the call counts.
    bool wait_for(const std::string& line, std::chrono::milliseconds timeout);
    /// Every message so far, in order.
    const std::vector<std::string>& messages();
    /// Forgets what was received (e.g. before a reload).
    void clear();

private:
    void drain(int timeout_ms);
    std::string path_;
    int fd_ = -1;
    std::vector<std::string> messages_;
};

/// A test-owned copy of a regiond config with its own runtime directory.
struct DaemonSetup {
    std::string dir;          ///< mkdtemp, mode 0755
    std::string config_path;  ///< dir/regiond.toml
    std::string socket;
    std::string admin_socket;
    std::string state_segment;

    /// Copies `source` with socket, admin_socket and state_segment moved into a
    /// fresh directory, and `extra_daemon_keys` added under [daemon].
    static DaemonSetup from(const std::string& source, const std::string& extra_daemon_keys = "");
    /// Rewrites a key's line ("max_lag = ...") in the copy.
    void set_key(const std::string& key, const std::string& value_toml) const;
    ~DaemonSetup();
};

class RegiondProcess {
public:
    /// Starts `binary --config config`, stderr to `log_path`, NOTIFY_SOCKET set
    /// when `notify_socket` is not empty.
    /// `watchdog_usec` > 0 sets WATCHDOG_USEC/WATCHDOG_PID as systemd does for WatchdogSec.
    RegiondProcess(const std::string& binary, const std::string& config, const std::string& log_path,
                   const std::string& notify_socket, unsigned long watchdog_usec = 0);
    ~RegiondProcess();  // SIGKILL if still running
    RegiondProcess(const RegiondProcess&) = delete;
    RegiondProcess& operator=(const RegiondProcess&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig) const;
    /// Waits for the exit; returns the exit code (128+signal for a signal), or
    /// -1 on timeout.
    int wait_exit(std::chrono::milliseconds timeout);
    bool running();
    std::string log() const;

private:
    pid_t pid_ = -1;
    int status_ = 0;
    bool reaped_ = false;
    std::string log_path_;
};

/// One admin command: the whole reply.
std::string admin_command(const std::string& admin_socket, const std::string& line);

/// Path of the regiond binary under test ($REGIOND_BIN).
std::string regiond_binary();

}  // namespace regiond::testing

// Running a program as another local user in a test: fork, then initgroups +
// setgid + setuid to the user (as login(1) would, so the kernel sees the user's
// real supplementary groups on the sockets it connects to), then exec. The test
// runs as root (meson test on the cluster host); the users come from
// scripts/install-deps.sh.
#pragma once

#include <sys/types.h>
#include "../child_output.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace regiond::testing {

/// The test users scripts/install-deps.sh creates.
inline constexpr const char* kClientUser = "rgd-test-client";  ///< group regiond: a client, not an admin
inline constexpr const char* kAdminUser = "rgd-test-admin";    ///< groups regiond-admin and regiond

struct UserIds {
    uid_t uid = 0;
    gid_t gid = 0;
};
/// The user's ids; throws std::runtime_error naming scripts/install-deps.sh when
/// the user does not exist.
UserIds user_ids(const std::string& user);

using ProgramRun = ChildOutput;

/// Runs `program args...` as `user` ("" runs it as ourselves), capturing stdout
/// and stderr; killed (and reported as such) after `timeout`.
ProgramRun run_as(const std::string& user, const std::string& program, const std::vector<std::string>& args,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// A process of `user` (a forked child, after the switch) that runs `setup`,
/// then `tick` every 20 ms until the object is destroyed (SIGKILL). `setup`
/// returning false makes the child exit 1.
class UserProcess {
public:
    UserProcess(const std::string& user, const std::function<bool()>& setup, const std::function<void()>& tick = {});
    ~UserProcess();
    UserProcess(const UserProcess&) = delete;
    UserProcess& operator=(const UserProcess&) = delete;

    /// Whether `setup` returned true.
    bool ready() const { return ready_; }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    bool ready_ = false;
};

}  // namespace regiond::testing

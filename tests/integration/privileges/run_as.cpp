#include "run_as.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace regiond::testing {
namespace {

using Clock = std::chrono::steady_clock;

// In a forked child: become `user` (no-op for ""). False if any step fails.
bool become(const std::string& user) {
    if (user.empty()) return true;
    const passwd* pw = ::getpwnam(user.c_str());
    if (pw == nullptr) return false;
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    return ::initgroups(user.c_str(), gid) == 0 && ::setgid(gid) == 0 && ::setuid(uid) == 0 && ::getuid() == uid;
}

}  // namespace

UserIds user_ids(const std::string& user) {
    const passwd* pw = ::getpwnam(user.c_str());
    if (pw == nullptr)
        throw std::runtime_error("user " + user + " does not exist: run scripts/install-deps.sh (as root) first");
    return {pw->pw_uid, pw->pw_gid};
}

ProgramRun run_as(const std::string& user, const std::string& program, const std::vector<std::string>& args,
                  std::chrono::milliseconds timeout) {
    if (!user.empty()) (void)user_ids(user);  // a clear error for a missing user
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    std::vector<char*> argv = {const_cast<char*>(program.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        if (!become(user)) {
            static const char message[] = "run_as: cannot switch to the user\n";
            [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, message, sizeof message - 1);
            ::_exit(126);
        }
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (pid < 0) {
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        throw std::runtime_error("fork failed");
    }
    return collect_child_output(pid, out_pipe[0], err_pipe[0], Clock::now() + timeout);
}

UserProcess::UserProcess(const std::string& user, const std::function<bool()>& setup,
                         const std::function<void()>& tick) {
    (void)user_ids(user);
    int ready_pipe[2];
    if (::pipe2(ready_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
        ::close(ready_pipe[0]);
        if (!become(user) || !setup()) ::_exit(1);
        const char ok = '1';
        if (::write(ready_pipe[1], &ok, 1) != 1) ::_exit(1);
        ::close(ready_pipe[1]);
        for (;;) {  // until SIGKILL from the destructor
            if (tick) tick();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the tick period, not synchronisation
        }
    }
    ::close(ready_pipe[1]);
    if (pid_ < 0) {
        ::close(ready_pipe[0]);
        throw std::runtime_error("fork failed");
    }
    char answer = 0;
    ready_ = ::read(ready_pipe[0], &answer, 1) == 1 && answer == '1';  // EOF when the child exits early
    ::close(ready_pipe[0]);
}

UserProcess::~UserProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
}

}  // namespace regiond::testing

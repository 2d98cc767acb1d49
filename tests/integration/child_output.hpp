// Reading a child process's stdout and stderr to the end with a deadline, and
// reaping it: the one copy behind run_command (libclient harness) and run_as
// (privileges), which differ only in how they start the child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace regiond::testing {

struct ChildOutput {
    int status = -1;  ///< exit code, 128 + signal when killed (128 + SIGKILL at the deadline)
    std::string out, err;
};

/// Reads `out_fd` and `err_fd` until both close, kills `pid` with SIGKILL if
/// `deadline` passes first, then reaps it. Takes ownership of both descriptors.
ChildOutput collect_child_output(pid_t pid, int out_fd, int err_fd, std::chrono::steady_clock::time_point deadline);

}  // namespace regiond::testing

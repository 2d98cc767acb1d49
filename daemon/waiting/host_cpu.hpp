// What the host's scheduler gives this process: how many cores it may run on,
// and how many tasks are running right now. Inputs of the host-wide waiting
// decision (shm/wait_policy.hpp); read from the kernel, never from clients.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "shm/unique_fd.hpp"

namespace regiond::daemon {

/// Cores this process may run on: the CPUs of its affinity mask, lowered by a
/// CPU quota of its cgroup (v2 cpu.max, or v1 cpu.cfs_quota_us / period) on
/// the way up to the root. At least 1. `sysfs_root` is for tests.
std::uint32_t usable_cores(const std::string& sysfs_root = "/sys/fs/cgroup");

/// The quota of the cgroup `proc_self_cgroup` (the text of /proc/self/cgroup)
/// names, in whole cores rounded up, looked up under `sysfs_root`; nullopt when
/// no quota applies (or nothing can be read).
std::optional<std::uint32_t> cgroup_core_quota(const std::string& proc_self_cgroup, const std::string& sysfs_root);

/// Samples the running-task count of /proc/loadavg ("0.15 0.06 0.02 3/123 4567":
/// 3). Keeps the file open and re-reads it with pread: about 2 us a sample.
class RunnableSampler {
public:
    explicit RunnableSampler(const char* path = "/proc/loadavg");
    /// nullopt when the file cannot be read or parsed (the caller then
    /// counts only what it knows).
    std::optional<std::uint32_t> sample() const;

private:
    shm::UniqueFd fd_;
};

}  // namespace regiond::daemon

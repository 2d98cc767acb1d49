#include "daemon/waiting/host_cpu.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string_view>

#include "shm/wait_policy.hpp"

namespace regiond::daemon {

namespace {

std::optional<std::string> read_small_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::string text;
    std::getline(in, text);
    return text;
}

std::optional<std::int64_t> read_number(const std::string& path) {
    const auto text = read_small_file(path);
    if (!text) return std::nullopt;
    try {
        return std::stoll(*text);
    } catch (...) {
        return std::nullopt;
    }
}

/// The tightest quota from `dir` up to `root` (v2: cpu.max in each directory).
std::optional<std::uint32_t> v2_quota(const std::string& root, std::string dir) {
    std::optional<std::uint32_t> best;
    for (;;) {
        if (const auto text = read_small_file(root + dir + "/cpu.max")) {
            if (const auto cores = shm::parse_cgroup_cpu_max(*text)) best = best ? std::min(*best, *cores) : *cores;
        }
        if (dir.empty() || dir == "/") break;
        const auto slash = dir.rfind('/');
        dir = slash == std::string::npos || slash == 0 ? std::string() : dir.substr(0, slash);
    }
    return best;
}

/// v1: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us in the cpu controller's directory.
std::optional<std::uint32_t> v1_quota(const std::string& controller_dir) {
    const auto quota = read_number(controller_dir + "/cpu.cfs_quota_us");
    const auto period = read_number(controller_dir + "/cpu.cfs_period_us");
    if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
    return static_cast<std::uint32_t>(std::min<std::int64_t>((*quota + *period - 1) / *period, 1 << 16));
}

}  // namespace

std::optional<std::uint32_t> cgroup_core_quota(const std::string& proc_self_cgroup, const std::string& sysfs_root) {
    std::istringstream lines(proc_self_cgroup);
    std::string line;
    std::optional<std::uint32_t> best;
    auto keep = [&best](std::optional<std::uint32_t> q) {
        if (q) best = best ? std::min(*best, *q) : *q;
    };
    while (std::getline(lines, line)) {
        // "ID:CONTROLLERS:PATH"; v2 is "0::PATH".
        const auto first = line.find(':');
        const auto second = first == std::string::npos ? first : line.find(':', first + 1);
        if (second == std::string::npos) continue;
        const std::string controllers = line.substr(first + 1, second - first - 1);
        const std::string path = line.substr(second + 1);
        if (controllers.empty()) {
            keep(v2_quota(sysfs_root, path == "/" ? std::string() : path));
            continue;
        }
        std::istringstream names(controllers);
        std::string name;
        while (std::getline(names, name, ','))
            if (name == "cpu") keep(v1_quota(sysfs_root + "/" + controllers + (path == "/" ? "" : path)));
    }
    return best;
}

std::uint32_t usable_cores(const std::string& sysfs_root) {
    std::uint32_t cores = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) cores = static_cast<std::uint32_t>(CPU_COUNT(&set));
    if (cores == 0) {
        const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
        cores = online > 0 ? static_cast<std::uint32_t>(online) : 1;
    }
    std::string self;
    {
        std::ifstream in("/proc/self/cgroup");
        std::ostringstream text;
        text << in.rdbuf();
        self = text.str();
    }
    if (const auto quota = cgroup_core_quota(self, sysfs_root)) cores = std::min(cores, *quota);
    return std::max<std::uint32_t>(cores, 1);
}

RunnableSampler::RunnableSampler(const char* path) : fd_(::open(path, O_RDONLY | O_CLOEXEC)) {}

std::optional<std::uint32_t> RunnableSampler::sample() const {
    if (!fd_) return std::nullopt;
    char buffer[128];
    const ssize_t n = ::pread(fd_.get(), buffer, sizeof buffer - 1, 0);
    if (n <= 0) return std::nullopt;
    return shm::parse_loadavg_running(std::string_view(buffer, static_cast<std::size_t>(n)));
}

}  // namespace regiond::daemon

#include "daemon/instance_guard.hpp"

#include <dirent.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>

#include "daemon/access_policy.hpp"
#include "daemon/log.hpp"
#include "daemon/text.hpp"
#include "shm/base/errno_text.hpp"
#include "shm/base/unix_socket_path.hpp"

namespace regiond::daemon {
namespace {

using base::errno_text;

constexpr std::size_t kSuffixDigits = 8;  // NAME.XXXXXXXX: 32 random bits
constexpr int kAttempts = 3;

bool process_alive(pid_t pid) {
    if (pid <= 0) return false;
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

std::string with_slash(const std::string& name) {
    return !name.empty() && name.front() == '/' ? name : "/" + name;
}

std::string random_suffix() {
    std::uint32_t value = 0;
    if (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value))
        value = static_cast<std::uint32_t>(shm::monotonic_now_ns() ^ static_cast<std::uint64_t>(::getpid()));
    char text[kSuffixDigits + 2];
    std::snprintf(text, sizeof text, ".%08x", value);
    return text;
}

// "NAME.XXXXXXXX" with 8 lower-case hex digits: a name random_suffix() made for
// `base` (both without the leading '/').
bool is_suffixed_name(std::string_view entry, std::string_view base) {
    if (entry.size() != base.size() + 1 + kSuffixDigits || entry.substr(0, base.size()) != base ||
        entry[base.size()] != '.')
        return false;
    for (char c : entry.substr(base.size() + 1))
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

// A daemon that crashed while serving under a suffixed name left that segment
// behind: remove ours (same uid, regular file) whose daemon is gone. A segment
// that is not ready yet may belong to a daemon starting right now: left alone.
void remove_stale_suffixed_segments(const std::string& name, std::chrono::nanoseconds fresh_within) {
    const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(shm::kShmDirectory), &::closedir);
    if (!dir) return;
    const std::string base = with_slash(name).substr(1);
    while (const dirent* entry = ::readdir(dir.get())) {
        if (!is_suffixed_name(entry->d_name, base)) continue;
        const std::string candidate = "/" + std::string(entry->d_name);
        const auto holder = shm::state_segment_holder(candidate);
        if (!holder || !*holder || (*holder)->uid != ::geteuid() || !(*holder)->regular_file) continue;
        auto view = shm::StateView::open(candidate);
        if (!view && view.error().code == EAGAIN) continue;
        const pid_t pid = view ? static_cast<pid_t>(view->daemon_pid()) : 0;
        if (view && process_alive(pid) && view->heartbeat_age() <= fresh_within) continue;  // a live daemon's
        if (shm::remove_state_segment(candidate))
            log::notice("removed the stale state segment " + candidate + " (pid " + std::to_string(pid) +
                        ", no longer running)");
    }
}

// The configured name is held by someone else: serve under a random suffix.
shm::Expected<shm::StateSegment> create_under_suffix(shm::StateSegmentOptions options, const std::string& name,
                                                     const shm::SegmentNameHolder& holder) {
    const std::string path = shm::state_segment_path(name);
    const std::string who = uid_text(holder.uid);
    // A regular file of another user, or anything that is not a regular file
    // (a symlink, a FIFO...), whoever owns it: never a segment of ours.
    const std::string what =
        holder.regular_file ? "held by " + who + ", not by this daemon's user (uid " + std::to_string(::geteuid()) + ")"
                            : "a non-regular file owned by " + who;
    shm::Error last{0, ""};
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        options.name = name + random_suffix();
        options.replace_existing = false;
        auto segment = shm::StateSegment::create(options);
        if (segment) {
            log::warning(
                "state segment " + name + " is " + what + ": " + path +
                " was not created by regiond, so it is left alone and this daemon serves under " + segment->name() +
                " instead (clients learn the name when they connect; regionctl status shows it). "
                "Remove " +
                path + " as root and find out why " + who + " created it; the next start uses " + name + " again");
            return segment;
        }
        last = segment.error();
        if (last.code != EEXIST) break;
    }
    return shm::Error{EEXIST, "cannot create state segment " + name + ": it is " + what + " (" + path +
                                  ", not created by regiond), and serving under a suffixed name failed too (" +
                                  last.message + "). Remove " + path + " as root (and find out why " + who +
                                  " created it), or set daemon.state_segment to another name"};
}

}  // namespace

shm::Expected<void> clear_stale_socket(const std::string& path, const std::string& what) {
    using State = base::SocketPathClaim::State;
    const base::SocketPathClaim claim = base::claim_socket_path(path);
    switch (claim.state) {
        case State::free: return {};
        case State::stale_removed:
            log::notice("removed the stale " + what + " " + path + " (no daemon answered on it)");
            return {};
        case State::live:
            return shm::Error{EADDRINUSE,
                              "another regiond is running at " + path +
                                  (claim.live_pid > 0 ? " (pid " + std::to_string(claim.live_pid) + ")" : "") +
                                  ": stop it first, or give this instance its own daemon.socket, "
                                  "daemon.admin_socket and daemon.state_segment"};
        case State::not_a_socket:
            return shm::Error{EEXIST,
                              what + " " + path + " exists and is not a socket: remove it or choose another path"};
        case State::too_long: return shm::Error::invalid(what + " path " + path + " is too long for a unix socket");
        case State::failed:
            return shm::Error{claim.error,
                              std::string("cannot ") +
                                  (std::strcmp(claim.step, "remove") == 0 ? "remove the stale " : "check ") + what +
                                  " " + path + ": " + errno_text(claim.error)};
    }
    return {};
}

shm::Expected<bool> check_state_segment(const std::string& name, std::chrono::nanoseconds fresh_within) {
    auto view = shm::StateView::open(name);
    if (!view) {
        if (view.error().code == ENOENT) return false;
        log::notice("replacing state segment " + name + ": " + view.error().message);
        return true;
    }
    const pid_t pid = static_cast<pid_t>(view->daemon_pid());
    const auto age = view->heartbeat_age();
    if (pid != ::getpid() && process_alive(pid) && age <= fresh_within)
        return shm::Error{EADDRINUSE, "another regiond (pid " + std::to_string(pid) + ") owns state segment " + name +
                                          " (heartbeat " + format_duration(age) +
                                          " ago): stop it first, or give this instance its own daemon.state_segment"};
    log::notice("replacing the stale state segment " + name + " of pid " + std::to_string(pid) + " (" +
                (process_alive(pid) ? "heartbeat " + format_duration(age) + " old" : std::string("process gone")) +
                ")");
    return true;
}

shm::Expected<shm::StateSegment> claim_state_segment(shm::StateSegmentOptions options,
                                                     std::chrono::nanoseconds fresh_within) {
    const std::string name = with_slash(options.name);
    remove_stale_suffixed_segments(name, fresh_within);
    // Each pass either creates the segment or learns who holds the name; O_EXCL
    // means a name taken between our look and our create only costs a pass.
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        const auto holder = shm::state_segment_holder(name);
        if (!holder) return holder.error();
        options.name = name;
        if (!*holder) {
            options.replace_existing = false;
        } else if ((*holder)->uid == ::geteuid() && (*holder)->regular_file) {
            // Ours: a previous daemon of this user, alive (refused) or not (replaced).
            const auto replace = check_state_segment(name, fresh_within);
            if (!replace) return replace.error();
            options.replace_existing = *replace;
        } else {
            return create_under_suffix(options, name, **holder);
        }
        auto segment = shm::StateSegment::create(options);
        if (segment || segment.error().code != EEXIST) return segment;
    }
    return shm::Error{EEXIST, "cannot create state segment " + name + ": the name is taken again each time (" +
                                  shm::state_segment_path(name) +
                                  "); another process is racing for it: set daemon.state_segment to another name"};
}

}  // namespace regiond::daemon

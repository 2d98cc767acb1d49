#include "shm/base/unix_socket_path.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shm/base/unique_fd.hpp"

namespace regiond::base {

std::optional<sockaddr_un> unix_address(const std::string& path) noexcept {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path) return std::nullopt;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

SocketPathClaim claim_socket_path(const std::string& path) {
    SocketPathClaim claim;
    const auto fail = [&](const char* step, int error) {
        claim.state = SocketPathClaim::State::failed;
        claim.step = step;
        claim.error = error;
        return claim;
    };
    const auto address = unix_address(path);
    if (!address) {
        claim.state = SocketPathClaim::State::too_long;
        return claim;
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return claim;  // free
        return fail("check", errno);
    }
    if (!S_ISSOCK(st.st_mode)) {
        claim.state = SocketPathClaim::State::not_a_socket;
        return claim;
    }
    // Non-blocking: a live listener with a full backlog answers EAGAIN at once
    // instead of making us wait for it.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!probe) return fail("probe", errno);
    const int rc = ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
    if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
        claim.state = SocketPathClaim::State::live;
        ucred cred{};
        socklen_t length = sizeof cred;
        if (rc == 0 && ::getsockopt(probe.get(), SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0 && length == sizeof cred)
            claim.live_pid = cred.pid;
        return claim;
    }
    if (errno != ECONNREFUSED) return fail("probe", errno);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail("remove", errno);
    claim.state = SocketPathClaim::State::stale_removed;
    return claim;
}

bool unlink_if_same_file(const std::string& path, dev_t device, ino_t inode) noexcept {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || st.st_dev != device || st.st_ino != inode) return false;
    return ::unlink(path.c_str()) == 0;
}

}  // namespace regiond::base

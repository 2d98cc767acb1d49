#include "shm/fd_passing.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace regiond::shm {

namespace {

constexpr std::size_t kControlSpace = CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage);

// Collects every SCM_RIGHTS descriptor of a received message into `out` (so that
// they are closed on any error path). Returns false for a malformed control message.
bool collect_fds(msghdr& msg, std::vector<UniqueFd>& out) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_len < CMSG_LEN(0)) return false;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t bytes = c->cmsg_len - CMSG_LEN(0);
        if (bytes % sizeof(int) != 0) return false;
        const unsigned char* data = CMSG_DATA(c);
        for (std::size_t i = 0; i < bytes / sizeof(int); ++i) {
            int fd;
            std::memcpy(&fd, data + i * sizeof(int), sizeof fd);
            out.emplace_back(fd);
        }
    }
    return true;
}

}  // namespace

Expected<void> send_fds(int sock, std::span<const int> fds, std::span<const std::byte> message) {
    if (fds.empty() || fds.size() > kMaxFdsPerMessage)
        return Error::invalid("send_fds: between 1 and " + std::to_string(kMaxFdsPerMessage) + " descriptors");
    if (message.empty()) return Error::invalid("send_fds: the message must have at least one byte");

    alignas(cmsghdr) unsigned char control[kControlSpace] = {};
    iovec iov{const_cast<std::byte*>(message.data()), message.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());

    ssize_t n;
    do {
        n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Error::system(errno, "sending descriptors over the socket");

    // The descriptors went with the first byte; send any remainder as plain data.
    std::size_t sent = static_cast<std::size_t>(n);
    while (sent < message.size()) {
        n = ::send(sock, message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::system(errno, "sending the rest of a descriptor message");
        sent += static_cast<std::size_t>(n);
    }
    return {};
}

Expected<void> send_fd(int sock, int fd, std::span<const std::byte> message) {
    const int fds[1] = {fd};
    return send_fds(sock, fds, message);
}

Expected<std::vector<UniqueFd>> recv_fds(int sock, std::size_t expected_fds, std::span<std::byte> message) {
    if (expected_fds == 0 || expected_fds > kMaxFdsPerMessage)
        return Error::invalid("recv_fds: between 1 and " + std::to_string(kMaxFdsPerMessage) + " descriptors");
    if (message.empty()) return Error::invalid("recv_fds: the message must have at least one byte");

    std::vector<UniqueFd> fds;
    std::size_t received = 0;
    bool first = true;
    while (received < message.size()) {
        alignas(cmsghdr) unsigned char control[kControlSpace];
        iovec iov{message.data() + received, message.size() - received};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::system(errno, "receiving descriptors from the socket");
        if (n == 0)
            return Error{ECONNRESET, "peer closed the socket after " + std::to_string(received) + " of " +
                                         std::to_string(message.size()) + " bytes of a descriptor message"};
        const std::size_t before = fds.size();
        const bool well_formed = collect_fds(msg, fds);  // take ownership first, then judge
        if (!well_formed) return Error::invalid("malformed control message from the peer");
        if (msg.msg_flags & MSG_CTRUNC)
            return Error::invalid("descriptor message truncated (MSG_CTRUNC): peer sent too many descriptors");
        if (!first && fds.size() != before) return Error::invalid("peer sent descriptors in the middle of a message");
        first = false;
        received += static_cast<std::size_t>(n);
    }
    if (fds.size() != expected_fds)
        return Error::invalid("expected " + std::to_string(expected_fds) + " descriptor(s), peer sent " +
                              std::to_string(fds.size()));
    return fds;
}

Expected<UniqueFd> recv_fd(int sock, std::span<std::byte> message) {
    auto fds = recv_fds(sock, 1, message);
    if (!fds) return fds.error();
    return std::move(fds->front());
}

Expected<ucred> peer_credentials(int sock) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return Error::system(errno, "SO_PEERCRED");
    if (len != sizeof cred) return Error::invalid("SO_PEERCRED returned a short answer");
    return cred;
}

}  // namespace regiond::shm

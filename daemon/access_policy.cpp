#include "daemon/access_policy.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace regiond::daemon {

AccessDecision check_access(const PeerCredentials& peer, const AccessPolicy& policy) {
    AccessDecision decision;
    const auto& uids = policy.allowed_uids;
    if (peer.uid == 0 || peer.uid == policy.daemon_uid || std::find(uids.begin(), uids.end(), peer.uid) != uids.end()) {
        decision.allowed = true;
        return decision;
    }
    if (policy.client_gid) {
        const gid_t group = *policy.client_gid;
        if (peer.gid == group || std::find(peer.groups.begin(), peer.groups.end(), group) != peer.groups.end()) {
            decision.allowed = true;
            return decision;
        }
    }
    decision.message = "uid " + std::to_string(peer.uid) + " may not use this regiond: add the user to group " +
                       (policy.client_group.empty() ? std::string("(none configured)") : policy.client_group) +
                       " (then log in again) or its uid to daemon.allowed_uids";
    if (!policy.config_path.empty()) decision.message += " in " + policy.config_path;
    return decision;
}

std::optional<PeerCredentials> read_peer_credentials(int fd) {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0 || length != sizeof cred) return std::nullopt;
    PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 3; ++attempt) {
        socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
            groups.resize(bytes / sizeof(gid_t));
            peer.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE) break;  // an old kernel: the primary gid still counts
        groups.resize(bytes / sizeof(gid_t) + 1);
    }
    return peer;
}

}  // namespace regiond::daemon

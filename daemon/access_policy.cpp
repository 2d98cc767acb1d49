#include "daemon/access_policy.hpp"

#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace regiond::daemon {
namespace {

bool in_group(const PeerCredentials& peer, gid_t group) {
    return peer.gid == group || std::find(peer.groups.begin(), peer.groups.end(), group) != peer.groups.end();
}

}  // namespace

AccessDecision check_access(const PeerCredentials& peer, const AccessPolicy& policy) {
    AccessDecision decision;
    const auto& uids = policy.allowed_uids;
    if (peer.uid == 0 || peer.uid == policy.daemon_uid || std::find(uids.begin(), uids.end(), peer.uid) != uids.end()) {
        decision.allowed = true;
        return decision;
    }
    if (policy.client_gid && in_group(peer, *policy.client_gid)) {
        decision.allowed = true;
        return decision;
    }
    decision.message = "uid " + std::to_string(peer.uid) + " may not use this regiond: add the user to group " +
                       (policy.client_group.empty() ? std::string("(none configured)") : policy.client_group) +
                       " (then log in again) or its uid to daemon.allowed_uids";
    if (!policy.config_path.empty()) decision.message += " in " + policy.config_path;
    return decision;
}

AccessDecision check_admin(const PeerCredentials& peer, const AccessPolicy& policy, std::string_view command) {
    AccessDecision decision;
    if (peer.uid == 0 || peer.uid == policy.daemon_uid || (policy.admin_gid && in_group(peer, *policy.admin_gid))) {
        decision.allowed = true;
        return decision;
    }
    const std::string config = policy.config_path.empty() ? std::string("the configuration file") : policy.config_path;
    decision.message = "\"" + std::string(command) + "\" changes regiond's state and is for admins only: root, " +
                       "the daemon's user (" + uid_text(policy.daemon_uid) + ")";
    if (policy.admin_gid) {
        decision.message += " and members of daemon.admin_group " + policy.admin_group + "; " + uid_text(peer.uid) +
                            " is none of these: add the user to group " + policy.admin_group +
                            " (then log in again), or run it as root";
    } else {
        decision.message += "; " + uid_text(peer.uid) +
                            " is neither: run it as root, or set daemon.admin_group = \"GROUP\" in " + config +
                            ", add the user to that group (then log in again) and reload regiond (SIGHUP)";
    }
    return decision;
}

std::string uid_text(uid_t uid) {
    std::string text = "uid " + std::to_string(uid);
    std::vector<char> buffer(1024);
    for (int attempt = 0; attempt < 4; ++attempt) {
        passwd entry{};
        passwd* found = nullptr;
        const int rc = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
        if (rc == ERANGE) {
            buffer.resize(buffer.size() * 4);
            continue;
        }
        if (rc == 0 && found != nullptr && found->pw_name != nullptr) text += " (" + std::string(found->pw_name) + ")";
        break;
    }
    return text;
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

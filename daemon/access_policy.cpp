#include "daemon/access_policy.hpp"

#include <algorithm>

namespace regiond::daemon {

AccessDecision check_access(const PeerCredentials& peer, const AccessPolicy& policy)
{
    AccessDecision decision;
    const auto& uids = policy.allowed_uids;
    if (peer.uid == 0 || peer.uid == policy.daemon_uid ||
        std::find(uids.begin(), uids.end(), peer.uid) != uids.end()) {
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
    if (!policy.config_path.empty())
        decision.message += " in " + policy.config_path;
    return decision;
}

}  // namespace regiond::daemon

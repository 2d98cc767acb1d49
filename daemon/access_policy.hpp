// Who may use the daemon (client socket and admin socket). check_access() is
// pure: a function of the peer's credentials (SO_PEERCRED + SO_PEERGROUPS, read
// by read_peer_credentials()) and the configuration. check_admin() is too, but
// for the user names it looks up for its message.
//
// Allowed: uid 0; the daemon's own uid; a uid in daemon.allowed_uids; a peer whose
// primary or supplementary groups include daemon.client_group.
//
// Admin commands that change the daemon's state (admin_command.hpp marks them)
// need more: check_admin() allows uid 0, the daemon's own uid and members of
// daemon.admin_group (none when it is not set). daemon.allowed_uids grants no
// admin rights. The credentials are the ones read at accept().
//
// The socket files are already mode 0660 with the client group, so the kernel
// refuses most strangers at connect(); this check is the second wall (it also
// holds when the mode is loosened, and it is what names the fix in its message).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::daemon {

struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  ///< supplementary groups (SO_PEERGROUPS), may be empty
};

struct AccessPolicy {
    uid_t daemon_uid = 0;
    std::vector<uid_t> allowed_uids;
    std::optional<gid_t> client_gid;  ///< nullopt: the group is not resolved, no group grants access
    std::string client_group;         ///< its name, for messages
    std::optional<gid_t> admin_gid;   ///< daemon.admin_group; nullopt: only root and the daemon's uid
    std::string admin_group;          ///< its name, for messages ("" when not set)
    std::string config_path;          ///< for messages ("... in /etc/regiond/regiond.toml")
};

struct AccessDecision {
    bool allowed = false;
    std::string message;  ///< when denied: names the uid and what to change (fits a WelcomeMessage)
};

AccessDecision check_access(const PeerCredentials& peer, const AccessPolicy& policy);

/// May `peer` run `command` (e.g. "cache flush"), a command that changes the
/// daemon's state? When denied, the message names the command, who may run it
/// and how to grant it.
AccessDecision check_admin(const PeerCredentials& peer, const AccessPolicy& policy, std::string_view command);

/// "uid 1001 (alice)", or "uid 1001" when the user database has no name for it.
std::string uid_text(uid_t uid);

/// SO_PEERCRED + SO_PEERGROUPS of a connected unix socket (the credentials at
/// connect() time). nullopt when the kernel does not tell.
std::optional<PeerCredentials> read_peer_credentials(int fd);

}  // namespace regiond::daemon

// Who may connect (daemon/access_policy.hpp): a pure function of the peer's
// credentials and the configuration.
#include <catch2/catch.hpp>

#include "daemon/access_policy.hpp"

using namespace regiond::daemon;

namespace {

AccessPolicy policy() {
    AccessPolicy p;
    p.daemon_uid = 995;
    p.allowed_uids = {1500};
    p.client_gid = 990;
    p.client_group = "regiond";
    p.config_path = "/etc/regiond/regiond.toml";
    return p;
}

PeerCredentials peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
    return PeerCredentials{1234, uid, gid, std::move(groups)};
}

}  // namespace

TEST_CASE("root, the daemon's own uid and allowed_uids are allowed", "[access]") {
    CHECK(check_access(peer(0, 0), policy()).allowed);
    CHECK(check_access(peer(995, 995), policy()).allowed);
    CHECK(check_access(peer(1500, 100), policy()).allowed);
}

TEST_CASE("members of client_group are allowed, by primary or supplementary group", "[access]") {
    CHECK(check_access(peer(1000, 990), policy()).allowed);
    CHECK(check_access(peer(1000, 100, {27, 990}), policy()).allowed);
}

TEST_CASE("anyone else is refused with a message that says what to change", "[access]") {
    const AccessDecision d = check_access(peer(65534, 65534, {65534}), policy());
    CHECK_FALSE(d.allowed);
    CHECK_THAT(d.message, Catch::Contains("uid 65534"));
    CHECK_THAT(d.message, Catch::Contains("group regiond"));
    CHECK_THAT(d.message, Catch::Contains("daemon.allowed_uids in /etc/regiond/regiond.toml"));
    CHECK(d.message.size() < 280);  // fits WelcomeMessage::message
}

TEST_CASE("an unresolved client group grants nothing", "[access]") {
    AccessPolicy p = policy();
    p.client_gid.reset();
    CHECK_FALSE(check_access(peer(1000, 990, {990}), p).allowed);
    CHECK(check_access(peer(1500, 990), p).allowed);
}

TEST_CASE("admin commands: root, the daemon's uid and admin_group members only", "[access][admin]") {
    AccessPolicy p = policy();
    p.admin_gid = 991;
    p.admin_group = "regiond-admin";
    CHECK(check_admin(peer(0, 0), p, "cache flush").allowed);
    CHECK(check_admin(peer(995, 995), p, "cache flush").allowed);
    CHECK(check_admin(peer(1000, 991), p, "cache flush").allowed);
    CHECK(check_admin(peer(1000, 100, {990, 991}), p, "cache flush").allowed);
    // A client (group member, allowed uid) is not an admin.
    CHECK_FALSE(check_admin(peer(1000, 990), p, "cache flush").allowed);
    CHECK_FALSE(check_admin(peer(1500, 100), p, "cache flush").allowed);

    const AccessDecision d = check_admin(peer(1000, 990, {990}), p, "cache flush");
    CHECK_THAT(d.message, Catch::StartsWith("\"cache flush\" changes regiond's state and is for admins only"));
    CHECK_THAT(d.message, Catch::Contains("uid 995"));
    CHECK_THAT(d.message, Catch::Contains("daemon.admin_group regiond-admin"));
    CHECK_THAT(d.message, Catch::Contains("add the user to group regiond-admin"));
    CHECK_THAT(d.message, Catch::Contains("uid 1000"));
    CHECK_THAT(d.message, !Catch::Contains("ermission denied"));
}

TEST_CASE("without admin_group, the refusal says how to set one", "[access][admin]") {
    const AccessDecision d = check_admin(peer(1000, 990, {990}), policy(), "cache flush");
    CHECK_FALSE(d.allowed);
    CHECK_THAT(d.message, Catch::Contains("run it as root"));
    CHECK_THAT(d.message, Catch::Contains("daemon.admin_group = \"GROUP\" in /etc/regiond/regiond.toml"));
    CHECK_THAT(d.message, Catch::Contains("SIGHUP"));
}

TEST_CASE("uid_text names the user when the user database knows it", "[access]") {
    CHECK(uid_text(0) == "uid 0 (root)");
    CHECK(uid_text(4000000000u) == "uid 4000000000");
}

// Reads the cluster.env and links file that scripts/cluster.sh writes, so the
// integration tests find the servers of the cluster that is up, wherever its
// ports were placed. A missing cluster is a test failure with a clear message,
// never a skip.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace regiond::testing {

struct WanLink {
    std::string name;  // "eu-west-1>us-east-1:pg"
    std::string listen_host;
    int listen_port = 0;
    std::string target_host;
    int target_port = 0;
    double delay_ms = 0;  // one way, each direction
};

class ClusterEnv {
public:
    // Loads $REGIOND_CLUSTER_DIR/cluster.env; throws std::runtime_error saying how
    // to start the cluster when it is absent.
    static const ClusterEnv& get();

    const std::string& value(const std::string& key) const;
    int port(const std::string& key) const;

    // "eu-west-1" -> "EU_WEST_1", the suffix cluster.env uses.
    static std::string key_of(const std::string& region);

    std::string pg_socket_dir() const { return value("PG_SOCKET_DIR"); }
    int pg_port(const std::string& region) const { return port("PG_PORT_" + key_of(region)); }
    int redis_port(const std::string& region) const { return port("REDIS_PORT_" + key_of(region)); }
    std::string regiond_config(const std::string& region) const { return value("REGIOND_CONFIG_" + key_of(region)); }

    // Superuser conninfo over the unix socket, straight to the server (no WAN link).
    std::string superuser_conninfo(const std::string& region) const;
    // The application's conninfo through the WAN link FROM -> TO.
    std::string app_conninfo_via(const std::string& from, const std::string& to) const;

    const WanLink& link(const std::string& from, const std::string& to, const std::string& service) const;
    const std::vector<WanLink>& links() const { return links_; }

    // Runs `rgd-wanproxy ctl <control> ARGS...`; returns its exit code.
    int wan_ctl(const std::vector<std::string>& args) const;

private:
    std::map<std::string, std::string> values_;
    std::vector<WanLink> links_;
};

// Cuts a WAN link for the lifetime of the guard and restores it even when the
// test fails half way.
class LinkCut {
public:
    LinkCut(const ClusterEnv& env, std::string link_name, std::string mode = "stall");
    ~LinkCut();
    LinkCut(const LinkCut&) = delete;
    LinkCut& operator=(const LinkCut&) = delete;

private:
    const ClusterEnv& env_;
    std::string name_;
};

}  // namespace regiond::testing

#include "cluster_env.hpp"

#include <spawn.h>
#include <sys/wait.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <tuple>

extern char** environ;

namespace regiond::testing {
namespace {

std::string cluster_dir() {
    const char* dir = std::getenv("REGIOND_CLUSTER_DIR");
    return dir != nullptr && *dir != '\0' ? dir : "/tmp/regiond-cluster";
}

std::string strip_quotes(std::string v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
        v = v.substr(1, v.size() - 2);
    }
    return v;
}

std::pair<std::string, int> split_host_port(const std::string& hp) {
    auto colon = hp.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("bad host:port in links file: " + hp);
    return {hp.substr(0, colon), std::stoi(hp.substr(colon + 1))};
}

}  // namespace

const ClusterEnv& ClusterEnv::get() {
    // Loaded once per test process; the cluster does not move while tests run.
    static const ClusterEnv env = [] {
        ClusterEnv e;
        const std::string path = cluster_dir() + "/cluster.env";
        std::ifstream in(path);
        if (!in) {
            throw std::runtime_error("no local cluster: " + path +
                                     " is missing. Start it with `scripts/cluster.sh up --profile fast` "
                                     "(and set REGIOND_CLUSTER_DIR if it is not in /tmp/regiond-cluster)");
        }
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line[0] == '#') continue;
            auto eq = line.find('=');
            if (eq == std::string::npos) continue;
            e.values_[line.substr(0, eq)] = strip_quotes(line.substr(eq + 1));
        }
        std::ifstream links(e.value("WAN_LINKS"));
        if (!links) throw std::runtime_error("cannot read WAN links file " + e.value("WAN_LINKS"));
        while (std::getline(links, line)) {
            if (line.empty() || line[0] == '#') continue;
            std::istringstream fields(line);
            std::string name, listen, target;
            double delay = 0;
            if (!(fields >> name >> listen >> target >> delay)) continue;
            WanLink l;
            l.name = name;
            std::tie(l.listen_host, l.listen_port) = split_host_port(listen);
            std::tie(l.target_host, l.target_port) = split_host_port(target);
            l.delay_ms = delay;
            e.links_.push_back(l);
        }
        return e;
    }();
    return env;
}

const std::string& ClusterEnv::value(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::runtime_error("cluster.env has no " + key);
    return it->second;
}

int ClusterEnv::port(const std::string& key) const {
    return std::stoi(value(key));
}

std::string ClusterEnv::key_of(const std::string& region) {
    std::string k;
    for (char c : region) k += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return k;
}

std::string ClusterEnv::superuser_conninfo(const std::string& region) const {
    return "host=" + pg_socket_dir() + " port=" + std::to_string(pg_port(region)) +
           " user=postgres dbname=" + value("APP_DB") + " connect_timeout=5";
}

std::string ClusterEnv::app_conninfo_via(const std::string& from, const std::string& to) const {
    const WanLink& l = link(from, to, "pg");
    return "host=" + l.listen_host + " port=" + std::to_string(l.listen_port) + " dbname=" + value("APP_DB") +
           " user=" + value("APP_USER") + " passfile=" + value("APP_PASSFILE") + " connect_timeout=2";
}

const WanLink& ClusterEnv::link(const std::string& from, const std::string& to, const std::string& service) const {
    const std::string name = from + ">" + to + ":" + service;
    for (const auto& l : links_) {
        if (l.name == name) return l;
    }
    throw std::runtime_error("no WAN link named " + name);
}

int ClusterEnv::wan_ctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv_s = {value("WANPROXY_BIN"), "ctl", value("WAN_CONTROL")};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

LinkCut::LinkCut(const ClusterEnv& env, std::string link_name, std::string mode)
    : env_(env), name_(std::move(link_name)) {
    if (env_.wan_ctl({"cut", name_, mode}) != 0) {
        throw std::runtime_error("could not cut WAN link " + name_);
    }
}

LinkCut::~LinkCut() {
    env_.wan_ctl({"restore", name_});
}

}  // namespace regiond::testing

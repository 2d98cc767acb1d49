// Privileges and secrets of the real regiond binary on the local cluster
// (scripts/cluster.sh), with real local users (scripts/install-deps.sh):
//   - the admin socket: a member of the client group reads status and metrics but
//     may not run `cache flush` (a clear error, exit 1); an admin may; SIGHUP
//     changes who is an admin;
//   - the state segment's name squatted by another user (a forged live segment,
//     or a plain file): the daemon starts anyway under a suffixed name, warns,
//     serves clients, leaves the stranger's file alone, and a clean start after
//     the squatter is gone uses the configured name again;
//   - a URI password holding '@': --check-config refuses it unencoded; encoded, the
//     daemon connects with it, and no piece of it (3+ characters) appears in the
//     log, status, status json, metrics, the state segment's bytes or the errors
//     clients get.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "../cluster_env.hpp"
#include "../daemon/mini_json.hpp"
#include "../daemon/regiond_process.hpp"
#include "../pg_session.hpp"
#include "run_as.hpp"
#include "shm/state_segment.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
namespace shm = regiond::shm;

namespace {

constexpr auto kStartTimeout = 15s;

std::string regionctl_binary() {
    const char* bin = std::getenv("REGIONCTL_BIN");
    if (bin == nullptr || *bin == '\0') throw std::runtime_error("REGIONCTL_BIN is not set (meson test sets it)");
    return bin;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Rewrites the config copy line by line: `edit(section, line)` returns the new
// line, or nullopt to drop it. `section` is "daemon", "[cache]"-style for other
// tables, or the name of the [[regions]] entry being read ("" before its name).
template <class Edit>
void edit_config(const std::string& path, Edit edit) {
    std::istringstream in(read_file(path));
    std::ostringstream out;
    std::string line, section;
    while (std::getline(in, line)) {
        if (line == "[daemon]")
            section = "daemon";
        else if (line == "[[regions]]")
            section = "";
        else if (line.rfind("[", 0) == 0)
            section = line;
        else if (section.empty() && line.rfind("name = \"", 0) == 0)
            section = line.substr(8, line.size() - 9);
        if (const std::optional<std::string> kept = edit(section, line)) out << *kept << '\n';
    }
    std::ofstream(path) << out.str();
}

// Sets a [daemon] key (added right after [daemon], any old line dropped); an
// empty value removes it.
void set_daemon_key(const std::string& path, const std::string& key, const std::string& value_toml) {
    edit_config(path, [&](const std::string& section, const std::string& line) -> std::optional<std::string> {
        if (line == "[daemon]" && !value_toml.empty()) return line + "\n" + key + " = " + value_toml;
        if (section == "daemon" && line.rfind(key + " = ", 0) == 0) return std::nullopt;
        return line;
    });
}

// [cache] memory = "1MiB": a small state segment to search.
void small_cache(const std::string& path) {
    edit_config(path, [](const std::string& section, const std::string& line) -> std::optional<std::string> {
        if (section == "[cache]" && line.rfind("memory = ", 0) == 0) return "memory = \"1MiB\"";
        return line;
    });
}

// Replaces `key = ...` in the [[regions]] entry named `region`.
void set_region_key(const std::string& path, const std::string& region, const std::string& key,
                    const std::string& value_toml) {
    edit_config(path, [&](const std::string& section, const std::string& line) -> std::optional<std::string> {
        if (section == region && line.rfind(key + " = ", 0) == 0) return key + " = " + value_toml;
        return line;
    });
}

// One regiond on a copy of the cluster's eu-west-1 config.
struct Daemon {
    DaemonSetup setup;
    NotifySocket notify;
    std::optional<RegiondProcess> process;
    int runs = 0;

    Daemon()
        : setup(DaemonSetup::from(ClusterEnv::get().regiond_config("eu-west-1"), "drain_timeout = \"2s\"")),
          notify(setup.dir + "/notify.sock") {
        set_daemon_key(setup.config_path, "client_group", "\"regiond\"");  // the test users' group
    }

    void start() {
        notify.clear();
        process.emplace(regiond_binary(), setup.config_path, log_path(), notify.path());
    }
    std::string log_path() const { return setup.dir + "/regiond.log"; }
    std::string log() const { return read_file(log_path()); }

    void require_ready() {
        const bool ready = notify.wait_for("READY=1", kStartTimeout);
        INFO(log());
        REQUIRE(ready);
    }
    void stop() {
        process->signal(SIGTERM);
        CHECK(process->wait_exit(10s) == 0);
    }
    void reload() {
        notify.clear();
        process->signal(SIGHUP);
        const bool reloaded = notify.wait_for("RELOADING=1", 5s) && notify.wait_for("READY=1", 5s);
        INFO(log());
        REQUIRE(reloaded);
    }

    ProgramRun ctl(const std::string& user, std::vector<std::string> args) const {
        args.insert(args.begin(), {"--socket", setup.admin_socket});
        return run_as(user, regionctl_binary(), args);
    }
    ProgramRun query(const std::string& user, std::vector<std::string> args) const {
        args.insert(args.begin(), {"--socket", setup.socket, "query"});
        return run_as(user, regionctl_binary(), args);
    }
    Json status_json() const {
        const ProgramRun r = ctl("", {"status", "--json"});
        INFO(r.err);
        REQUIRE(r.status == 0);
        return Json::parse(r.out);
    }
    // Polls until the named endpoint is healthy in status.
    void require_healthy(const std::string& region, const std::string& role) {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        bool healthy = false;
        while (!healthy && std::chrono::steady_clock::now() < deadline) {
            const Json status = status_json();  // the range below must not outlive it
            for (const Json& e : status["endpoints"].array())
                healthy |= e["region"].str() == region && e["role"].str() == role && e["healthy"].boolean();
            if (!healthy) std::this_thread::sleep_for(50ms);  // polling interval
        }
        INFO(log());
        REQUIRE(healthy);
    }
};

bool regular_file_owned_by(const std::string& path, uid_t uid) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == uid;
}

// Every piece of `secret` of 3 or more characters that occurs in `text`.
std::vector<std::string> pieces_in(const std::string& text, const std::string& secret) {
    std::vector<std::string> found;
    for (std::size_t length = 3; length <= secret.size(); ++length)
        for (std::size_t i = 0; i + length <= secret.size(); ++i)
            if (text.find(secret.substr(i, length)) != std::string::npos) found.push_back(secret.substr(i, length));
    return found;
}

}  // namespace

TEST_CASE("admin socket: the client group reads status and metrics; cache flush is for admins", "[privileges]") {
    (void)user_ids(kClientUser);
    (void)user_ids(kAdminUser);
    Daemon d;
    d.start();
    d.require_ready();

    // A client-group member reads.
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"status"}, std::vector<std::string>{"status", "--json"},
          std::vector<std::string>{"metrics"}}) {
        const ProgramRun r = d.ctl(kClientUser, args);
        INFO(args[0] << ": " << r.err);
        CHECK(r.status == 0);
        CHECK_THAT(r.out, Catch::Contains("eu-west-1"));
    }

    // ...and may not flush. Default: only root and the daemon's user.
    {
        const ProgramRun r = d.ctl(kClientUser, {"cache", "flush"});
        INFO(r.err);
        CHECK(r.status == 1);
        CHECK(r.out.empty());
        CHECK_THAT(r.err,
                   Catch::StartsWith("regionctl: \"cache flush\" changes regiond's state and is for admins only"));
        CHECK_THAT(r.err,
                   Catch::Contains("uid " + std::to_string(user_ids(kClientUser).uid) + " (" + kClientUser + ")"));
        CHECK_THAT(r.err, Catch::Contains("daemon.admin_group = \"GROUP\" in " + d.setup.config_path));
        CHECK_THAT(r.out, !Catch::Contains("flushed"));  // refused before it runs
        CHECK_THAT(d.log(), Catch::Contains("admin socket: refused \"cache flush\""));
    }
    // Root passes the check, and the command runs.
    {
        const ProgramRun r = d.ctl("", {"cache", "flush", "k1"});
        INFO(r.err);
        CHECK(r.status == 0);
        CHECK_THAT(r.out, Catch::Contains("evicted 1 key from this host's hot cache"));
    }
    // Not an admin yet: rgd-test-admin is only a client.
    CHECK_THAT(d.ctl(kAdminUser, {"cache", "flush"}).err, Catch::Contains("admins only"));

    // SIGHUP: daemon.admin_group applies live.
    set_daemon_key(d.setup.config_path, "admin_group", "\"regiond-admin\"");
    d.reload();
    CHECK_THAT(d.log(), Catch::Contains("reload: applied daemon.admin_group"));
    {
        const ProgramRun admin = d.ctl(kAdminUser, {"cache", "flush"});
        INFO(admin.err);
        CHECK(admin.status == 0);  // past the check
        CHECK_THAT(admin.out, Catch::Contains("flushed this host's hot cache"));
        const ProgramRun client = d.ctl(kClientUser, {"cache", "flush"});
        CHECK(client.status == 1);
        CHECK_THAT(client.err, Catch::Contains("and members of daemon.admin_group regiond-admin"));
        CHECK_THAT(client.err, Catch::Contains("add the user to group regiond-admin"));
        CHECK(d.ctl(kClientUser, {"status"}).status == 0);
    }

    // An unknown group is refused by --check-config, naming the file, line and key;
    // the same file sent with SIGHUP is logged and the running admin_group kept.
    set_daemon_key(d.setup.config_path, "admin_group", "\"no-such-group-rgd\"");
    {
        const ProgramRun check = run_as("", regiond_binary(), {"--check-config", d.setup.config_path});
        CHECK(check.status == 78);
        CHECK_THAT(check.out + check.err, Catch::Contains(d.setup.config_path + ":"));
        CHECK_THAT(check.out + check.err,
                   Catch::Contains("daemon.admin_group: group \"no-such-group-rgd\" does not exist"));
    }
    d.process->signal(SIGHUP);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (d.log().find("keeping the running configuration") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);  // polling interval
    CHECK_THAT(d.log(), Catch::Contains("keeping the running configuration"));
    CHECK(d.ctl(kAdminUser, {"cache", "flush"}).status == 0);  // still an admin
    d.stop();
}

TEST_CASE("a squatted state segment name: the daemon serves under a suffixed name", "[privileges][squat]") {
    const UserIds squatter = user_ids(kClientUser);
    Daemon d;
    const std::string configured = d.setup.state_segment;
    const std::string squatted_path = shm::state_segment_path(configured);
    small_cache(d.setup.config_path);

    SECTION("a forged live segment (what made the previous code refuse to start)") {
        // A valid-looking regiond segment whose "daemon" (the squatter) is alive and
        // heartbeats.
        std::optional<shm::StateSegment> forged;
        UserProcess squat(
            kClientUser,
            [&] {
                shm::StateSegmentOptions o;
                o.name = configured;
                o.cache_bytes = 1 << 20;
                o.mode = 0644;
                auto created = shm::StateSegment::create(o);
                if (!created) return false;
                forged.emplace(std::move(*created));
                return true;
            },
            [&] { forged->heartbeat_now(); });
        REQUIRE(squat.ready());
        REQUIRE(regular_file_owned_by(squatted_path, squatter.uid));

        d.start();
        d.require_ready();
        const std::string log = d.log();
        INFO(log);
        CHECK_THAT(log, Catch::Contains("state segment " + configured + " is held by uid " +
                                        std::to_string(squatter.uid) + " (" + kClientUser + ")"));
        CHECK_THAT(log, Catch::Contains("Remove " + squatted_path + " as root"));

        const Json status = d.status_json();
        const std::string actual = status["state_segment"].str();
        CHECK(actual.size() == configured.size() + 9);
        CHECK(actual.rfind(configured + ".", 0) == 0);
        CHECK(regular_file_owned_by(shm::state_segment_path(actual), 0));
        CHECK_THAT(d.ctl(kClientUser, {"status"}).out, Catch::Contains("state segment " + actual + "\n"));

        // A client (welcome -> the actual name) connects and queries, as the
        // client user and as root.
        for (const std::string& user : {std::string(kClientUser), std::string()}) {
            const ProgramRun q = d.query(user, {"select 40 + 2 as answer"});
            INFO(q.err);
            CHECK(q.status == 0);
            CHECK_THAT(q.out, Catch::Contains("42"));
        }
        // The stranger's file is untouched.
        CHECK(regular_file_owned_by(squatted_path, squatter.uid));

        // SIGKILL while suffixed, then a start after the squatter is gone: the
        // configured name again, and the crashed daemon's suffixed segment removed.
        d.process->signal(SIGKILL);
        CHECK(d.process->wait_exit(5s) == 128 + SIGKILL);
        REQUIRE(regular_file_owned_by(shm::state_segment_path(actual), 0));  // left behind
    }

    SECTION("a plain file of another user") {
        UserProcess squat(kClientUser, [&] {
            const int fd = ::shm_open(configured.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
            if (fd < 0) return false;
            const bool ok = ::write(fd, "mine", 4) == 4;
            ::close(fd);
            return ok;
        });
        REQUIRE(squat.ready());
        d.start();
        d.require_ready();
        INFO(d.log());
        CHECK_THAT(d.log(), Catch::Contains("is held by uid " + std::to_string(squatter.uid)));
        CHECK(d.status_json()["state_segment"].str() != configured);
        CHECK(regular_file_owned_by(squatted_path, squatter.uid));
        CHECK(read_file(squatted_path) == "mine");  // never opened for writing, never truncated
        const ProgramRun q = d.query(kClientUser, {"select 1"});
        INFO(q.out << q.err);
        CHECK(q.status == 0);
        d.stop();  // a clean stop removes its suffixed segment
    }

    // The squatter is gone (as root: what the warning says to do).
    ::unlink(squatted_path.c_str());
    d.start();
    d.require_ready();
    INFO(d.log());
    CHECK(d.status_json()["state_segment"].str() == configured);
    for (const auto& entry : std::filesystem::directory_iterator(shm::kShmDirectory)) {
        const std::string name = "/" + entry.path().filename().string();
        INFO(name);
        CHECK(name.rfind(configured + ".", 0) != 0);  // no suffixed segment left behind
    }
    d.stop();
}

TEST_CASE("a URI password with '@': refused unencoded; encoded, it is never shown", "[privileges][secrets]") {
    const ClusterEnv& env = ClusterEnv::get();
    // Distinctive pieces: a leak of any 3 characters of it is a failure.
    const std::string secret = "Zr8@Qw3@Lp6tH";
    const std::string encoded = "Zr8%40Qw3%40Lp6tH";
    const std::string redis_secret = "Mv5@Jn2@Xc7yB";
    const WanLink& primary_link = env.link("eu-west-1", "us-east-1", "pg");
    const WanLink& far_link = env.link("eu-west-1", "ap-northeast-1", "pg");
    const std::string address = "127.0.0.1:" + std::to_string(primary_link.listen_port);

    // A role with that password on the primary, which admits it over TCP.
    {
        PgSession super(env.superuser_conninfo("us-east-1"));
        super.exec(
            "do $$ begin if not exists (select from pg_roles where rolname = 'rgd_secret') then "
            "create role rgd_secret login; end if; end $$");
        super.exec("alter role rgd_secret password '" + secret + "'");
        const std::string hba_path = super.scalar("show hba_file");
        const std::string line = "host all rgd_secret 127.0.0.0/8 scram-sha-256";
        if (read_file(hba_path).find(line) == std::string::npos) {
            std::ofstream(hba_path, std::ios::app) << line << '\n';
            super.exec("select pg_reload_conf()");
        }
        const std::string direct = "host=127.0.0.1 port=" + std::to_string(env.pg_port("us-east-1")) +
                                   " dbname=app user=rgd_secret password='" + secret + "' connect_timeout=5";
        REQUIRE(eventually(
            [&] {
                try {
                    return PgSession(direct).scalar("select current_user") == "rgd_secret";
                } catch (const std::exception&) {
                    return false;  // the reload has not reached the postmaster yet
                }
            },
            10s));
    }

    Daemon d;
    small_cache(d.setup.config_path);
    // Everything shown anywhere, gathered below.
    std::string shown;

    // Unencoded: libpq would take "Qw3@Lp6tH@127.0.0.1" for the host.
    set_region_key(d.setup.config_path, "us-east-1", "primary",
                   "\"postgresql://rgd_secret:" + secret + "@" + address + "/app\"");
    {
        const ProgramRun check = run_as("", regiond_binary(), {"--check-config", d.setup.config_path});
        INFO(check.out << check.err);
        CHECK(check.status == 78);
        CHECK_THAT(check.err,
                   Catch::Contains("regions[0].primary: invalid conninfo: the URI contains more than one \"@\""));
        CHECK_THAT(check.err, Catch::Contains("%40"));
        shown += check.out + check.err;
    }
    d.start();
    if (d.notify.wait_for("READY=1", 5s)) {
        // The previous code started with it: gather what it shows, then stop.
        std::this_thread::sleep_for(1s);  // let it probe and log (only on the code before the fix)
        shown += d.ctl("", {"status"}).out + d.ctl("", {"status", "--json"}).out + d.ctl("", {"metrics"}).out;
        shown += read_file(shm::state_segment_path(d.setup.state_segment));
        d.stop();
        FAIL_CHECK("regiond started with a URI whose password holds an unescaped @");
    } else {
        CHECK(d.process->wait_exit(5s) == 78);
    }
    shown += d.log();
    CHECK(pieces_in(shown, secret) == std::vector<std::string>{});

    // Encoded: the daemon connects with it. Plus a keyword=value password with '@'
    // that the far replica refuses (no pg_hba entry there: an error path), and a
    // Redis URL whose password holds '@' (this Redis has none: AUTH fails).
    set_region_key(d.setup.config_path, "us-east-1", "primary",
                   "\"postgresql://rgd_secret:" + encoded + "@" + address + "/app?connect_timeout=2\"");
    set_region_key(d.setup.config_path, "ap-northeast-1", "replicas",
                   "[\"host=127.0.0.1 port=" + std::to_string(far_link.listen_port) +
                       " dbname=app user=rgd_secret password='" + secret + "' connect_timeout=2\"]");
    set_region_key(d.setup.config_path, "eu-west-1", "redis",
                   "\"redis://:" + redis_secret +
                       "@127.0.0.1:" + std::to_string(env.link("eu-west-1", "eu-west-1", "redis").listen_port) + "\"");
    {
        const ProgramRun check = run_as("", regiond_binary(), {"--check-config", d.setup.config_path});
        INFO(check.out << check.err);
        REQUIRE(check.status == 0);
    }
    d.start();
    d.require_ready();
    d.require_healthy("us-east-1", "primary");
    {
        const ProgramRun who = d.query("", {"--primary", "select current_user"});
        INFO(who.err);
        CHECK(who.status == 0);
        CHECK_THAT(who.out, Catch::Contains("rgd_secret"));
    }
    // Wait until the far replica and the Redis have been found down (their errors
    // are then in the log and the status).
    {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        bool both_down = false;
        while (!both_down && std::chrono::steady_clock::now() < deadline) {
            const std::string log = d.log();
            both_down = log.find("postgres ap-northeast-1 replica") != std::string::npos &&
                        log.find("redis eu-west-1") != std::string::npos;
            if (!both_down) std::this_thread::sleep_for(50ms);  // polling interval
        }
        INFO(d.log());
        CHECK(both_down);
    }
    // The errors clients get: SQL errors on each path, and a refused admin command.
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--primary", "select * from rgd_no_such_table"},
          std::vector<std::string>{"select 1/0"},
          std::vector<std::string>{"--write", "insert into rgd_no_such_table values (1)"}}) {
        const ProgramRun r = d.query("", args);
        CHECK(r.status == 1);
        shown += r.out + r.err;
    }
    shown += d.ctl(kClientUser, {"cache", "flush"}).err;
    shown += d.ctl("", {"status"}).out + d.ctl("", {"status", "--json"}).out + d.ctl("", {"metrics"}).out;
    const Json status = d.status_json();
    shown += read_file(shm::state_segment_path(status["state_segment"].str()));
    d.stop();
    shown += d.log();

    INFO(d.log());
    CHECK(pieces_in(shown, secret) == std::vector<std::string>{});
    // (%40 alone is no secret: --check-config's advice names it.)
    std::vector<std::string> encoded_pieces = pieces_in(shown, encoded);
    std::erase(encoded_pieces, "%40");
    CHECK(encoded_pieces == std::vector<std::string>{});
    CHECK(pieces_in(shown, redis_secret) == std::vector<std::string>{});
    // The endpoints are named, by host and port only.
    CHECK_THAT(shown, Catch::Contains(address));
}

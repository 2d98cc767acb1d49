// The real regiond binary on the local cluster's generated eu-west-1 config
// (moved into a test-owned runtime directory): readiness through sd_notify, the
// admin socket, the client handshake and a real query through the rings, a
// refused peer, reload, lag routing, SIGTERM, a second instance, recovery after
// SIGKILL, and the systemd unit.
#include <catch2/catch.hpp>

#include <grp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "../cluster_env.hpp"
#include "../pg_session.hpp"
#include "daemon_harness.hpp"
#include "mini_json.hpp"
#include "regiond_process.hpp"
#include "shm/client_segment.hpp"
#include "shm/codec.hpp"
#include "shm/fd_passing.hpp"
#include "shm/handshake.hpp"
#include "shm/layout.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
namespace shm = regiond::shm;

namespace {

std::string fd_target(int fd) {
    char buffer[256] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer - 1);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
}

// Runs in a forked child process (no Catch2 here: exit codes only). Connects
// like any client, then breaks the protocol: `corrupt_ring` writes an unaligned
// head into the request ring's control block, otherwise it pushes a request
// record whose payload is not a request. Then it waits for the daemon to close
// its socket. Exit 0: dropped; 3-9: a step failed; 10: not dropped within 10 s.
int misbehaving_client(const std::string& path, bool corrupt_ring) {
    std::optional<Handshake> h = handshake(path);
    if (!h || h->welcome.status != static_cast<std::uint32_t>(shm::WelcomeStatus::ok)) return 3;
    const shm::UniqueFd& socket = h->socket;
    const shm::UniqueFd& memfd = h->memfd;
    const shm::UniqueFd& eventfd = h->eventfd;
    if (corrupt_ring) {
        struct stat st {};
        if (::fstat(memfd.get(), &st) != 0) return 4;
        const auto size = static_cast<std::size_t>(st.st_size);
        void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
        if (map == MAP_FAILED) return 5;
        auto* header = static_cast<shm::ClientHeader*>(map);
        auto* control = reinterpret_cast<shm::RingControl*>(static_cast<std::byte*>(map) + header->request_ring_offset);
        control->head.store(3, std::memory_order_release);  // not 8-byte aligned: impossible for a real producer
        ::munmap(map, size);
    } else {
        auto attached = shm::ClientSegment::attach(memfd.get());
        if (!attached) return 6;
        const std::byte garbage[7] = {std::byte{0x42}, std::byte{0xff}, std::byte{0x00}, std::byte{0x13}};
        if (attached->requests().try_push(shm::RecordKind::request, shm::kRecordFlagLast, 1, garbage).error !=
            shm::RingError::ok)
            return 7;
    }
    const std::uint64_t one = 1;
    if (::write(eventfd.get(), &one, sizeof one) != sizeof one) return 8;
    pollfd p{socket.get(), POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) return 10;
    char byte;
    return ::recv(socket.get(), &byte, 1, MSG_DONTWAIT) == 0 ? 0 : 9;
}

}  // namespace

TEST_CASE("regiond on the cluster: ready, status, metrics, clients, a refused peer, SIGTERM", "[daemon]") {
    Running d(400'000);  // WatchdogSec=400ms: pings every 200 ms
    d.require_ready();
    d.require_all_healthy();
    CHECK(d.notify.wait_for("WATCHDOG=1", 2s));
    CHECK(d.notify.wait_for("STATUS=serving 0 clients; us-east-1 primary healthy; eu-west-1 replica healthy", 3s));

    {
        const Json s = d.status();
        CHECK(s["region"].str() == "eu-west-1");
        CHECK(s["pid"].num() == d.process.pid());
        CHECK(s["draining"].boolean() == false);
        std::map<std::string, std::string> roles;
        for (const Json& e : s["endpoints"].array()) {
            roles[e["region"].str()] = e["role"].str();
            CHECK(std::regex_match(e["endpoint"].str(), std::regex(R"(127\.0\.0\.1:\d+)")));
            CHECK(std::regex_match(e["replay_lsn"].str(), std::regex(R"([0-9A-F]+/[0-9A-F]+)")));
            CHECK(e["pool_size"].num() == 8);
            CHECK(e["last_error"].str().empty());
        }
        CHECK(roles == std::map<std::string, std::string>{
                           {"us-east-1", "primary"}, {"eu-west-1", "replica"}, {"ap-northeast-1", "replica"}});
        CHECK(s["counters"].object().count("requests_read_local") == 1);

        const std::string text = Running::reply_body(admin_command(d.setup.admin_socket, "status"));
        CHECK_THAT(text, Catch::Contains("REGION"));
        CHECK_THAT(text, Catch::Contains("ap-northeast-1"));
        CHECK_THAT(text, Catch::Contains("alerts: none"));
        CHECK(text.find("passfile") == std::string::npos);  // display names only
        CHECK(admin_command(d.setup.admin_socket, "nonsense").rfind("error: unknown command", 0) == 0);
    }

    // metrics: every line is a comment or "name{labels} value".
    {
        const std::string metrics = Running::reply_body(admin_command(d.setup.admin_socket, "metrics"));
        std::istringstream lines(metrics);
        std::string line;
        int healthy_series = 0;
        const std::regex sample(R"(([a-z_]+)(\{[^}]*\})? (-?[0-9.]+))");
        while (std::getline(lines, line)) {
            if (line.rfind("# ", 0) == 0) continue;
            std::smatch m;
            INFO(line);
            REQUIRE(std::regex_match(line, m, sample));
            if (m[1] == "regiond_endpoint_healthy" && m[3] == "1") ++healthy_series;
        }
        CHECK(healthy_series == 3);
        CHECK_THAT(metrics, Catch::Contains("regiond_cache_healthy{region=\"ap-northeast-1\"} 1"));
    }

    // A client gets a memfd and an eventfd, and a real query runs on the local replica.
    {
        RawClient c(d.setup.socket);
        CHECK(c.welcome.status == static_cast<std::uint32_t>(shm::WelcomeStatus::ok));
        CHECK(std::string(c.welcome.state_segment) == d.setup.state_segment);
        CHECK_THAT(fd_target(c.memfd.get()), Catch::StartsWith("/memfd:"));
        CHECK(fd_target(c.eventfd.get()) == "anon_inode:[eventfd]");
        const shm::Response local = c.query(shm::Op::read_local, "select 40 + 2 as answer");
        INFO(local.error);
        REQUIRE(local.status == shm::Status::ok);
        CHECK(local.served_by == "eu-west-1/replica");
        CHECK(local.value(0, 0) == std::optional<std::string_view>("42"));
        const shm::Response primary = c.query(shm::Op::read_primary, "select 1");
        CHECK(primary.served_by == "us-east-1/primary");
        const shm::Response later = c.query(shm::Op::cached_read, "select 1");  // no key
        CHECK(later.error == "cache key is empty: cached_read needs a key");
        CHECK(d.status()["clients"].num() == 1);
    }

    // A peer that is neither root, nor allowed, nor in the group: the socket is
    // opened to everyone for the test, so the daemon's own check answers.
    {
        REQUIRE(::chmod(d.setup.socket.c_str(), 0666) == 0);
        int pipe_fds[2];
        REQUIRE(::pipe(pipe_fds) == 0);
        const pid_t child = ::fork();
        if (child == 0) {
            ::close(pipe_fds[0]);
            if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(90);
            const int fd = connect_unix(d.setup.socket);
            if (fd < 0) ::_exit(91);
            const shm::HelloMessage h = hello();
            if (::send(fd, &h, sizeof h, MSG_NOSIGNAL) != sizeof h) ::_exit(92);
            shm::WelcomeMessage w{};
            if (::recv(fd, &w, sizeof w, MSG_WAITALL) != sizeof w) ::_exit(93);
            [[maybe_unused]] const ssize_t n = ::write(pipe_fds[1], w.message, std::strlen(w.message));
            ::_exit(static_cast<int>(w.status));
        }
        ::close(pipe_fds[1]);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        char message[512] = {};
        [[maybe_unused]] const ssize_t n = ::read(pipe_fds[0], message, sizeof message - 1);
        ::close(pipe_fds[0]);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == static_cast<int>(shm::WelcomeStatus::permission_denied));
        CHECK_THAT(std::string(message), Catch::Contains("uid 65534"));
        CHECK_THAT(std::string(message), Catch::Contains("daemon.allowed_uids"));
    }

    // A second daemon on the same config refuses to start while this one runs.
    {
        RegiondProcess second(regiond_binary(), d.setup.config_path, d.setup.dir + "/second.log", "");
        CHECK(second.wait_exit(10s) == 1);
        CHECK_THAT(second.log(), Catch::Contains("another regiond is running at " + d.setup.socket + " (pid " +
                                                 std::to_string(d.process.pid()) + ")"));
        CHECK(d.process.running());
    }

    // SIGTERM: STOPPING=1, then exit 0 within drain_timeout.
    d.process.signal(SIGTERM);
    CHECK(d.notify.wait_for("STOPPING=1", 5s));
    CHECK(d.process.wait_exit(3s + 2s) == 0);
    CHECK_THAT(d.process.log(), Catch::Contains("SIGTERM received: draining"));
    CHECK(::access(d.setup.socket.c_str(), F_OK) != 0);  // its sockets are gone
}

TEST_CASE("client processes that write garbage into their rings are dropped alone while others go on", "[daemon]") {
    Running d;
    d.require_ready();
    d.require_all_healthy();
    RawClient good(d.setup.socket);
    REQUIRE(good.query(shm::Op::read_local, "select 1").status == shm::Status::ok);

    std::vector<pid_t> children;
    for (const bool corrupt_ring : {true, false}) {
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) ::_exit(misbehaving_client(d.setup.socket, corrupt_ring));
        children.push_back(child);
    }
    // While they misbehave, the good client keeps getting its own answers.
    for (int i = 0; i < 50; ++i) {
        const shm::Response r = good.query(shm::Op::read_local, "select " + std::to_string(i) + " as n");
        INFO(r.error);
        REQUIRE(r.status == shm::Status::ok);
        CHECK(r.value(0, 0) == std::optional<std::string_view>(std::to_string(i)));
    }
    for (const pid_t child : children) {
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);  // the daemon closed its socket
    }
    CHECK(d.process.running());
    CHECK_THAT(d.process.log(), Catch::Contains("dropped: its request ring is corrupt"));
    CHECK_THAT(d.process.log(), Catch::Contains("dropped: it sent an undecodable request"));
    const Json s = d.status();
    CHECK(s["clients"].num() == 1);
    CHECK(s["counters"]["clients_dropped"].num() == 2);
    const shm::Response after = good.query(shm::Op::read_primary, "select 'still here'");
    REQUIRE(after.status == shm::Status::ok);
    CHECK(after.served_by == "us-east-1/primary");
}

TEST_CASE("many requests in a row and in a burst: no wake-up is lost", "[daemon]") {
    Running d;
    d.require_ready();
    d.require_all_healthy();
    RawClient c(d.setup.socket);
    // One at a time: the daemon alternates between spinning and sleeping on the
    // ring, the client between spinning and its futex. Every wait below is a
    // single sleep bounded only by a deadline far beyond any answer's time: a
    // lost wake-up is never made up for by a retry, it fails the test
    // (RawClient::receive). How fast this goes is bench/'s business, not a test's.
    for (int i = 0; i < 300; ++i) {
        const shm::Response r = c.query(shm::Op::read_local, "select " + std::to_string(i));
        REQUIRE(r.status == shm::Status::ok);
        REQUIRE(r.value(0, 0) == std::optional<std::string_view>(std::to_string(i)));
    }
    // Requests the daemon answers alone (a cached_read without a key):
    // no database in between, so the daemon's own sleep and wake are all that
    // is exercised.
    for (int i = 0; i < 300; ++i) REQUIRE(c.query(shm::Op::cached_read, "select 1").status == shm::Status::error);

    // A burst: 50 requests pushed before any answer is read.
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 50; ++i) {
        shm::RequestView r;
        r.op = shm::Op::read_local;
        const std::string sql = "select " + std::to_string(1000 + i);
        r.sql = sql;
        ids.push_back(c.send(r));
    }
    std::map<std::uint64_t, shm::ResponseDecoder> decoders;
    std::size_t complete = 0;
    std::vector<std::byte> buffer(c.segment->responses().max_payload());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (complete < ids.size()) {
        const shm::PopResult p = c.segment->responses().try_pop(buffer);
        if (p.error == shm::RingError::empty) {
            // The ring is empty and answers are due: sleep until woken. No
            // slices: a lost wake-up hangs here until the deadline and fails.
            const auto left = deadline - std::chrono::steady_clock::now();
            if (left <= 0s || c.segment->responses().wait(nullptr, left) != shm::WaitResult::ready)
                FAIL("no wake-up for the burst's answers within 20 s (" << complete << " of " << ids.size()
                                                                        << " complete): a lost wake-up");
            continue;
        }
        REQUIRE(p.error == shm::RingError::ok);
        auto& decoder = decoders[p.request_id];
        REQUIRE(decoder.feed(std::span(buffer.data(), p.size)) == shm::CodecError::ok);
        if (decoder.complete()) {
            const shm::Response r = decoder.take();
            CHECK(r.value(0, 0) ==
                  std::optional<std::string_view>(std::to_string(1000 + (p.request_id - ids.front()))));
            ++complete;
        }
    }
    CHECK(d.status()["counters"]["requests_read_local"].num() == 350);
    CHECK(d.status()["counters"]["requests_cached_read"].num() == 300);
}

TEST_CASE("after SIGKILL a new daemon takes over the stale socket and state segment", "[daemon]") {
    Running first;
    first.require_ready();
    first.process.signal(SIGKILL);
    CHECK(first.process.wait_exit(5s) == 128 + SIGKILL);
    REQUIRE(::access(first.setup.socket.c_str(), F_OK) == 0);  // left behind

    NotifySocket notify(first.setup.dir + "/notify2.sock");
    RegiondProcess second(regiond_binary(), first.setup.config_path, first.setup.dir + "/second.log", notify.path());
    INFO(second.log());
    REQUIRE(notify.wait_for("READY=1", kStartTimeout));
    const std::string log = second.log();
    CHECK_THAT(log, Catch::Contains("removed the stale client socket " + first.setup.socket));
    CHECK_THAT(log, Catch::Contains("replacing the stale state segment " + first.setup.state_segment));
    second.signal(SIGTERM);
    CHECK(second.wait_exit(5s) == 0);
}

TEST_CASE("SIGHUP applies lag thresholds; a lagging local replica raises an alert and loses its reads", "[daemon]") {
    const ClusterEnv& env = ClusterEnv::get();
    Running d;
    d.require_ready();
    d.require_all_healthy();

    d.setup.set_key("max_lag", "\"300ms\"");
    d.setup.set_key("alert_after", "\"300ms\"");
    d.notify.clear();
    d.process.signal(SIGHUP);
    REQUIRE(d.notify.wait_for("RELOADING=1", 5s));
    REQUIRE(d.notify.wait_for("READY=1", 5s));
    CHECK_THAT(d.process.log(), Catch::Contains("reload: applied lag.max_lag, lag.alert_after"));

    PgSession replica(env.superuser_conninfo("eu-west-1"));
    PgSession primary(env.superuser_conninfo("us-east-1"));
    primary.exec(
        "create table if not exists daemon_test_probe (id bigserial primary key, at timestamptz default now())");
    RawClient c(d.setup.socket);
    const auto replica_alert = [&] {
        const Json status = d.status();  // the range below must not outlive it
        for (const Json& e : status["endpoints"].array())
            if (e["region"].str() == "eu-west-1") return e["alert"].boolean();
        return false;
    };
    {
        replica.exec("select pg_wal_replay_pause()");
        struct Resume {
            PgSession& s;
            ~Resume() {
                try {
                    s.exec("select pg_wal_replay_resume()");
                } catch (...) {}
            }
        } resume{replica};
        primary.exec("insert into daemon_test_probe default values");
        REQUIRE(eventually(replica_alert, 10s));
        const shm::Response r = c.query(shm::Op::read_local, "select 1");
        INFO(r.error);
        CHECK(r.served_by == "ap-northeast-1/replica");
        CHECK_THAT(d.process.log(), Catch::Contains("replication lag alert: postgres eu-west-1 replica"));
        CHECK_THAT(Running::reply_body(admin_command(d.setup.admin_socket, "metrics")),
                   Catch::Contains("regiond_lag_alert{region=\"eu-west-1\""));
    }
    REQUIRE(eventually([&] { return !replica_alert(); }, 10s));
    CHECK_THAT(d.process.log(), Catch::Contains("replication lag alert cleared"));
    CHECK(c.query(shm::Op::read_local, "select 1").served_by == "eu-west-1/replica");
    d.process.signal(SIGTERM);
    CHECK(d.process.wait_exit(5s) == 0);
}

TEST_CASE("systemd-analyze verify accepts the generated unit", "[daemon][systemd]") {
    const char* unit = std::getenv("REGIOND_SERVICE_UNIT");
    REQUIRE(unit != nullptr);
    std::ifstream in(unit);
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    // ExecStart must name an existing binary: point it at the one under test.
    const std::string patched =
        std::regex_replace(text.str(), std::regex(R"((ExecStart(Pre)?=)\S*/regiond\b)"), "$1" + regiond_binary());
    char pattern[] = "/tmp/rgd-unit-verify-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    const std::string dir = pattern;
    const std::string path = dir + "/regiond.service";
    std::ofstream(path) << patched;
    // --man=no: the unit's Documentation= names man:regiond(8), which this
    // project does not ship (yet); everything else is checked.
    const std::string command = "systemd-analyze verify --man=no " + path + " > " + dir + "/out.txt 2>&1";
    const int rc = std::system(command.c_str());
    std::ifstream out_file(dir + "/out.txt");
    std::stringstream out;
    out << out_file.rdbuf();
    std::filesystem::remove_all(dir);
    INFO(out.str());
    CHECK(WIFEXITED(rc));
    CHECK(WEXITSTATUS(rc) == 0);
    // Lines about other units (the host's own) are not ours to judge.
    CHECK(out.str().find("regiond.service") == std::string::npos);
}

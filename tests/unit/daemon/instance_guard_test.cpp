// Claiming the state segment's name (daemon/instance_guard.hpp) without another
// local user: a symlink planted at the name, our own stale segments, and the
// suffixed segments a crashed daemon leaves. (Another user's file is covered by
// tests/integration/privileges, which has real users.)
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "daemon/instance_guard.hpp"
#include "daemon/log.hpp"

using namespace regiond;
using namespace std::chrono_literals;

namespace {

std::string unique_name(const char* what) {
    static int counter = 0;
    return "/rgd-guard-test-" + std::to_string(::getpid()) + "-" + what + "-" + std::to_string(++counter);
}

shm::StateSegmentOptions options_for(const std::string& name) {
    shm::StateSegmentOptions o;
    o.name = name;
    o.cache_bytes = 1 << 20;
    return o;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

// Captures warnings and notices while alive.
struct CapturedLog {
    std::vector<std::string> lines;
    CapturedLog() {
        daemon::log::set_sink([this](daemon::log::Level, std::string_view line) { lines.emplace_back(line); });
    }
    ~CapturedLog() { daemon::log::set_sink({}); }
    std::string all() const {
        std::string text;
        for (const auto& l : lines) text += l + "\n";
        return text;
    }
};

}  // namespace

TEST_CASE("a free name is created exclusively under that name", "[guard]") {
    const std::string name = unique_name("free");
    auto segment = daemon::claim_state_segment(options_for(name), 2s);
    INFO((segment ? "" : segment.error().message));
    REQUIRE(segment);
    CHECK(segment->name() == name);
}

TEST_CASE("a symlink planted at the name is never followed: a suffixed name instead", "[guard]") {
    const std::string name = unique_name("link");
    const std::string target = "/tmp/rgd-guard-test-target-" + std::to_string(::getpid());
    std::ofstream(target) << "not yours";
    const std::string link = shm::state_segment_path(name);
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
    {
        CapturedLog log;
        auto segment = daemon::claim_state_segment(options_for(name), 2s);
        INFO((segment ? "" : segment.error().message));
        REQUIRE(segment);
        CHECK(segment->name().rfind(name + ".", 0) == 0);
        CHECK(segment->name().size() == name.size() + 9);
        CHECK_THAT(log.all(), Catch::Contains("state segment " + name + " is a non-regular file owned by uid"));
        CHECK_THAT(log.all(), Catch::Contains("the next start uses " + name + " again"));
    }
    struct stat st {};
    REQUIRE(::lstat(link.c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));  // left alone
    std::ifstream in(target);
    std::string content;
    std::getline(in, content);
    CHECK(content == "not yours");
    ::unlink(link.c_str());
    ::unlink(target.c_str());
}

TEST_CASE("our own stale segment is replaced under the configured name", "[guard]") {
    const std::string name = unique_name("stale");
    auto first = shm::StateSegment::create(options_for(name));
    REQUIRE(first);
    first->release_name();  // as a crashed daemon leaves it
    const std::uint64_t old_generation = first->generation();
    first = shm::Error{0, ""};
    CapturedLog log;
    auto segment = daemon::claim_state_segment(options_for(name), 1ns);  // every heartbeat is stale
    REQUIRE(segment);
    CHECK(segment->name() == name);
    CHECK(segment->generation() != old_generation);
    CHECK_THAT(log.all(), Catch::Contains("replacing the stale state segment " + name));
}

TEST_CASE("suffixed segments a crashed daemon left are removed; other names are not", "[guard]") {
    const std::string name = unique_name("leftover");
    const std::vector<std::string> leftovers = {name + ".0123abcd", name + ".ffffffff"};
    const std::vector<std::string> strangers = {name + ".0123ABCD", name + ".0123abc", name + "-0123abcd"};
    for (const auto& n : leftovers) {
        auto s = shm::StateSegment::create(options_for(n));
        REQUIRE(s);
        s->release_name();
    }
    for (const auto& n : strangers) {
        auto s = shm::StateSegment::create(options_for(n));
        REQUIRE(s);
        s->release_name();
    }
    {
        CapturedLog log;
        auto segment = daemon::claim_state_segment(options_for(name), 1ns);
        REQUIRE(segment);
        CHECK(segment->name() == name);
        for (const auto& n : leftovers) {
            CHECK_FALSE(exists(shm::state_segment_path(n)));
            CHECK_THAT(log.all(), Catch::Contains("removed the stale state segment " + n));
        }
    }
    for (const auto& n : strangers) {
        CHECK(exists(shm::state_segment_path(n)));
        (void)shm::remove_state_segment(n);
    }
}

TEST_CASE("a live segment of ours (another daemon, fresh heartbeat) is not touched", "[guard]") {
    const std::string name = unique_name("live");
    const std::string leftover = name + ".00000001";
    auto live = shm::StateSegment::create(options_for(leftover));
    REQUIRE(live);
    live->heartbeat_now();
    // Our own pid counts as alive, and the heartbeat is fresh: a running daemon's.
    auto segment = daemon::claim_state_segment(options_for(name), 60s);
    REQUIRE(segment);
    CHECK(exists(shm::state_segment_path(leftover)));
}

TEST_CASE("when no suffixed name can be created either, the refusal names the holder and what to do", "[guard]") {
    // A name at NAME_MAX's edge: held (a symlink), and NAME.XXXXXXXX too long to create.
    std::string name = "/rgd-guard-test-" + std::to_string(::getpid()) + "-";
    name += std::string(251 - name.size(), 'x');  // 250 characters after the '/': NAME_MAX is 255
    const std::string link = shm::state_segment_path(name);
    REQUIRE(::symlink("/nonexistent", link.c_str()) == 0);
    auto segment = daemon::claim_state_segment(options_for(name), 2s);
    ::unlink(link.c_str());
    REQUIRE_FALSE(segment);
    const std::string& message = segment.error().message;
    INFO(message);
    CHECK_THAT(message, Catch::StartsWith("cannot create state segment " + name +
                                          ": it is a non-regular file owned by uid " + std::to_string(::geteuid())));
    CHECK_THAT(message, Catch::Contains("Remove " + link + " as root"));
    CHECK_THAT(message, Catch::Contains("or set daemon.state_segment to another name"));
}

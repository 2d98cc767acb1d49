// Claiming a listening socket's path (shm/base/unix_socket_path.hpp), shared by
// the daemon's client and admin sockets and the WAN proxy's control socket.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "shm/base/unique_fd.hpp"
#include "shm/base/unix_socket_path.hpp"

using namespace regiond::base;
using State = SocketPathClaim::State;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char pattern[] = "/tmp/rgd-base-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// A bound socket file; listening when `listen` is true.
UniqueFd bound_socket(const std::string& path, bool listen) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto address = unix_address(path);
    REQUIRE(address);
    REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) == 0);
    if (listen) REQUIRE(::listen(fd.get(), 4) == 0);
    return fd;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

TEST_CASE("a free path is free", "[base][socket]") {
    TempDir dir;
    const SocketPathClaim claim = claim_socket_path(dir.path + "/s.sock");
    CHECK(claim.state == State::free);
}

TEST_CASE("a socket nobody listens on is stale and removed", "[base][socket]") {
    TempDir dir;
    const std::string path = dir.path + "/s.sock";
    { UniqueFd dead = bound_socket(path, false); }  // bound, never listened, closed: a crashed daemon's file
    REQUIRE(exists(path));
    CHECK(claim_socket_path(path).state == State::stale_removed);
    CHECK_FALSE(exists(path));
}

TEST_CASE("a live listener is left alone and named by its pid", "[base][socket]") {
    TempDir dir;
    const std::string path = dir.path + "/s.sock";
    UniqueFd live = bound_socket(path, true);
    const SocketPathClaim claim = claim_socket_path(path);
    CHECK(claim.state == State::live);
    CHECK(claim.live_pid == ::getpid());
    CHECK(exists(path));
}

TEST_CASE("a file that is not a socket is never removed", "[base][socket]") {
    TempDir dir;
    const std::string path = dir.path + "/not-a-socket";
    std::ofstream(path) << "someone's data";
    CHECK(claim_socket_path(path).state == State::not_a_socket);
    CHECK(exists(path));
}

TEST_CASE("a path too long for sun_path is reported", "[base][socket]") {
    CHECK(claim_socket_path("/tmp/" + std::string(200, 'x')).state == State::too_long);
    CHECK_FALSE(unix_address(""));
    CHECK_FALSE(unix_address(std::string(108, 'x')));
    CHECK(unix_address(std::string(107, 'x')));
}

TEST_CASE("unlink_if_same_file removes only the file we created", "[base][socket]") {
    TempDir dir;
    const std::string path = dir.path + "/s.sock";
    UniqueFd first = bound_socket(path, true);
    struct stat mine {};
    REQUIRE(::lstat(path.c_str(), &mine) == 0);
    // A successor replaced ours: our identity no longer matches.
    REQUIRE(::unlink(path.c_str()) == 0);
    UniqueFd successor = bound_socket(path, true);
    CHECK_FALSE(unlink_if_same_file(path, mine.st_dev, mine.st_ino));
    CHECK(exists(path));
    struct stat theirs {};
    REQUIRE(::lstat(path.c_str(), &theirs) == 0);
    CHECK(unlink_if_same_file(path, theirs.st_dev, theirs.st_ino));
    CHECK_FALSE(exists(path));
}

// The fd wrapper and errno text (shm/base/unique_fd.hpp, errno_text.hpp).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "shm/base/errno_text.hpp"
#include "shm/base/unique_fd.hpp"

using regiond::base::errno_text;
using regiond::base::UniqueFd;

namespace {

bool is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

}  // namespace

TEST_CASE("UniqueFd closes what it owns exactly once", "[base][fd]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    {
        UniqueFd a(fds[0]);
        UniqueFd b(fds[1]);
        CHECK(a.valid());
        CHECK(static_cast<bool>(b));
        UniqueFd moved(std::move(a));
        CHECK_FALSE(a.valid());
        CHECK(moved.get() == fds[0]);
        b = std::move(moved);  // closes fds[1], owns fds[0]
        CHECK_FALSE(is_open(fds[1]));
        CHECK(is_open(fds[0]));
        CHECK(b.get() == fds[0]);
    }
    CHECK_FALSE(is_open(fds[0]));

    REQUIRE(::pipe(fds) == 0);
    UniqueFd keep(fds[0]);
    const int raw = keep.release();
    CHECK_FALSE(keep.valid());
    CHECK(is_open(raw));
    ::close(raw);
    ::close(fds[1]);
    keep.reset();  // nothing owned: no close of a stranger's number
}

TEST_CASE("errno_text is the system's sentence for the value", "[base][errno]") {
    CHECK(errno_text(ENOENT) == "No such file or directory");
    CHECK(errno_text(EACCES) == "Permission denied");
    CHECK_FALSE(errno_text(123456).empty());
}

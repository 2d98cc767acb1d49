#include "config/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "shm/base/errno_text.hpp"
#include "shm/base/unique_fd.hpp"

namespace regiond::config::detail {
namespace {

constexpr std::size_t max_file_size = 16U << 20;

}  // namespace

Parsed<std::string> read_text_file(const std::string& path) {
    const base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0)
        return Parsed<std::string>::fail("cannot open the configuration file: " + base::errno_text(errno));

    struct stat status {};
    if (::fstat(fd.get(), &status) == 0 && S_ISDIR(status.st_mode))
        return Parsed<std::string>::fail("cannot read the configuration file: it is a directory");

    std::string text;
    char chunk[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            return Parsed<std::string>::fail("cannot read the configuration file: " + base::errno_text(errno));
        }
        text.append(chunk, static_cast<std::size_t>(n));
        if (text.size() > max_file_size)
            return Parsed<std::string>::fail("the configuration file is larger than 16 MiB; is this the right file?");
    }
    return Parsed<std::string>::ok(std::move(text));
}

}  // namespace regiond::config::detail

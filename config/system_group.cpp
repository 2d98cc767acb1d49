#include "config/system_group.hpp"

#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

#include "config/quote.hpp"

namespace regiond::config {

Parsed<gid_t> lookup_group(const std::string& name) {
    // getgrnam_r, not getgrnam: the parser may run on any thread (a SIGHUP reload).
    const long suggested = sysconf(_SC_GETGR_R_SIZE_MAX);
    std::vector<char> buffer(suggested > 0 ? static_cast<std::size_t>(suggested) : 1024);
    for (;;) {
        group entry{};
        group* found = nullptr;
        const int error = getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (error == ERANGE && buffer.size() < (1U << 24)) {
            buffer.resize(buffer.size() * 2);  // a group with many members
            continue;
        }
        if (found != nullptr) return Parsed<gid_t>::ok(found->gr_gid);
        // Not found is (found == nullptr, error == 0); glibc may also report
        // ENOENT and friends for "no such entry", so treat those alike.
        if (error == 0 || error == ENOENT || error == ESRCH || error == EBADF || error == EPERM)
            return Parsed<gid_t>::fail("group " + detail::quote(name) + " does not exist on this host");
        return Parsed<gid_t>::fail("cannot look up group " + detail::quote(name) + ": " +
                                   std::system_category().message(error));
    }
}

}  // namespace regiond::config

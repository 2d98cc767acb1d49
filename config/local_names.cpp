#include "config/local_names.hpp"

#include <sys/un.h>

#include <filesystem>

#include "config/quote.hpp"

namespace regiond::config {

using detail::quote;

std::size_t max_socket_path_length() noexcept {
    return sizeof(sockaddr_un{}.sun_path) - 1;
}

std::optional<std::string> socket_path_problem(std::string_view path) {
    if (path.empty()) return "must not be empty; use an absolute path such as /run/regiond/regiond.sock";
    if (path.find('\0') != std::string_view::npos) return "contains a NUL character";
    if (path.front() != '/')
        return quote(path) +
               " is a relative path; use an absolute path such as /run/regiond/regiond.sock "
               "(the daemon's working directory is not defined)";
    if (path.back() == '/') return quote(path) + " ends with \"/\", which names a directory, not a socket";
    if (path.size() > max_socket_path_length())
        return "is " + std::to_string(path.size()) + " bytes long; a unix socket path must fit in " +
               std::to_string(max_socket_path_length()) + " bytes (sockaddr_un.sun_path)";
    return std::nullopt;
}

std::optional<std::string> segment_name_problem(std::string_view name) {
    if (name.empty() || name.front() != '/') return quote(name) + " must start with \"/\", e.g. \"/regiond\"";
    if (name.size() == 1) return "needs a name after \"/\", e.g. \"/regiond\"";
    if (name.find('/', 1) != std::string_view::npos)
        return quote(name) +
               " contains \"/\" after the first character; a shared-memory name "
               "is a single component, e.g. \"/regiond-eu\"";
    if (name.find('\0') != std::string_view::npos) return "contains a NUL character";
    if (name.size() > max_segment_name_length)
        return "is " + std::to_string(name.size()) + " characters long; the limit is " +
               std::to_string(max_segment_name_length);
    return std::nullopt;
}

bool same_path(std::string_view a, std::string_view b) {
    const auto normal = [](std::string_view p) { return std::filesystem::path(p).lexically_normal(); };
    return normal(a) == normal(b);
}

}  // namespace regiond::config

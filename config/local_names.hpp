// Checks for the names a daemon claims on its host: unix socket paths and the
// shared-memory segment name. They are not secret, so messages may quote them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace regiond::config {

// Longest unix socket path: sun_path less its terminating NUL (107 on Linux).
std::size_t max_socket_path_length() noexcept;

// Longest state segment name, '/' included. When the name is squatted by another
// user the daemon serves under NAME.XXXXXXXX (9 more characters), which must still
// fit the welcome message's 200 bytes with their NUL, and NAME_MAX (255).
inline constexpr std::size_t max_segment_name_length = 190;

// nullopt when `path` is absolute, is not a directory ("/x/"), has no NUL and
// fits in a socket address.
std::optional<std::string> socket_path_problem(std::string_view path);

// nullopt when `name` is a portable POSIX shm name: "/" then 1..189 characters
// none of which is another "/".
std::optional<std::string> segment_name_problem(std::string_view name);

// True when both name the same path once "." segments and doubled slashes are
// removed ("/run//a" and "/run/./a").
bool same_path(std::string_view a, std::string_view b);

}  // namespace regiond::config

// `rgd-wanproxy ctl SOCKET COMMAND [ARGS...]`: sends one command to a running
// proxy and prints the reply.
#pragma once

#include <string>
#include <vector>

namespace wanproxy {

// Exit status: 0 if the reply ends in "ok", 1 if it is an error, 2 if the
// control socket cannot be reached or the reply never completes.
int run_ctl(const std::string& socket_path, const std::vector<std::string>& words);

}  // namespace wanproxy

// `rgd-wanproxy serve`: load the links, open every listener and the control
// socket, run the event loop until SIGTERM or SIGINT.
#pragma once

#include <string>

namespace wanproxy {

// Exit status: 0 after a signal, 1 if a listener or the control socket
// cannot be opened, 2 if the links file is invalid.
int run_serve(const std::string& links_path, const std::string& control_path);

}  // namespace wanproxy

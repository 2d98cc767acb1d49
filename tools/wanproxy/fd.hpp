// The proxy's name for the tree's one fd wrapper (shm/base/unique_fd.hpp): every
// socket, epoll, timerfd and signalfd in the proxy is held by one of these.
#pragma once

#include "shm/base/unique_fd.hpp"

namespace wanproxy {

using Fd = regiond::base::UniqueFd;

}  // namespace wanproxy

// rgd_cached_read's first step: this host's hot cache in the state segment,
// read without a system call or a message to the daemon. A miss (or a daemon
// that looks dead: its hot cache is then no longer kept current) goes to the
// daemon as a cached_read request.
#pragma once

#include "client.hpp"

namespace regiond::client {

/// The answer from the hot cache (served_by "cache:local"), or nullptr on a miss.
ResultPtr hot_cache_hit(rgd_client& client, const shm::RequestView& request);

}  // namespace regiond::client

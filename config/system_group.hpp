// Looking up a group on this host (daemon.client_group).
#pragma once

#include <sys/types.h>

#include <string>

#include "config/value_or_error.hpp"

namespace regiond::config {

// The gid of the group named `name`, from the system's group database (NSS).
// The error says whether the group does not exist or the lookup itself failed.
Parsed<gid_t> lookup_group(const std::string& name);

}  // namespace regiond::config
